"""`tillkey config show|check`: the operator's view of the settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tillkey.configuration import SECRET_FIELDS, ConfigError, origins, redacted_url
from tillkey.settings import Settings, load_settings

commands = typer.Typer(no_args_is_help=True, help="Effective settings and the production checklist.")
out = Console()


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _shown(name: str, value: Any) -> Any:
    if name in SECRET_FIELDS and value:
        if name == "secret_key":
            return "(set, hidden)"
        return redacted_url(str(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else v for v in value]
    return value


@commands.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False) -> None:
    """Every setting's effective value and where it came from (environment, .env, config file or
    default); secrets are hidden and passwords taken out of URLs."""
    settings = _settings()
    where = origins(Settings)
    rows = [
        {"name": name, "value": _shown(name, getattr(settings, name)), "source": where.get(name, "default")}
        for name in Settings.model_fields
    ]
    if as_json:
        sys.stdout.write(json.dumps({"settings": rows}, default=str) + "\n")
        return
    table = Table("setting", "value", "source")
    for r in rows:
        value = r["value"] if isinstance(r["value"], str) else json.dumps(r["value"], default=str)
        table.add_row(r["name"], Text(value), r["source"])
    out.print(table)


@commands.command("check")
def config_check(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes you will run (tillkey serve --workers).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The production checklist: exit 1 if any problem is found (notes are worth a look)."""
    from tillkey.checklist import check

    findings = check(_settings(), workers=workers)
    problems = [f for f in findings if f.level == "problem"]
    if as_json:
        sys.stdout.write(json.dumps({"findings": [f.__dict__ for f in findings], "problems": len(problems)}) + "\n")
    else:
        for f in findings:
            typer.echo(f"{f.level.upper():<8} {f.topic:<9} {f.text}")
        typer.echo(f"{len(problems)} problem(s)" if problems else "no problems found")
    if problems:
        raise typer.Exit(1)
