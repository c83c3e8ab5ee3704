"""The root `tillkey` app: its global options and one registration per noun.

A new noun is a module here with `commands = typer.Typer(...)` and one line in `NOUNS`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tillkey.cli import (
    admin,
    api_key,
    audit,
    client,
    config,
    customer,
    db,
    demo,
    idp,
    importer,
    integration,
    keys,
    role,
    secret,
    serve,
    tfa,
)
from tillkey.configuration import CONFIG_ENV

# rich_markup_mode=None: a usage error (caught and printed by the root app, whatever the command)
# prints as click prints it, usage, a hint and one `Error:` line a script or a log can read, not
# in a box of rich text. The commands' own help pages keep their formatting.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="Tillkey: auth for commerce APIs."
)
app.command()(serve.serve)

# `tillkey <name> ...`, in the order `tillkey --help` lists them.
NOUNS: list[tuple[str, typer.Typer]] = [
    ("admin", admin.commands),
    ("customer", customer.commands),
    ("role", role.commands),
    ("demo", demo.commands),
    ("db", db.commands),
    ("keys", keys.commands),
    ("audit", audit.commands),
    ("integration", integration.commands),
    ("api-key", api_key.commands),
    ("client", client.commands),
    ("config", config.commands),
    ("secret", secret.commands),
    ("import", importer.commands),
    ("idp", idp.commands),
]
for name, commands in NOUNS:
    app.add_typer(commands, name=name)
admin.commands.add_typer(tfa.commands, name="2fa")


def _version(value: bool) -> None:
    if value:
        from tillkey import __version__

        typer.echo(f"tillkey {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=CONFIG_ENV,
            help="TOML settings file (setting names in lower case, no prefix).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Tillkey: auth for commerce APIs."""
    if config is not None:
        # Through the environment, so the server's worker processes read the same file.
        os.environ[CONFIG_ENV] = str(config.expanduser().resolve())


def main() -> None:
    app()
