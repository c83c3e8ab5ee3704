"""Tillkey's own endpoints: health, the JWKS, and the auth-state feed that library guards poll."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse, Response

from tillkey.access.tree import ANONYMOUS
from tillkey.credentials.bearer import bearer_token
from tillkey.principal import UserType
from tillkey.surfaces.routing import Api, tillkey
from tillkey.tokens.contracts import InvalidToken
from tillkey.tokens.keys import JWKS_MAX_AGE

api = Api(tags=["Tillkey"])


@api.route("GET", "/healthz", resources=[ANONYMOUS], summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@api.route(
    "GET", "/.well-known/jwks.json", resources=[ANONYMOUS],
    summary="Public signing keys (RFC 7517), for services that verify tokens offline",
)  # fmt: skip
async def jwks(request: Request) -> JSONResponse:
    tk = tillkey(request)
    return JSONResponse(tk.keyring.jwks(tk.clock.now()), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})


@api.route(
    "GET", "/tillkey/v1/auth-state", resources=["Tillkey::auth_state"],
    summary="Revocations and admin grants, for library guards; supports If-None-Match",
)  # fmt: skip
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
    "POST", "/tillkey/v1/logout", resources=[ANONYMOUS],
    summary="Revoke the presented bearer token only (per-token revocation by jti); other sessions stay",
)  # fmt: skip
async def logout(request: Request) -> JSONResponse:
    # Declared anonymous so any kind of caller can use it; the token itself is the credential.
    tk = tillkey(request)
    token = bearer_token(request.headers.get("authorization"))
    try:
        if token is None:
            raise InvalidToken(detail="no bearer token")
        await tk.authenticator.authenticate(token)
        claims = await tk.authenticator.read(token)
    except InvalidToken as exc:
        exc.message = "A valid bearer token is required."
        exc.headers["WWW-Authenticate"] = 'Bearer realm="tillkey"' + (', error="invalid_token"' if token else "")
        raise
    await tk.revoker.revoke_token(claims)
    return JSONResponse({"revoked": True})
