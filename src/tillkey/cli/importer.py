"""`tillkey import medusa`: move a shop's accounts into Tillkey (migrate/). A sub-app of its own,
one line in cli/root.py's NOUNS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from tillkey.configuration import ConfigError, require_data
from tillkey.crypto.magento_encryptor import MagentoDecryptError
from tillkey.errors import TillkeyError
from tillkey.migrate.magento import import_magento
from tillkey.migrate.medusa import import_medusa
from tillkey.migrate.run import Report
from tillkey.runtime import Tillkey
from tillkey.settings import load_settings

commands = typer.Typer(no_args_is_help=True, help="Import accounts from Magento or Medusa (passwords keep working).")


async def _medusa(dsn: str, dry_run: bool) -> Report:
    tk = Tillkey(load_settings())
    try:
        await tk.start(sync=False)
        return await import_medusa(tk, dsn, dry_run=dry_run)
    finally:
        await tk.stop()


async def _magento(dsn: str, dry_run: bool, crypt_key: str | None) -> tuple[Report, dict[str, int]]:
    tk = Tillkey(load_settings())
    try:
        await tk.start(sync=False)
        return await import_magento(tk, dsn, dry_run=dry_run, crypt_key=crypt_key)
    finally:
        await tk.stop()


def _show(title: str, report: Report, as_json: bool, extra: dict[str, object] | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps({**report.as_dict(), **(extra or {})}) + "\n")
        return
    table = Table(title=title + (" (dry run: nothing written)" if report.dry_run else ""))
    for col in ("kind", "outcome", "count"):
        table.add_column(col)
    for kind, n in sorted(report.imported.items()):
        table.add_row(kind, "would import" if report.dry_run else "imported", str(n))
    for (kind, reason), n in sorted(report.skipped.items()):
        table.add_row(kind, f"skipped: {reason}", str(n))
    Console().print(table)


@commands.command("magento")
def magento(
    dsn: Annotated[str, typer.Option(help="The Magento 2.4 database: mysql://USER:PASS@HOST/DB (MySQL or MariaDB)")],
    crypt_key_env: Annotated[
        str | None,
        typer.Option(
            "--crypt-key-env",
            metavar="VAR",
            help="The environment variable holding app/etc/env.php's crypt/key (needed for integrations' secrets).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be imported; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Admins (with their roles' resources), integrations (with the credentials their callers
    hold) and customers, with their password hashes; run it again and nothing is duplicated."""
    crypt_key = None
    if crypt_key_env:
        crypt_key = os.environ.get(crypt_key_env)
        if not crypt_key:
            typer.echo(f"error: the environment variable {crypt_key_env} is not set", err=True)
            raise typer.Exit(1)
    try:
        require_data(load_settings())
        report, unknown = asyncio.run(_magento(dsn, dry_run, crypt_key))
    except (ConfigError, TillkeyError, MagentoDecryptError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OSError, DBAPIError) as exc:  # the source database is unreachable
        typer.echo(f"error: cannot read the Magento database: {exc}", err=True)
        raise typer.Exit(1) from None
    _show("Magento import", report, as_json, {"unknown_resources": unknown})
    if unknown and not as_json:
        typer.echo(f"not granted (no such Tillkey resource): {', '.join(sorted(unknown))}")


@commands.command("medusa")
def medusa(
    dsn: Annotated[str, typer.Option(help="The Medusa v2 database: postgresql://USER:PASS@HOST/DB")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be imported; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Users (as admins with Administrators) and customers with an account, with their emailpass
    passwords; run it again and nothing is duplicated."""
    try:
        require_data(load_settings())
        report = asyncio.run(_medusa(dsn, dry_run))
    except (ConfigError, TillkeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OSError, DBAPIError) as exc:  # the source database is unreachable
        typer.echo(f"error: cannot read the Medusa database: {exc}", err=True)
        raise typer.Exit(1) from None
    _show("Medusa import", report, as_json)
