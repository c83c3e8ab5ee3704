"""Options several commands share, and reading a password without putting it in shell history."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tillkey.cli.runner import fail

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        help="Visible in shell history and `ps`: prefer the prompt (omit it) or --password-stdin.",
    ),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input.",
    ),
]


def read_password(given: str | None, from_stdin: bool, prompt: str = "Password") -> str:
    """The password from --password-stdin, --password, or a hidden, confirmed prompt."""
    if from_stdin:
        if given is not None:
            fail("give --password or --password-stdin, not both")
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if given is not None:
        return given
    try:
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))
    except typer.Abort:
        fail("no password given: type it when asked, or pipe it in with --password-stdin")
