"""Medusa-style authentication routes under /auth (shared/specs/medusa.md §1), so the official
@medusajs/js-sdk logs in against Tillkey unchanged: JWT mode and cookie-session mode."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.medusa_auth import ACTORS, EMAILPASS
from tillkey.accounts.signin import VerificationRequired
from tillkey.credentials.bearer import bearer_token
from tillkey.credentials.sessions import COOKIE
from tillkey.errors import AuthenticationRequired, NotAllowed, Unauthenticated
from tillkey.principal import Principal
from tillkey.security.proxy import client_ip, is_loopback, is_secure
from tillkey.surfaces.magento import attempt
from tillkey.surfaces.medusa_wire import IDENTITY_PREFIX, json_body, prefixed_id, required_string
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Medusa auth"])
FEDERATED_ACTOR = "customer"  # admins sign in with a provider in the console (/console/login)
Caller = Annotated[Principal, Depends(principal)]
EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"
_EMAILPASS_BODY = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}


def _provider(actor: str, provider: str) -> str:
    """Medusa's validateScopeProviderAssociation, for the one provider Tillkey has."""
    actor, provider = actor[:32], provider[:64]
    if actor not in ACTORS:
        raise NotAllowed(f"The actor type {actor} is not allowed to use the auth provider {provider}")
    if provider != EMAILPASS:
        if actor == "user":
            raise NotAllowed(f"The actor type {actor} is not allowed to use the auth provider {provider}")
        raise Unauthenticated(f"Unable to retrieve the auth provider with id: {provider}")
    return actor


async def _body(request: Request) -> dict[str, Any]:
    return await json_body(request, tillkey(request).settings.max_body_bytes)


