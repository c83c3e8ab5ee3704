"""Medusa 2.21's email verification routes under /auth/verification (accounts/medusa_verification.py
has the rules; docs/compatibility.md the wire), so @medusajs/js-sdk's `sdk.auth.verification.*`
works unchanged. Included before surfaces/medusa.py, whose `/auth/{actor}/{provider}` would
otherwise take `/auth/verification/request`."""

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

api = Api(tags=["Medusa email verification"])
Caller = Annotated[Principal, Depends(principal)]


async def _body(request: Request) -> dict[str, Any]:
    return await json_body(request, tillkey(request).settings.max_body_bytes)


@api.route(
    "POST",
    "/auth/verification/request",
    resources=[ANONYMOUS],
    summary="Mail a verification code for the address (bearer: login's verification_required token)",
)
async def request_code(request: Request) -> JSONResponse:
    where = attempt(request)
    bearer = bearer_token(request.headers.get("authorization"))
    body = await _body(request)
    verification = await tillkey(request).services.medusa_verification.request(bearer, body, where)
    return JSONResponse({"verification": verification}, status_code=201, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/verification/confirm",
    resources=[ANONYMOUS],
    summary="Confirm a mailed verification code (single use); then sign in again",
)
async def confirm_code(request: Request, caller: Caller) -> JSONResponse:
    where = attempt(request)
    bearer = bearer_token(request.headers.get("authorization"))
    body = await _body(request)
    return JSONResponse(await tillkey(request).services.medusa_verification.confirm(caller, bearer, body, where))
