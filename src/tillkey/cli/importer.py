"""`tillkey import magento|medusa`: move a shop's accounts into Tillkey (migrate/). A sub-app of its
own, one line in cli/root.py's NOUNS. A progress bar (rows, rate, ETA) on a terminal's stderr."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from tillkey.configuration import ConfigError, require_data
from tillkey.crypto.magento_encryptor import MagentoDecryptError
from tillkey.errors import TillkeyError
from tillkey.migrate import magento as magento_source
from tillkey.migrate import medusa as medusa_source
from tillkey.migrate.run import ON_CONFLICT, SKIP, Options, Report
from tillkey.runtime import Tillkey
from tillkey.settings import load_settings

commands = typer.Typer(no_args_is_help=True, help="Import accounts from Magento or Medusa (passwords keep working).")

T = TypeVar("T")
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Report what would be imported; change nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="The report as JSON.")]
BatchOpt = Annotated[
    int, typer.Option("--batch", min=1, max=50_000, help="Customers per transaction (and per resumable checkpoint).")
]
ConflictOpt = Annotated[
    str,
    typer.Option(
        "--on-conflict",
        help="What Tillkey already has: skip it, update it as the source has it now (people's names, admins' "
        "role and active flag, the hash only while still the imported one; integrations' name, status, grant "
        "and secrets; keys' title, grant and revocation; never what changed here since), or fail (stop before "
        "writing it).",
    ),
]


@contextmanager
def _progress(total: int | None, quiet: bool) -> Iterator[Callable[[int], None]]:
    if quiet or total is None or not sys.stderr.isatty():
        yield lambda _n: None
        return
    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("import", total=total)
        yield lambda n: bar.advance(task, n)


async def _with_tillkey(body: Callable[[Tillkey], Awaitable[T]]) -> T:
    tk = Tillkey(load_settings())
    try:
        await tk.start(sync=False)
        return await body(tk)
    finally:
        await tk.stop()


def _run(what: str, work: Callable[[], T]) -> T:
    try:
        require_data(load_settings())
        return work()
    except (ConfigError, TillkeyError, MagentoDecryptError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OSError, DBAPIError) as exc:  # the source database is unreachable
        typer.echo(f"error: cannot read the {what} database: {exc}", err=True)
        raise typer.Exit(1) from None


def _options(on_conflict: str, dry_run: bool, batch: int, progress: Callable[[int], None]) -> Options:
    if on_conflict not in ON_CONFLICT:
        typer.echo(f"error: --on-conflict must be one of {', '.join(ON_CONFLICT)}", err=True)
        raise typer.Exit(2)
    return Options(dry_run=dry_run, on_conflict=on_conflict, batch=batch, progress=progress)


def _show(title: str, report: Report, as_json: bool, extra: dict[str, object] | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps({**report.as_dict(), **(extra or {})}) + "\n")
        return
    table = Table(title=title + (" (dry run: nothing written)" if report.dry_run else ""))
    for col in ("kind", "outcome", "count"):
        table.add_column(col)
    for kind, n in sorted(report.imported.items()):
        table.add_row(kind, "would import" if report.dry_run else "imported", str(n))
    for kind, n in sorted(report.updated.items()):
        table.add_row(kind, "would update" if report.dry_run else "updated", str(n))
    for (kind, reason), n in sorted(report.skipped.items()):
        table.add_row(kind, f"skipped: {reason}", str(n))
    if report.resumed_after is not None:
        table.caption = "resumed after the last checkpoint of an unfinished run"
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
    on_conflict: ConflictOpt = SKIP,
    batch: BatchOpt = 5000,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Admins (with their roles' resources), integrations (with the credentials their callers
    hold) and customers, with their password hashes; run it again and nothing is duplicated, and
    a run that stopped half-way resumes after its last committed batch."""
    crypt_key = None
    if crypt_key_env:
        crypt_key = os.environ.get(crypt_key_env)
        if not crypt_key:
            typer.echo(f"error: the environment variable {crypt_key_env} is not set", err=True)
            raise typer.Exit(1)

    def work() -> tuple[Report, dict[str, int]]:
        total = asyncio.run(magento_source.count(dsn)) if not as_json and sys.stderr.isatty() else None
        with _progress(total, as_json) as step:
            opts = _options(on_conflict, dry_run, batch, step)
            return asyncio.run(
                _with_tillkey(lambda tk: magento_source.import_magento(tk, dsn, opts, crypt_key=crypt_key))
            )

    report, unknown = _run("Magento", work)
    _show("Magento import", report, as_json, {"unknown_resources": unknown})
    if unknown and not as_json:
        typer.echo(f"not granted (no such Tillkey resource): {', '.join(sorted(unknown))}")


@commands.command("medusa")
def medusa(
    dsn: Annotated[str, typer.Option(help="The Medusa v2 database: postgresql://USER:PASS@HOST/DB")],
    on_conflict: ConflictOpt = SKIP,
    batch: BatchOpt = 5000,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    mfa_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding Medusa's auth module mfa.encryption_key (TOTP factors)"),
    ] = None,
) -> None:
    """Users (as admins with Administrators), API keys (the same sk_ keeps working) and customers
    with an account, with their emailpass passwords and enabled TOTP factors; run it again and
    nothing is duplicated, and a run that stopped half-way resumes after its last committed batch."""
    mfa_key = None
    if mfa_key_env:
        mfa_key = os.environ.get(mfa_key_env)
        if not mfa_key:
            typer.echo(f"error: the environment variable {mfa_key_env} is not set", err=True)
            raise typer.Exit(1)

    def work() -> Report:
        total = asyncio.run(medusa_source.count(dsn)) if not as_json and sys.stderr.isatty() else None
        with _progress(total, as_json) as step:
            opts = _options(on_conflict, dry_run, batch, step)
            return asyncio.run(_with_tillkey(lambda tk: medusa_source.import_medusa(tk, dsn, opts, mfa_key)))

    _show("Medusa import", _run("Medusa", work), as_json)
