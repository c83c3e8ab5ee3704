"""Medusa-style admin routes: API keys (/admin/api-keys, medusa.md §3) and /admin/users/me.

Callers are admins or secret API keys (Medusa's authenticate("user", [bearer, session, api-key]));
customers and guests get Medusa's 401. Every route needs Tillkey::api_keys, except users/me.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from tillkey.access.tree import ADMIN_SELF
from tillkey.accounts.medusa_auth import actor_id
from tillkey.errors import InvalidRequest, NotFound
from tillkey.parsing import ascii_int
from tillkey.principal import Principal, UserType
from tillkey.store.accounts import Admin
from tillkey.store.api_keys import SECRET, TYPES, ApiKey
from tillkey.surfaces.medusa_wire import (
    KEY_PREFIX,
    iso,
    iso_dt,
    json_body,
    prefixed_id,
    required_string,
)
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Medusa admin"])
Caller = Annotated[Principal, Depends(principal)]
API_KEYS = "Tillkey::api_keys"
ADMINS = (UserType.ADMIN, UserType.API_KEY)
_CREATE = {
    "type": "object",
    "required": ["title", "type"],
    "properties": {
        "title": {"type": "string"},
        "type": {"type": "string", "enum": list(TYPES)},
        "resources": {"type": "array", "items": {"type": "string"}, "description": "secret keys: resource ids"},
    },
}


def key_json(k: ApiKey, token: str | None = None) -> dict[str, Any]:
    """Medusa's api_key object. A secret key's token is "" except in the create answer."""
    return {
        "id": f"{KEY_PREFIX}{k.id}",
        "title": k.title,
        "token": token or k.public_token or "",
        "redacted": k.redacted,
        "type": k.type,
        "last_used_at": iso(k.last_used_ms),
        "created_by": actor_id("user", k.created_by),
        "revoked_by": actor_id("user", k.revoked_by),
        "revoked_at": iso(k.revoked_ms),
        "created_at": iso(k.created_ms),
        "updated_at": iso(k.updated_ms),
        "deleted_at": iso(k.deleted_ms),
        "sales_channels": [],
        "resources": list(k.resources) if k.type == SECRET else [],
    }


def _key_id(raw: str) -> int:
    key_id = prefixed_id(KEY_PREFIX, raw)
    if key_id is None:
        raise NotFound(f"API Key with id: {raw[:80]} was not found")
    return key_id


def _acting_admin(request: Request, caller: Principal) -> int | None:
    """The admin a new key acts for: the caller, or the admin behind the calling key."""
    if caller.user_type == UserType.ADMIN:
        return caller.user_id
    key = tillkey(request).api_keys.by_id(caller.user_id)
    return key.created_by if key else None


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = ascii_int(raw, len(str(high)))
    if value is None or value > high:
        raise InvalidRequest(f"Invalid request: Field '{name}' must be a number from 0 to {high}")
    return value


@api.route("GET", "/admin/api-keys", resources=[API_KEYS], actors=ADMINS, summary="List API keys")
async def list_keys(request: Request) -> JSONResponse:
    kind = request.query_params.get("type")
    if kind is not None and kind not in TYPES:
        raise InvalidRequest("Invalid request: Field 'type' must be 'publishable' or 'secret'")
    limit = _int_param(request, "limit", 20, 1000)
    offset = _int_param(request, "offset", 0, 2**31 - 1)
    q = request.query_params.get("q")
    keys, count = await tillkey(request).services.api_keys.listing(
        type=kind, q=q[:255] if q else None, limit=limit, offset=offset
    )
    return JSONResponse({"api_keys": [key_json(k) for k in keys], "count": count, "offset": offset, "limit": limit})


@api.route(
    "POST",
    "/admin/api-keys",
    resources=[API_KEYS],
    actors=ADMINS,
    body_schema=_CREATE,
    delegates="api_key",
    summary="Create an API key; a secret key's token is in this answer only",
)
async def create_key(request: Request, caller: Caller) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    title = required_string(body, "title")
    kind = required_string(body, "type", 16)
    resources = body.get("resources")
    if resources is not None and (
        not isinstance(resources, list) or not all(isinstance(r, str) and len(r) <= 255 for r in resources)
    ):
        raise InvalidRequest("Invalid request: Field 'resources' must be a list of resource ids")
    created = await tk.services.api_keys.create(caller, title=title, type=kind, resources=resources)
    return JSONResponse({"api_key": key_json(created.key, created.token)}, headers=NO_STORE)


@api.route("GET", "/admin/api-keys/{key_id}", resources=[API_KEYS], actors=ADMINS, summary="One API key")
async def get_key(request: Request, key_id: str) -> JSONResponse:
    return JSONResponse({"api_key": key_json(await tillkey(request).services.api_keys.get(_key_id(key_id)))})


@api.route("POST", "/admin/api-keys/{key_id}", resources=[API_KEYS], actors=ADMINS, summary="Rename an API key")
async def update_key(request: Request, key_id: str) -> JSONResponse:
    tk = tillkey(request)
    title = required_string(await json_body(request, tk.settings.max_body_bytes), "title")
    return JSONResponse({"api_key": key_json(await tk.services.api_keys.rename(_key_id(key_id), title))})


@api.route(
    "DELETE",
    "/admin/api-keys/{key_id}",
    resources=[API_KEYS],
    actors=ADMINS,
    summary="Delete a revoked API key (soft delete)",
)
async def delete_key(request: Request, caller: Caller, key_id: str) -> JSONResponse:
    kid = _key_id(key_id)
    await tillkey(request).services.api_keys.delete(kid, actor_type=int(caller.user_type), actor_id=caller.user_id)
    return JSONResponse({"id": f"{KEY_PREFIX}{kid}", "object": "api_key", "deleted": True})


@api.route(
    "POST",
    "/admin/api-keys/{key_id}/revoke",
    resources=[API_KEYS],
    actors=ADMINS,
    summary="Revoke an API key now, or revoke_in seconds from now",
)
async def revoke_key(request: Request, caller: Caller, key_id: str) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    revoke_in = body.get("revoke_in", 0)
    if revoke_in is None:
        revoke_in = 0
    if isinstance(revoke_in, bool) or not isinstance(revoke_in, int | float):
        raise InvalidRequest("Invalid request: Field 'revoke_in' must be a number of seconds")
    key = await tk.services.api_keys.revoke(
        _key_id(key_id),
        revoke_in=float(revoke_in),
        by=_acting_admin(request, caller),
        actor_type=int(caller.user_type),
        actor_id=caller.user_id,
    )
    return JSONResponse({"api_key": key_json(key)})


@api.route("GET", "/admin/users/me", resources=[ADMIN_SELF], actors=ADMINS, summary="The calling admin")
async def me(request: Request, caller: Caller) -> JSONResponse:
    account = await tillkey(request).services.medusa_auth.me(caller)
    assert isinstance(account, Admin)
    return JSONResponse(
        {
            "user": {
                "id": actor_id("user", account.id),
                "first_name": account.firstname or None,
                "last_name": account.lastname or None,
                "email": account.email,
                "avatar_url": None,
                "metadata": None,
                "created_at": iso_dt(account.created_at),
                "updated_at": iso_dt(account.created_at),
                "deleted_at": None,
            }
        }
    )
