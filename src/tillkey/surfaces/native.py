"""Tillkey's own endpoints: health, readiness, metrics, the JWKS, and the auth-state feed that
library guards poll."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse, Response

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS
from tillkey.credentials import binding
from tillkey.credentials.bearer import access_token
from tillkey.errors import InvalidRequest
from tillkey.observability.health import ReadinessProbe
from tillkey.observability.metrics import CONTENT_TYPE, Metrics
from tillkey.principal import Principal, UserType
from tillkey.security.proxy import client_ip
from tillkey.surfaces.magento_wire import json_body
from tillkey.tokens.contracts import InvalidToken
from tillkey.tokens.keys import JWKS_MAX_AGE
from tillkey.web.routing import Api, principal, requires, tillkey

api = Api(tags=["Tillkey"])


@api.route("GET", "/healthz", resources=[ANONYMOUS], summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


_READY_BODY = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "failed"]}},
        "message": {"type": "string"},
    },
}


@api.route(
    "GET",
    "/readyz",
    resources=[ANONYMOUS],
    summary="Readiness: the database (and Redis, when configured) answer; 503 names the one that does not",
    responses={
        200: {"description": "Ready", "content": {"application/json": {"schema": _READY_BODY}}},
        503: {"description": "Not ready", "content": {"application/json": {"schema": _READY_BODY}}},
    },
)
async def readyz(request: Request) -> JSONResponse:
    probe: ReadinessProbe = request.app.state.readiness
    result = await probe.check()
    checks = {name: "ok" if up else "failed" for name, up in result.checks.items()}
    if result.ready:
        return JSONResponse({"status": "ready", "checks": checks})
    failed = ", ".join(name for name, up in result.checks.items() if not up)
    body = {"status": "unavailable", "checks": checks, "message": f"Not ready: {failed} unreachable."}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


METRICS_RESOURCE = "Tillkey::metrics"
_metrics_guard = requires(METRICS_RESOURCE)


@api.route(
    "GET",
    "/metrics",
    resources=[ANONYMOUS],
    summary=f"Prometheus metrics: anonymous from TILLKEY_METRICS_NETWORKS (loopback), else {METRICS_RESOURCE}",
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def metrics(request: Request) -> Response:
    # Declared anonymous because a scraper on a trusted network sends no credential; anyone else
    # goes through the same access check as a route declaring Tillkey::metrics.
    found: Metrics = request.app.state.metrics
    if not found.allows_anonymous(client_ip(request.scope)):
        await _metrics_guard(request)
    return Response(await found.render(), media_type=CONTENT_TYPE)


@api.route(
    "GET",
    "/.well-known/jwks.json",
    resources=[ANONYMOUS],
    summary="Public signing keys (RFC 7517), for services that verify tokens offline",
)
async def jwks(request: Request) -> JSONResponse:
    tk = tillkey(request)
    return JSONResponse(tk.keyring.jwks(tk.clock.now()), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})


@api.route(
    "GET",
    "/tillkey/v1/auth-state",
    resources=["Tillkey::auth_state"],
    summary="Revocations and admin grants, for library guards; supports If-None-Match",
)
async def auth_state(request: Request) -> Response:
    tk = tillkey(request)
    now = tk.clock.now_int()
    oldest = now - max(tk.settings.admin_token_ttl, tk.settings.customer_token_ttl)
    state: dict[str, Any] = {
        # Watermarks older than every token lifetime change nothing, except for integrations
        # (tokens that never expire).
        "revoke_before": sorted(
            [t, u, ts]
            for (t, u), ts in tk.revocations.revoke_before.items()
            if ts > oldest or t == UserType.INTEGRATION
        ),
        "revoked_tokens": sorted([j, e] for j, e in tk.revocations.revoked.items() if e is None or e > now),
        "admins": tk.grants.export(),
        # OAuth 2 tokens are honoured only while their client exists, with its current scopes.
        "oauth_clients": tk.grants.export_clients(),
    }
    body = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@api.route(
    "POST",
    "/tillkey/v1/logout",
    resources=[ANONYMOUS],
    summary="Revoke the presented bearer token only (per-token revocation by jti); other sessions stay",
)
async def logout(request: Request) -> JSONResponse:
    # Declared anonymous so any kind of caller can use it; the token itself is the credential.
    tk = tillkey(request)
    presented = access_token(request.headers.get("authorization"))
    token = None if presented is None else presented[1]
    try:
        if presented is None or token is None:
            raise InvalidToken(detail="no bearer token")
        # BindingRefused: its own challenge
        _, claims = await binding.authenticate(tk.authenticator, tk.binding, request, presented[0], token)
    except InvalidToken as exc:
        exc.message = "A valid bearer token is required."
        exc.headers["WWW-Authenticate"] = 'Bearer realm="tillkey"' + (', error="invalid_token"' if token else "")
        raise
    await tk.revoker.revoke_token(claims)
    return JSONResponse({"revoked": True})


_PASSWORD_CHANGE = {
    "type": "object",
    "required": ["current_password", "new_password"],
    "properties": {"current_password": {"type": "string"}, "new_password": {"type": "string"}},
}


@api.route(
    "POST",
    "/tillkey/v1/admins/me/password",
    resources=[ADMIN_SELF],
    actors=[UserType.ADMIN],
    body_schema=_PASSWORD_CHANGE,
    summary="Change one's own admin password (the current one required); every token and session of the "
    "account ends, the calling token too",
)
async def change_password(request: Request, caller: Annotated[Principal, Depends(principal)]) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    current, new = body.get("current_password"), body.get("new_password")
    if not isinstance(current, str) or not isinstance(new, str) or len(current) > 1024 or len(new) > 1024:
        raise InvalidRequest("Invalid request: 'current_password' and 'new_password' must be strings")
    await tk.services.own_password.change(caller.user_id, current, new, ip=client_ip(request.scope))
    return JSONResponse({"changed": True, "signed_out": True}, headers={"Cache-Control": "no-store"})
