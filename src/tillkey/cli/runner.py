"""Running one command: the settings, the runtime against the configured database, and the
one-line `error:` exit for what an operator can fix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer

from tillkey.configuration import ConfigError, explain, require_data
from tillkey.errors import TillkeyError
from tillkey.runtime import Tillkey
from tillkey.settings import Settings, load_settings

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def settings_or_exit() -> Settings:
    """The settings, or exit with one `error:` line saying which value is wrong and where it came from."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def run(fn: Callable[[Tillkey], Awaitable[T]], *, create: bool = False) -> T:
    """Run one command against the configured database, with the schema brought up to date.
    `create`: the command may start a new deployment (a new data directory and master secret)."""
    settings = settings_or_exit()

    async def main() -> T:
        tk = Tillkey(settings)
        try:
            await tk.start(sync=False)
            return await fn(tk)
        finally:
            await tk.stop()

    try:
        if not create:
            require_data(settings)
        return asyncio.run(main())
    except TillkeyError as exc:
        fail(exc.message.replace("%", "") if not exc.parameters else _render(exc))
    except Exception as exc:
        line = explain(exc, settings)
        if line is None:
            raise
        fail(line)


def _render(exc: TillkeyError) -> str:
    msg = exc.message
    if isinstance(exc.parameters, dict):
        for k, v in exc.parameters.items():
            msg = msg.replace(f"%{k}", str(v))
    return msg
