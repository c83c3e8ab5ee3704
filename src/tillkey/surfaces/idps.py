"""The admin API for external identity providers (issue 14): what `tillkey idp` does, for an
admin holding Tillkey::idps. Saving a provider with a role map or default role is delegation
(federation/providers.py): the roles must be within the caller's grant."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse

from tillkey.errors import InvalidRequest
from tillkey.federation.providers import Changes, NewProvider, provider_json
from tillkey.surfaces.magento_wire import json_body
from tillkey.web.caching import NO_STORE_ONLY as NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Identity providers"])
IDPS = "Tillkey::idps"
_STRINGS = ("name", "client_id", "actor")
_OPTIONAL = (
    "issuer",
    "client_secret",
    "display_name",
    "scope",
    "redirect_uri",
    "groups_claim",
    "default_role",
    "provisioning",
    "preset",
    "protocol",
)
_SETTINGS: tuple[str, ...] = ("tenant", "team_id", "key_id")  # a preset's own (entra; apple: key as client_secret)
# protocol "ldap" (issue 15): issuer is the URL, client_id the bind DN, client_secret the bind password.
_SETTINGS += ("user_base", "user_filter", "group_base", "group_filter", "nested_groups", "start_tls")
_SETTINGS += ("tls_ca_file", "sync_interval")
_BODY = {
    "type": "object",
    "required": list(_STRINGS),
    "properties": {
        **{k: {"type": "string"} for k in (*_STRINGS, *_OPTIONAL, *_SETTINGS)},
        "role_map": {"type": "object", "additionalProperties": {"type": "string"}},
        "allowed_domains": {"type": "array", "items": {"type": "string"}},
        "trust_email_domains": {"type": "boolean"},
        "mfa_from_amr": {"type": "boolean"},
        "userinfo": {"type": "boolean"},
    },
}
_CHANGES = {
    "type": "object",
    "properties": {
        **{k: {"type": "string"} for k in ("default_role", "groups_claim", "display_name")},
        "role_map": {"type": "object", "additionalProperties": {"type": "string"}},
        "userinfo": {"type": "boolean"},
    },
}


def _role_map(body: dict[str, Any]) -> dict[str, str]:
    role_map = body.get("role_map", {})
    if not isinstance(role_map, dict) or not all(isinstance(v, str) for v in role_map.values()):
        raise InvalidRequest("role_map must be an object of group: role name.")
    return {str(k): v for k, v in role_map.items()}


def _changes(body: dict[str, Any]) -> Changes:
    fields: dict[str, Any] = {}
    for key in ("default_role", "groups_claim", "display_name"):
        if body.get(key) is not None:
            if not isinstance(body[key], str):
                raise InvalidRequest(f"{key} must be a string.")
            fields[key] = body[key]
    if "role_map" in body:
        fields["role_map"] = _role_map(body)
    if body.get("userinfo") is not None:
        if not isinstance(body["userinfo"], bool):
            raise InvalidRequest("userinfo must be a boolean.")
        fields["userinfo"] = body["userinfo"]
    return Changes(**fields)


def _new(body: dict[str, Any]) -> NewProvider:
    fields: dict[str, Any] = {}
    for key in _STRINGS:
        if not isinstance(body.get(key), str):
            raise InvalidRequest(f"{key} is a required string.")
        fields[key] = body[key]
    for key in _OPTIONAL:
        if key in body and body[key] is not None:
            if not isinstance(body[key], str):
                raise InvalidRequest(f"{key} must be a string.")
            fields[key] = body[key]
    settings = {k: body[k] for k in _SETTINGS if body.get(k) is not None}
    if not all(isinstance(v, str) for v in settings.values()):
        raise InvalidRequest(f"{', '.join(_SETTINGS)} must be strings.")
    fields["settings"] = settings
    fields.setdefault("issuer", "")  # a preset fills it
    domains = body.get("allowed_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise InvalidRequest("allowed_domains must be a list of strings.")
    for flag in ("trust_email_domains", "mfa_from_amr", "userinfo"):
        if not isinstance(body.get(flag, False), bool):
            raise InvalidRequest(f"{flag} must be a boolean.")
        fields[flag] = body.get(flag, False)
    return NewProvider(**fields, role_map=_role_map(body), allowed_domains=domains)


@api.route(
    "POST",
    "/tillkey/v1/idps",
    resources=[IDPS],
    body_schema=_BODY,
    status_code=201,
    delegates="idp_role_map",
    summary="Add an external identity provider; its role map may hand out only roles within the caller's grant",
)
async def add(request: Request) -> JSONResponse:
    tk = tillkey(request)
    new = _new(await json_body(request, tk.settings.max_body_bytes))
    added = await tk.services.identity_providers.add(await principal(request), new)
    return JSONResponse(provider_json(added), status_code=201, headers=NO_STORE)


@api.route("GET", "/tillkey/v1/idps", resources=[IDPS], summary="List external identity providers (never secrets)")
async def listed(request: Request) -> JSONResponse:
    return JSONResponse(
        {"providers": [provider_json(p) for p in await tillkey(request).services.identity_providers.listed()]}
    )


@api.route("GET", "/tillkey/v1/idps/{name}", resources=[IDPS], summary="One external identity provider")
async def show(request: Request, name: str) -> JSONResponse:
    return JSONResponse(provider_json(await tillkey(request).services.identity_providers.get(name[:64])))


@api.route(
    "PATCH",
    "/tillkey/v1/idps/{name}",
    resources=[IDPS],
    body_schema=_CHANGES,
    delegates="idp_role_map",
    summary="Change an external identity provider; a change to its roles signs out the admins linked through it",
)
async def update(request: Request, name: str) -> JSONResponse:
    tk = tillkey(request)
    changes = _changes(await json_body(request, tk.settings.max_body_bytes))
    updated = await tk.services.identity_providers.update(await principal(request), name[:64], changes)
    return JSONResponse(provider_json(updated), headers=NO_STORE)


@api.route(
    "DELETE",
    "/tillkey/v1/idps/{name}",
    resources=[IDPS],
    summary="Remove an external identity provider and the identities linked from it (the accounts stay)",
)
async def remove(request: Request, name: str) -> JSONResponse:
    unlinked = await tillkey(request).services.identity_providers.remove(name[:64])
    return JSONResponse({"name": name[:64], "removed": True, "unlinked_identities": unlinked})
