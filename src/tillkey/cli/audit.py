"""`tillkey audit ...`: verify, tail and search the tamper-evident audit log."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.cli.output import out
from tillkey.cli.runner import fail, run
from tillkey.principal import UserType

commands = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")


def _audit_print(records: list[Any], as_json: bool) -> None:
    from rich import box
    from rich.text import Text

    from tillkey.audit import FAILURE, iso_time, to_json

    if as_json:
        for r in records:
            sys.stdout.write(json.dumps(to_json(r)) + "\n")
        return
    # Stacked cells keep the table readable in 80 columns; --json is the format for machines.
    table = Table("seq", "time (UTC)", "event", "who", box=box.SIMPLE_HEAD, show_lines=True, pad_edge=False)
    table.add_column("details", overflow="fold", ratio=1)
    for r in records:
        actor = UserType(r.actor_type).name.lower() if r.actor_type in (1, 2, 3, 4) else "cli/unknown"
        if r.actor_id is not None:
            actor += f":{r.actor_id}"
        when = iso_time(r.created_ms)[:19].replace("T", "\n")
        # Text, not markup: usernames and user agents come from clients and must not style the terminal.
        event = Text(r.event + "\n") + Text(r.outcome, style="red" if r.outcome == FAILURE else "green")
        who = Text("\n".join(x for x in (actor, r.username, r.ip) if x))
        details = to_json(r)["details"]
        if isinstance(details, dict):
            details = "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in details.items())
        table.add_row(str(r.seq), when, event, who, Text(str(details or "")))
    out.print(table)


@commands.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 naming the first altered or missing record."""
    report = run(lambda tk: tk.audit.check())
    if report.first_break is not None:
        fail(f"audit chain broken at seq {report.first_break.seq}: {report.first_break.reason}")
    typer.echo(f"audit chain intact: {report.count} records")


@commands.command("tail")
def audit_tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=500, help="How many records.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The latest records, oldest first."""
    from tillkey.store.audit import AuditQuery

    records = run(lambda tk: tk.audit.search(AuditQuery(limit=lines)))
    _audit_print(records[::-1], as_json)


@commands.command("search")
def audit_search(
    event: Annotated[str | None, typer.Option(help="Event name, or a family such as 'login.*'.")] = None,
    username: Annotated[str | None, typer.Option(help="Login name involved (case-insensitive).")] = None,
    outcome: Annotated[str | None, typer.Option(help="success or failure.")] = None,
    actor_type: Annotated[int | None, typer.Option(help="1 integration, 2 admin, 3 customer, 4 guest.")] = None,
    actor_id: Annotated[int | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="Unix seconds or ISO 8601 (UTC unless an offset is given).")] = None,
    until: Annotated[str | None, typer.Option(help="Unix seconds or ISO 8601, inclusive.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many records (1 to 500).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many matching records.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Matching records, newest first."""
    from tillkey.audit.query import make_query

    try:
        query = make_query(
            event=event,
            username=username,
            outcome=outcome,
            actor_type=actor_type,
            actor_id=actor_id,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    except ValueError as exc:
        fail(str(exc))
    _audit_print(run(lambda tk: tk.audit.search(query)), as_json)
