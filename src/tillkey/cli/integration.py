"""`tillkey integration ...`: Magento integrations (OAuth 1.0a consumers)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import run

commands = typer.Typer(no_args_is_help=True, help="Integrations (ERPs, back offices): OAuth 1.0a consumers.")


@commands.command("create")
def integration_create(
    name: Annotated[str, typer.Option("--name", help="Unique name of the integration.")],
    resource: Annotated[list[str] | None, typer.Option("--resource", "-r", help="Resource id; repeatable.")] = None,
    all_resources: Annotated[bool, typer.Option("--all", help="Grant every resource.")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option(help="Where activation posts the OAuth handshake; none: manual activation.")
    ] = None,
    identity_link_url: Annotated[str | None, typer.Option(help="The integration's login page for the admin.")] = None,
    email: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an integration: consumer key and secret (shown once) and its grant of resources."""

    created = run(
        lambda tk: tk.services.integrations.create(
            OPERATOR,
            name=name,
            resources=resource or [],
            all_resources=all_resources,
            email=email,
            endpoint_url=endpoint_url,
            identity_link_url=identity_link_url,
        )
    )
    emit(asdict(created), as_json, "integration created (the consumer secret is not shown again)")


@commands.command("list")
def integration_list(as_json: JsonOpt = False) -> None:
    """List integrations (no secrets)."""

    rows = run(lambda tk: tk.services.integrations.list())
    if as_json:
        sys.stdout.write(json.dumps({"integrations": rows}) + "\n")
        return
    table = Table("id", "name", "status", "consumer key", "access token", "endpoint", "resources")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["status"],
            r["consumer_key"],
            "yes" if r["has_access_token"] else "no",
            r["endpoint_url"] or "(manual)",
            "\n".join(r["resources"]),
        )
    out.print(table)


@commands.command("activate")
def integration_activate(name: str, as_json: JsonOpt = False) -> None:
    """Activate or re-authorize. Manual: prints the access token and secret (shown once; older
    tokens are revoked). With an endpoint: posts the handshake to it, to finish within 300 s."""

    done = run(lambda tk: tk.services.integrations.activate(OPERATOR, name))
    emit({k: v for k, v in asdict(done).items() if v is not None}, as_json, "integration activation")


@commands.command("deactivate")
def integration_deactivate(name: str) -> None:
    """Refuse the integration's calls until it is activated again."""

    run(lambda tk: tk.services.integrations.deactivate(name))
    typer.echo(f"integration {name} deactivated")


@commands.command("revoke")
def integration_revoke(name: str) -> None:
    """Revoke the integration's access token; `activate` issues a new one."""

    count = run(lambda tk: tk.services.integrations.revoke(name))
    typer.echo(f"integration {name}: {count} token(s) revoked")


@commands.command("delete")
def integration_delete(name: str) -> None:
    """Delete an integration and its tokens."""

    run(lambda tk: tk.services.integrations.delete(name))
    typer.echo(f"integration {name} deleted")
