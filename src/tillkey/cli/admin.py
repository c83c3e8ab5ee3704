"""`tillkey admin ...`: admin users."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.options import JsonOpt, PasswordOpt, PasswordStdinOpt, read_password
from tillkey.cli.output import emit, out
from tillkey.cli.runner import fail, run
from tillkey.principal import UserType
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="Admin users.")


@commands.command("create")
def admin_create(
    username: Annotated[str, typer.Option(help="Login name (case-insensitive).")],
    email: Annotated[str, typer.Option()],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    role: Annotated[str | None, typer.Option(help="Role name; default Administrators (everything).")] = None,
    first_name: Annotated[str, typer.Option()] = "",
    last_name: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an admin user. The password (at least 8 characters, not a common one) is asked for
    unless given with --password-stdin."""
    password = read_password(password, password_stdin)
    admin = run(
        lambda tk: tk.services.accounts.create_admin(
            OPERATOR,
            username=username,
            email=email,
            password=password,
            role=role,
            firstname=first_name,
            lastname=last_name,
        )
    )
    emit(asdict(admin), as_json, "admin created")


@commands.command("list")
def admin_list(as_json: JsonOpt = False) -> None:
    """List admin users."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        async with tk.db.session() as s:
            roles = {r.id: r.name for r in await repo.list_roles(s)}
            return [
                {
                    "id": a.id,
                    "username": a.username,
                    "email": a.email,
                    "active": a.is_active,
                    "role": roles.get(a.role_id or -1),
                }
                for a in await repo.list_admins(s)
            ]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"admins": rows}) + "\n")
        return
    table = Table("id", "username", "email", "active", "role")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    out.print(table)


def admin_id(tk: Tillkey, username: str) -> Awaitable[int]:
    from tillkey.store import accounts as repo

    async def go() -> int:
        async with tk.db.session() as s:
            admin = await repo.admin_by_username(s, username)
        if admin is None:
            fail(f"there is no admin named {username!r}")
        return admin.id

    return go()


@commands.command("deactivate")
def admin_deactivate(username: str) -> None:
    """Deactivate an admin; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.set_admin_active(OPERATOR, await admin_id(tk, username), False)

    run(go)
    typer.echo(f"admin {username} deactivated; their tokens are revoked")


@commands.command("activate")
def admin_activate(username: str) -> None:
    """Re-activate an admin."""

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.set_admin_active(OPERATOR, await admin_id(tk, username), True)

    run(go)
    typer.echo(f"admin {username} activated")


@commands.command("delete")
def admin_delete(username: str) -> None:
    """Delete an admin; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.delete_admin(OPERATOR, await admin_id(tk, username))

    run(go)
    typer.echo(f"admin {username} deleted")


@commands.command("revoke-tokens")
def admin_revoke_tokens(username: str) -> None:
    """Sign an admin out everywhere (Magento's "Invalidate token")."""

    async def go(tk: Tillkey) -> None:
        await tk.revoker.revoke_for(UserType.ADMIN, await admin_id(tk, username))

    run(go)
    typer.echo(f"tokens of admin {username} revoked")


@commands.command("unlock")
def admin_unlock(username: str) -> None:
    """Lift an admin's account lock and login throttle."""

    async def go(tk: Tillkey) -> None:
        await tk.services.sign_in.unlock(UserType.ADMIN, await admin_id(tk, username), username)

    run(go)
    typer.echo(f"admin {username} unlocked")


@commands.command("assign-role")
def admin_assign_role(username: str, role: str) -> None:
    """Give an admin another role."""
    run(lambda tk: tk.services.accounts.assign_role(OPERATOR, username, role))
    typer.echo(f"admin {username} now has role {role}")


@commands.command("password")
def admin_password(username: str, password: PasswordOpt = None, password_stdin: PasswordStdinOpt = False) -> None:
    """Set an admin's new password (asked for, or --password-stdin); their tokens and sessions end."""
    password = read_password(password, password_stdin, prompt=f"New password for {username}")

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.reset_admin_password(OPERATOR, await admin_id(tk, username), password)

    run(go)
    typer.echo(f"password of admin {username} changed; their tokens and sessions are ended")
