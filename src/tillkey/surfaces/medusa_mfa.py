"""Medusa 2.21's MFA routes under /auth/mfa (accounts/medusa_mfa.py has the rules; docs/compatibility.md
the wire), so @medusajs/js-sdk's `sdk.auth.mfa.*` works unchanged. Included before surfaces/medusa.py,
whose `/auth/{actor}/{provider}` would otherwise take `/auth/mfa/factors`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from tillkey.access.tree import ANONYMOUS
from tillkey.credentials.bearer import bearer_token
from tillkey.principal import Principal
from tillkey.surfaces.magento import attempt
from tillkey.surfaces.medusa_wire import json_body
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Medusa MFA"])
Caller = Annotated[Principal, Depends(principal)]


async def _body(request: Request) -> dict[str, Any]:
    return await json_body(request, tillkey(request).settings.max_body_bytes)


@api.route(
    "POST",
    "/auth/mfa/challenges/{challenge_id}/verify",
    resources=[ANONYMOUS],
    summary="Complete login's MFA challenge with a TOTP or recovery code (bearer: login's pending token)",
)
async def verify_challenge(request: Request, challenge_id: str) -> JSONResponse:
    where = attempt(request)
    bearer = bearer_token(request.headers.get("authorization"))
    token = await tillkey(request).services.medusa_mfa.verify_challenge(
        bearer, challenge_id, await _body(request), where
    )
    return JSONResponse({"token": token}, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/mfa/challenges/{challenge_id}/passkey",
    resources=[ANONYMOUS],
    summary="WebAuthn request options for login's MFA challenge (bearer: login's pending token)",
)
async def passkey_challenge(request: Request, challenge_id: str) -> JSONResponse:
    bearer = bearer_token(request.headers.get("authorization"))
    options = await tillkey(request).services.medusa_mfa.passkey_options(bearer, challenge_id)
    return JSONResponse(options, headers=NO_STORE)


@api.route("GET", "/auth/mfa/factors", resources=[ANONYMOUS], summary="The caller's MFA factors")
async def list_factors(request: Request, caller: Caller) -> JSONResponse:
    return JSONResponse({"mfa_factors": await tillkey(request).services.medusa_mfa.factors(caller)})


@api.route(
    "POST",
    "/auth/mfa/factors",
    resources=[ANONYMOUS],
    summary="Start TOTP enrolment: the pending factor, its secret and otpauth URL",
)
async def start_factor(request: Request, caller: Caller) -> JSONResponse:
    body = await _body(request)
    return JSONResponse(await tillkey(request).services.medusa_mfa.start(caller, body), headers=NO_STORE)


@api.route(
    "POST",
    "/auth/mfa/factors/{factor_id}/verify",
    resources=[ANONYMOUS],
    summary="Enable the pending factor with a first code",
)
async def verify_factor(request: Request, caller: Caller, factor_id: str) -> JSONResponse:
    body = await _body(request)
    return JSONResponse(await tillkey(request).services.medusa_mfa.verify_factor(caller, factor_id, body))


@api.route(
    "DELETE",
    "/auth/mfa/factors/{factor_id}",
    resources=[ANONYMOUS],
    summary="Disable the caller's factor (customers; an enabled one needs MFA within 5 minutes)",
)
async def disable_factor(request: Request, caller: Caller, factor_id: str) -> JSONResponse:
    return JSONResponse(await tillkey(request).services.medusa_mfa.disable(caller, factor_id))


@api.route(
    "POST",
    "/auth/mfa/recovery-codes",
    resources=[ANONYMOUS],
    summary="New recovery codes for the caller's enabled factor (the old ones stop working); shown once",
)
async def recovery_codes(request: Request, caller: Caller) -> JSONResponse:
    body = await _body(request)
    codes = await tillkey(request).services.medusa_mfa.recovery_codes(caller, body)
    return JSONResponse({"recovery_codes": codes}, headers=NO_STORE)
