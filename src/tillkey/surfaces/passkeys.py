"""Passkey routes under /auth/mfa/passkeys, beside Medusa's MFA routes and in their JSON shape:
the caller (a customer, or an admin, by their bearer token or session) registers, lists, renames
and removes their own passkeys (accounts/passkeys.py). Registration is two calls: `options`
hands out WebAuthn creation options bound to the caller's credential, then the browser's answer
to navigator.credentials.create() is posted back with a name. Signing in with one is the MFA
challenge's (surfaces/medusa_mfa.py). Included before surfaces/medusa.py, whose
`/auth/{actor}/{provider}` would otherwise take these paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.medusa_mfa import RECENT_MFA
from tillkey.accounts.passkeys import NO_PASSKEY, Owner
from tillkey.errors import AuthenticationRequired, NotAllowed, NotFound
from tillkey.parsing import ascii_int
from tillkey.principal import Principal, UserType
from tillkey.store.passkeys import Passkey
from tillkey.surfaces.medusa_wire import json_body
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Passkeys"])
Caller = Annotated[Principal, Depends(principal)]


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(p: Passkey) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "aaguid": p.aaguid,
        "transports": list(p.transports),
        "backup_eligible": p.backup_eligible,
        "backed_up": p.backup_state,
        "sign_count": p.sign_count,
        "created_at": _iso(p.created_ms),
        "last_used_at": _iso(p.last_used_ms),
    }


def _owner(caller: Principal, request: Request) -> Owner:
    if caller.user_type not in (UserType.ADMIN, UserType.CUSTOMER) or not caller.user_id:
        raise AuthenticationRequired(detail="passkeys need a signed-in admin or customer")
    if caller.user_type == UserType.CUSTOMER and tillkey(request).settings.customer_2fa == "off":
        raise NotAllowed("MFA is not available for customers on this store")
    return Owner(caller.user_type, caller.user_id)


def _binding(caller: Principal) -> str:
    """A registration's challenge belongs to the credential that asked for it (its token or
    session), not merely to the account: another of the account's sessions cannot finish it."""
    return f"principal:{int(caller.user_type)}:{caller.user_id}:{caller.token_id}:{caller.auth_time}"


def _passkey_id(raw: str) -> int:
    value = ascii_int(raw, 18)
    if value is None:
        raise NotFound(NO_PASSKEY)
    return value


@api.route("GET", "/auth/mfa/passkeys", resources=[ANONYMOUS], summary="The caller's passkeys")
async def list_passkeys(request: Request, caller: Caller) -> JSONResponse:
    found = await tillkey(request).services.passkeys.list(_owner(caller, request))
    return JSONResponse({"passkeys": [render(p) for p in found]})


@api.route(
    "POST",
    "/auth/mfa/passkeys/options",
    resources=[ANONYMOUS],
    summary="Start registering a passkey: WebAuthn creation options (single use, short-lived)",
)
async def registration_options(request: Request, caller: Caller) -> JSONResponse:
    ceremony = await tillkey(request).services.passkeys.registration_options(_owner(caller, request), _binding(caller))
    return JSONResponse({"ceremony_id": ceremony.id, "options": ceremony.options}, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/mfa/passkeys",
    resources=[ANONYMOUS],
    summary="Finish registering a passkey: {ceremony_id, credential, name}",
)
async def register(request: Request, caller: Caller) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    owner = _owner(caller, request)
    passkey = await tk.services.passkeys.register(
        owner, _binding(caller), body.get("ceremony_id"), body.get("credential"), body.get("name", "Passkey")
    )
    return JSONResponse({"passkey": render(passkey)}, status_code=201)


@api.route("POST", "/auth/mfa/passkeys/{passkey_id}", resources=[ANONYMOUS], summary="Rename one's passkey: {name}")
async def rename(request: Request, caller: Caller, passkey_id: str) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    passkey = await tk.services.passkeys.rename(_owner(caller, request), _passkey_id(passkey_id), body.get("name"))
    return JSONResponse({"passkey": render(passkey)})


@api.route(
    "DELETE",
    "/auth/mfa/passkeys/{passkey_id}",
    resources=[ANONYMOUS],
    step_up=RECENT_MFA,
    summary="Remove one's passkey (needs MFA within 5 minutes; an admin's last factor is another's to reset)",
)
async def remove(request: Request, caller: Caller, passkey_id: str) -> JSONResponse:
    passkey = await tillkey(request).services.passkeys.remove_own(_owner(caller, request), _passkey_id(passkey_id))
    return JSONResponse({"id": passkey.id, "object": "passkey", "deleted": True})
