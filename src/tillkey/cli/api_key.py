"""`tillkey api-key ...`: Medusa-style secret and publishable API keys."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.admin import admin_id
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import fail, run
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="Medusa-style API keys: secret (sk_) and publishable (pk_).")


def _key_row(key: Any) -> dict[str, Any]:
    from tillkey.surfaces.api_keys import key_json

    return key_json(key)


@commands.command("create")
def api_key_create(
    title: Annotated[str, typer.Option("--title", help="What the key is for.")],
    key_type: Annotated[str, typer.Option("--type", help="secret (a server's credential) or publishable.")],
    admin: Annotated[
        str | None, typer.Option("--for", help="Secret keys: the admin the key acts for (never exceeds their grant).")
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="Secret keys: resource id; repeatable (default all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; a secret key is printed once and only its digest is stored."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        creator = await admin_id(tk, admin) if admin else None
        created = await tk.services.api_keys.create(
            OPERATOR, title=title, type=key_type, for_admin=creator, resources=resource
        )
        row = _key_row(created.key)
        row["token"] = created.token
        return row

    emit(run(go), as_json, "API key created (a secret key is not shown again)")


@commands.command("list")
def api_key_list(as_json: JsonOpt = False) -> None:
    """List API keys, secret ones redacted."""

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        keys, _count = await tk.services.api_keys.listing(type=None, q=None, limit=1000, offset=0)
        return [_key_row(k) for k in keys]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"api_keys": rows}) + "\n")
        return
    table = Table("id", "type", "title", "redacted", "created_by", "last_used_at", "revoked_at")
    for r in rows:
        table.add_row(
            *(str(r[c] or "") for c in ("id", "type", "title", "redacted", "created_by", "last_used_at", "revoked_at"))
        )
    out.print(table)


@commands.command("revoke")
def api_key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (apk_N).")],
    revoke_in: Annotated[float, typer.Option("--in", min=0, help="Seconds until it stops; default now.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key, now or later; every server refuses it within the sync interval."""
    from tillkey.surfaces.medusa_wire import KEY_PREFIX, prefixed_id

    number = prefixed_id(KEY_PREFIX, key_id)
    if number is None:
        fail(f"no API key {key_id!r}")
    revoked = run(lambda tk: tk.services.api_keys.revoke(number, revoke_in=revoke_in, by=None))
    emit(_key_row(revoked), as_json, "API key revoked")
