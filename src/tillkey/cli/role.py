"""`tillkey role ...`: roles and the resources they grant."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import run
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="Roles and the resources they grant.")


@commands.command("create")
def role_create(
    name: str,
    resource: Annotated[list[str] | None, typer.Option("--resource", "-r", help="Resource id; repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a role granting the given resources (a node grants its subtree)."""
    role = run(lambda tk: tk.services.accounts.create_role(OPERATOR, name, resource or []))
    emit(asdict(role), as_json, "role created")


@commands.command("grant")
def role_grant(
    name: str,
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="Resource id; repeatable.")],
    as_json: JsonOpt = False,
) -> None:
    """Grant resources to a role. Takes effect for its admins within a second, without re-login."""
    role = run(lambda tk: tk.services.accounts.grant(OPERATOR, name, resource))
    emit(asdict(role), as_json, "role updated")


@commands.command("revoke")
def role_revoke(
    name: str,
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="Resource id; repeatable.")],
    as_json: JsonOpt = False,
) -> None:
    """Take resources away from a role."""
    role = run(lambda tk: tk.services.accounts.grant(OPERATOR, name, resource, revoke=True))
    emit(asdict(role), as_json, "role updated")


@commands.command("rename")
def role_rename(name: str, new_name: str, as_json: JsonOpt = False) -> None:
    """Rename a role; its admins and grants stay."""
    role = run(lambda tk: tk.services.accounts.rename_role(OPERATOR, name, new_name))
    emit(asdict(role), as_json, "role renamed")


@commands.command("delete")
def role_delete(name: str) -> None:
    """Delete a role; refused while any admin has it (`tillkey admin assign-role` them first)."""
    run(lambda tk: tk.services.accounts.delete_role(OPERATOR, name))
    typer.echo(f"role {name} deleted")


@commands.command("list")
def role_list(as_json: JsonOpt = False) -> None:
    """List roles and their granted resources."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> list[Any]:
        async with tk.db.session() as s:
            return list(await repo.list_roles(s))

    roles = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"roles": [asdict(r) for r in roles]}) + "\n")
        return
    table = Table("id", "name", "builtin", "resources")
    for r in roles:
        table.add_row(str(r.id), r.name, str(r.builtin), "\n".join(r.resources))
    out.print(table)


@commands.command("resources")
def role_resources() -> None:
    """Show the resource tree that roles grant from."""
    from tillkey.access.tree import ResourceTree

    for depth, node in ResourceTree.load().walk():
        out.print(f"{'  ' * depth}{node.id}  [dim]{node.title}[/dim]", highlight=False)
