"""OAuth 1.0a token exchange (/oauth/token/request, /oauth/token/access; magento.md §7) and the
admin API for integrations (/tillkey/v1/integrations).

The token endpoints answer form-encoded bodies, errors included: `oauth_problem=<message>`, 401
for a refused credential and 400 for bad input, as Magento's Oauth\\Helper\\Request does.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi import Path as FastApiPath
from starlette.responses import JSONResponse, Response

from tillkey import audit
from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.integrations import describe
from tillkey.credentials.oauth1 import FORM, form_body, signed_uri
from tillkey.errors import InvalidRequest, TillkeyError
from tillkey.oauth1 import rfc5849
from tillkey.oauth1.handshake import problem
from tillkey.principal import Principal
from tillkey.surfaces.magento_wire import json_body
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["OAuth 1.0a and integrations"])
MANAGE = "Magento_Integration::integrations"
IntegrationId = Annotated[int, FastApiPath(ge=1, le=2**31 - 1)]
Caller = Annotated[Principal, Depends(principal)]


_FORM_BODY = {"content": {FORM: {"schema": {"type": "string"}}}}
# Everything these endpoints answer is form-encoded: tokens, and errors as oauth_problem=...
FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": "oauth_token and oauth_token_secret" if code == 200 else "oauth_problem", **_FORM_BODY}
    for code in (200, 400, 401, 413)
}


def _form(values: dict[str, str], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    headers = {**(headers or {}), **NO_STORE}
    return Response(urlencode(values), status_code=status_code, media_type=FORM, headers=headers)


def error_response(err: TillkeyError) -> Response:
    """Any error on /oauth/token/*, in Magento's form (Oauth/Helper/Request::prepareErrorResponse):
    `oauth_problem=<message>`, and for anything unexpected `oauth_problem=internal_error&message=…`."""
    if err.status_code >= 500:
        return _form({"oauth_problem": "internal_error", "message": err.message}, err.status_code, err.headers)
    return _form({"oauth_problem": problem(err)}, err.status_code, err.headers)


async def _signed(request: Request) -> rfc5849.SignedRequest:
    body = await form_body(request, tillkey(request).settings.max_body_bytes)
    header = request.headers.get("authorization", "")
    if header and header[:6].lower() != "oauth ":
        header = ""  # not ours; the parameters may still come in the body or the query
    return rfc5849.parse(request.method, signed_uri(request), header, request.url.query, body)


async def _refused(request: Request, exc: TillkeyError) -> Response:
    tk = tillkey(request)
    await tk.audit.record_request(
        request,
        audit.OAUTH1_REFUSED,
        outcome=audit.FAILURE,
        details={"method": request.method, "path": request.url.path[:256], "reason": exc.detail or exc.message},
    )
    return _form({"oauth_problem": problem(exc)}, exc.status_code)


@api.route(
    "POST",
    "/oauth/token/request",
    resources=[ANONYMOUS],
    responses=FORM_RESPONSES,
    summary="OAuth 1.0a request token, signed with the consumer secret (activation handshake)",
)
async def request_token(request: Request) -> Response:
    try:
        pair = await tillkey(request).services.oauth1_exchange.request_token(await _signed(request), request.scope)
    except TillkeyError as exc:
        return await _refused(request, exc)
    return _form({"oauth_token": pair.token, "oauth_token_secret": pair.secret})


@api.route(
    "POST",
    "/oauth/token/access",
    resources=[ANONYMOUS],
    responses=FORM_RESPONSES,
    summary="OAuth 1.0a access token for a request token and its verifier; activates the integration",
)
async def access_token(request: Request) -> Response:
    try:
        _iid, pair = await tillkey(request).services.oauth1_exchange.access_token(await _signed(request), request.scope)
    except TillkeyError as exc:
        return await _refused(request, exc)
    return _form({"oauth_token": pair.token, "oauth_token_secret": pair.secret})


# --- admin API ----------------------------------------------------------------------------------

_CREATE = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "resources": {"type": "array", "items": {"type": "string"}},
        "all": {"type": "boolean", "description": "Grant every resource (Magento_Backend::all)"},
        "email": {"type": "string"},
        "endpoint_url": {"type": "string", "description": "Where activation posts the OAuth handshake"},
        "identity_link_url": {"type": "string"},
        "certificate": {
            "type": "string",
            "description": "A client certificate (PEM): the integration's calls must come with it (RFC 8705)",
        },
    },
}


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f'The "{name}" value must be a string.')
    return value


@api.route("GET", "/tillkey/v1/integrations", resources=[MANAGE], summary="List integrations (no secrets)")
async def list_integrations(request: Request) -> JSONResponse:
    return JSONResponse({"integrations": await tillkey(request).services.integrations.list()})


@api.route(
    "POST",
    "/tillkey/v1/integrations",
    resources=[MANAGE],
    body_schema=_CREATE,
    status_code=201,
    delegates="integration",
    summary="Create an integration; answers its consumer key and secret (the secret is shown once)",
)
async def create_integration(request: Request, caller: Caller) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    name = _optional_string(body, "name")
    if not name:
        raise InvalidRequest('"name" is required.')
    resources = body.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise InvalidRequest('The "resources" value must be a list of resource ids.')
    everything = body.get("all", False)
    if not isinstance(everything, bool):
        raise InvalidRequest('The "all" value must be true or false.')
    created = await tk.services.integrations.create(
        caller,
        name=name,
        resources=resources,
        all_resources=everything,
        email=_optional_string(body, "email") or "",
        endpoint_url=_optional_string(body, "endpoint_url"),
        identity_link_url=_optional_string(body, "identity_link_url"),
        certificate_pem=_optional_string(body, "certificate"),
    )
    out = {
        "id": created.id,
        "name": created.name,
        "consumer_key": created.consumer_key,
        "consumer_secret": created.consumer_secret,
        "resources": list(created.resources),
        "endpoint_url": created.endpoint_url,
        "certificate": created.certificate,
    }
    return JSONResponse(out, status_code=201, headers=NO_STORE)


@api.route(
    "POST",
    "/tillkey/v1/integrations/{integration_id}/activate",
    resources=[MANAGE],
    delegates="integration_activation",
    summary="Activate or re-authorize: the access token at once (manual), or the handshake posted to the endpoint",
)
async def activate_integration(request: Request, caller: Caller, integration_id: IntegrationId) -> JSONResponse:
    done = await tillkey(request).services.integrations.activate(caller, integration_id)
    out = {
        k: v
        for k, v in {
            "id": done.id,
            "name": done.name,
            "consumer_key": done.consumer_key,
            "access_token": done.access_token,
            "access_token_secret": done.access_token_secret,
            "handshake_expires_at": done.handshake_expires_at,
            "identity_link_url": done.identity_link_url,
        }.items()
        if v is not None
    }
    out["status"] = "active" if done.access_token else "handshake_started"
    return JSONResponse(out, headers=NO_STORE)


@api.route(
    "PUT",
    "/tillkey/v1/integrations/{integration_id}/certificate",
    resources=[MANAGE],
    body_schema={
        "type": "object",
        "required": ["certificate"],
        "properties": {"certificate": {"type": ["string", "null"], "description": "PEM; null unbinds"}},
    },
    summary="Bind the integration to a client certificate (RFC 8705), or unbind it (null); answers the integration",
)
async def bind_integration_certificate(request: Request, caller: Caller, integration_id: IntegrationId) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    if "certificate" not in body:
        raise InvalidRequest('"certificate" is required: a PEM certificate, or null to unbind.')
    pem = _optional_string(body, "certificate")
    return JSONResponse(await tk.services.integrations.bind_certificate(integration_id, pem, acting=caller))


@api.route(
    "POST",
    "/tillkey/v1/integrations/{integration_id}/deactivate",
    resources=[MANAGE],
    summary="Deactivate: the integration's calls are refused until it is activated again",
)
async def deactivate_integration(request: Request, caller: Caller, integration_id: IntegrationId) -> JSONResponse:
    return JSONResponse(
        describe(await tillkey(request).services.integrations.deactivate(integration_id, acting=caller))
    )


@api.route(
    "POST",
    "/tillkey/v1/integrations/{integration_id}/revoke",
    resources=[MANAGE],
    summary="Revoke the integration's access token (it must be activated again to get a new one)",
)
async def revoke_integration(request: Request, caller: Caller, integration_id: IntegrationId) -> JSONResponse:
    return JSONResponse({"revoked": await tillkey(request).services.integrations.revoke(integration_id, acting=caller)})


@api.route("DELETE", "/tillkey/v1/integrations/{integration_id}", resources=[MANAGE], summary="Delete an integration")
async def delete_integration(request: Request, caller: Caller, integration_id: IntegrationId) -> JSONResponse:
    await tillkey(request).services.integrations.delete(integration_id, acting=caller)
    return JSONResponse({"deleted": True})
