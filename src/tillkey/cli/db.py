"""`tillkey db upgrade`: bring the database schema up to date."""

from __future__ import annotations

import asyncio

import typer

from tillkey.cli.runner import fail, settings_or_exit
from tillkey.configuration import explain

commands = typer.Typer(no_args_is_help=True, help="Database schema.")


@commands.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (also done by `serve` on start). With the default data
    directory (./data) and none there yet, this is how a new deployment is started from the CLI."""
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.store.db import make_engine, upgrade

    settings = settings_or_exit()
    try:
        MasterSecret.load(settings.secret_key, settings.data_dir)  # a new deployment gets its secret now
        if not settings.database_url:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            asyncio.run(make_engine(settings.resolved_database_url).dispose())  # creates the file, 0600
        upgrade(settings.resolved_database_url)
    except Exception as exc:
        line = explain(exc, settings)
        if line is None:
            raise
        fail(line)
    typer.echo("database is up to date")
