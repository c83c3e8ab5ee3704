"""`tillkey keys ...`: signing keys and their rotation."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import run
from tillkey.runtime import Tillkey
from tillkey.tokens.keys import JWKS_MAX_AGE, SigningKey

commands = typer.Typer(no_args_is_help=True, help="Signing keys.")


@commands.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List signing keys and where each is in its life (never their secret material)."""

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        now = tk.clock.now_int()
        signer = tk.keyring.signer(now)
        return [
            {
                "kid": k.kid,
                "alg": k.alg,
                "state": _key_state(k, now, signer is k, tk.settings.jwt_alg),
                "created_at": k.created_at,
                "signs_from": k.signs_from or k.created_at,
                "retired_at": k.retired_at,
                "verify_until": k.verify_until,
            }
            for k in tk.keyring.by_kid.values()
        ]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"keys": rows}) + "\n")
        return
    table = Table(*rows[0].keys()) if rows else Table("kid")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    out.print(table)


def _key_state(key: SigningKey, now: int, signing: bool, alg: str) -> str:
    if not key.verifies_at(now):
        return "retired"
    if signing:
        return "signing"
    if key.retired_at is None or key.retired_at > now:
        return "pending" if key.alg == alg else "other-alg"
    return "verifying"


@commands.command("rotate")
def keys_rotate(
    publish_ahead: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds the new key is published before it signs (verifiers caching the JWKS learn it first).",
        ),
    ] = JWKS_MAX_AGE,
    grace: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seconds replaced keys keep verifying once the new key signs (default: longest token TTL + 60).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a signing key; the current one stops signing when it starts, and verifies until its tokens expire."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        done = await tk.services.keys.rotate(publish_ahead=publish_ahead, grace=grace)
        return {
            "kid": done.kid,
            "alg": done.alg,
            "signs_from": done.signs_from,
            "replaced": done.replaced,
            "replaced_verify_until": done.replaced_verify_until,
        }

    emit(run(go), as_json, "Signing key rotated")


@commands.command("retire")
def keys_retire(kid: Annotated[str, typer.Argument(help="The key to end now.")], as_json: JsonOpt = False) -> None:
    """End a key now (suspected leak): every token it signed is refused; a new key signs if needed."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        return {"kid": kid, "retired": True, "replacement": await tk.services.keys.retire(kid)}

    emit(run(go), as_json, "Signing key retired")