@api.route(
    "POST",
    "/auth/token/refresh",
    resources=[ANONYMOUS],
    summary="A fresh token for the bearer token or session presented; binds a registration token to its new customer",
)
async def refresh(request: Request, caller: Caller) -> JSONResponse:
    # Only what this surface issued is renewed (accounts/medusa_auth.py `presented`).
    bearer = bearer_token(request.headers.get("authorization"))
    tk = tillkey(request)
    if bearer is not None and caller.is_guest and not caller.user_id:
        # Login's pending MFA token: Medusa answers a new challenge, as its login does.
        with contextlib.suppress(AuthenticationRequired):
            challenge = await tk.services.medusa_mfa.renew_challenge(bearer)
            body_out = {"token": challenge.token, "mfa_required": True, "mfa_challenge": challenge.body}
            return JSONResponse(body_out, headers=NO_STORE)
    try:
        token = await tk.services.medusa_auth.refresh(caller, bearer, request.cookies.get(COOKIE))
    except VerificationRequired as due:
        # A new customer whose address is unverified: Medusa's refresh answers as its login does.
        pending = await tk.services.medusa_verification.due("customer", due.account.email, due)
        return JSONResponse(pending.answer(), headers=NO_STORE)
    return JSONResponse({"token": token}, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/session",
    resources=[ANONYMOUS],
    summary="Exchange the bearer token for a cookie session (connect.sid); answers the token's claims",
)
async def create_session(request: Request, caller: Caller) -> JSONResponse:
    token = bearer_token(request.headers.get("authorization"))
    if token is None or caller.credential != "bearer" or (caller.is_guest and not caller.user_id):
        raise AuthenticationRequired(detail="POST /auth/session needs a valid bearer token")
    tk = tillkey(request)
    # Only a token this surface issued, holding no more than it, ending with its sign-in.
    granted = await tk.services.medusa_auth.session_from(caller, token, ttl=tk.settings.session_ttl)
    # Verified just above (signature, expiry, revocation, surface): only read it, to echo it.
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    identity = claims.get("auth_identity_id")
    identity_id = prefixed_id(IDENTITY_PREFIX, identity) if isinstance(identity, str) else None
    where = attempt(request)
    context = {k: v for k, v in claims.items() if k in ("actor_id", "actor_type", "auth_identity_id")}
    started = await tk.services.sessions.start(
        kind="medusa",
        user_type=int(caller.user_type),
        user_id=caller.user_id,
        identity_id=identity_id,
        context={**context, "auth_time": granted.auth_time, "amr": list(caller.auth_methods)},
        ip=where.ip,
        user_agent=where.user_agent,
        ttl=granted.ttl,
    )
    response = JSONResponse({"user": claims}, headers=NO_STORE)
    # Secure except over plain HTTP from loopback (development); SameSite=Lax keeps the cookie off
    # cross-site POSTs, which is what stands in for a CSRF token here.
    secure = is_secure(request.scope) or not is_loopback(client_ip(request.scope))
    response.set_cookie(
        COOKIE,
        started.cookie,
        max_age=granted.ttl,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    return response


@api.route("DELETE", "/auth/session", resources=[ANONYMOUS], summary="Log out: end the cookie session")
async def end_session(request: Request) -> JSONResponse:
    sessions = tillkey(request).services.sessions
    session = sessions.find(request.cookies.get(COOKIE))
    if session is None:
        raise AuthenticationRequired(detail="no live session cookie")
    where = attempt(request)
    await sessions.end(session, ip=where.ip, user_agent=where.user_agent)
    response = JSONResponse({"success": True})
    response.headers.append("Set-Cookie", f"{COOKIE}=; Path=/; Expires={EXPIRED}; HttpOnly; SameSite=Lax")
    return response


@api.route("GET", "/auth/{actor}/providers", resources=[ANONYMOUS], summary="Auth providers of an actor type")
async def providers(request: Request, actor: str) -> JSONResponse:
    _provider(actor, EMAILPASS)
    listed: list[dict[str, str]] = [
        {
            "id": EMAILPASS,
            "identifier": EMAILPASS,
            "display_name": "Email/Password Authentication",
            "flow": "credentials",
        }
    ]
    if actor == FEDERATED_ACTOR:
        for p in await tillkey(request).services.federation.enabled("customer"):
            listed.append({"id": p.name, "identifier": p.name, "display_name": p.display_name, "flow": "redirect"})
    return JSONResponse({"providers": listed})


@api.route(
    "GET",
    "/auth/{actor}/{provider}/callback",
    resources=[ANONYMOUS],
    summary="The external provider's redirect, relayed by the storefront: answers {token}",
)
async def callback(request: Request, actor: str, provider: str) -> JSONResponse:
    return await _callback(request, actor, provider, dict(request.query_params))


@api.route(
    "POST",
    "/auth/{actor}/{provider}/callback",
    resources=[ANONYMOUS],
    summary="The external provider's redirect, relayed by the storefront: answers {token}",
)
async def callback_post(request: Request, actor: str, provider: str) -> JSONResponse:
    params = dict(request.query_params)
    if not params:
        body = await _body(request)
        params = {k: v for k, v in body.items() if isinstance(v, str)}
    return await _callback(request, actor, provider, params)


async def _callback(request: Request, actor: str, provider: str, params: dict[str, str]) -> JSONResponse:
    if provider == EMAILPASS or actor != FEDERATED_ACTOR:
        _provider(actor, EMAILPASS)
        raise Unauthenticated(f"Callback authentication not implemented for provider {provider[:64]}")
    token = await tillkey(request).services.customer_federation.callback(provider, params, attempt(request))
    return JSONResponse({"token": token}, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/{actor}/{provider}",
    resources=[ANONYMOUS],
    body_schema=_EMAILPASS_BODY,
    summary="Log in (actor user = admin, customer); answers {token}, a JWT with Medusa's claims",
)
async def login(request: Request, actor: str, provider: str) -> JSONResponse:
    if actor == FEDERATED_ACTOR and provider != EMAILPASS:
        # An external provider: where to send the browser (Medusa's OAuth providers answer so).
        location = await tillkey(request).services.customer_federation.location(provider, attempt(request))
        return JSONResponse({"location": location}, headers=NO_STORE)
    actor = _provider(actor, provider)
    where = attempt(request)
    tk = tillkey(request)
    body = await _body(request)
    outcome = await tk.services.medusa_auth.login(actor, body, where)
    if isinstance(outcome, str):
        return JSONResponse({"token": outcome}, headers=NO_STORE)
    if isinstance(outcome, VerificationRequired):
        # An unverified address (Medusa 2.21): an actorless token good only for /auth/verification.
        due = await tk.services.medusa_verification.due(actor, str(body["email"]), outcome)
        body_out = due.answer()
        return JSONResponse(body_out, headers=NO_STORE)
    # A second factor is due (Medusa 2.21): an actorless token and the challenge to complete.
    challenge = await tk.services.medusa_mfa.challenge(actor, str(body["email"]), outcome)
    body_out = {"token": challenge.token, "mfa_required": True, "mfa_challenge": challenge.body}
    return JSONResponse(body_out, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/{actor}/{provider}/register",
    resources=[ANONYMOUS],
    body_schema=_EMAILPASS_BODY,
    summary="Register a customer identity; answers a token without an actor (then POST /store/customers)",
)
async def register(request: Request, actor: str, provider: str) -> JSONResponse:
    actor = _provider(actor, provider)
    where = attempt(request)
    token = await tillkey(request).services.medusa_auth.register(actor, await _body(request), where)
    return JSONResponse({"token": token}, headers=NO_STORE)


@api.route(
    "POST",
    "/auth/{actor}/{provider}/reset-password",
    resources=[ANONYMOUS],
    status_code=201,
    summary="Request a password reset; the same answer whether or not the email has an account",
)
async def reset_password(request: Request, actor: str, provider: str) -> Response:
    actor = _provider(actor, provider)
    where = attempt(request)
    identifier = required_string(await _body(request), "identifier", 254)
    await tillkey(request).services.medusa_auth.request_reset(actor, identifier, where)
    return PlainTextResponse("Created", status_code=201)


@api.route(
    "POST",
    "/auth/{actor}/{provider}/update",
    resources=[ANONYMOUS],
    summary="Set a new password with the reset token (Authorization: Bearer <reset token>); single use",
)
async def update_password(request: Request, actor: str, provider: str) -> JSONResponse:
    actor = _provider(actor, provider)
    where = attempt(request)
    reset_token = bearer_token(request.headers.get("authorization"))
    await tillkey(request).services.medusa_auth.update_password(actor, reset_token, await _body(request), where)
    return JSONResponse({"success": True})
