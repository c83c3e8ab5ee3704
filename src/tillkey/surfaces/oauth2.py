"""OAuth 2 / OpenID Connect endpoints: parse, call the core (tillkey.oauth2), render.

Errors on /oauth2/* are rendered by app.py's one renderer in RFC 6749 §5.2 shape (error_body
below); the authorization endpoint talks to a browser, so its errors are pages or redirects.
The protocol endpoints are described by the RFC 8414 metadata, not the OpenAPI document (their
form bodies and error shape are the RFCs'); the admin client API is in the OpenAPI document.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tillkey import audit
from tillkey.access.tree import ANONYMOUS
from tillkey.console import templating
from tillkey.console.sign_in_session import cookie_name
from tillkey.credentials import binding
from tillkey.credentials.bearer import access_token
from tillkey.credentials.binding import BindingRefused
from tillkey.credentials.mtls import NAME_FIELDS, presented
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import InvalidRequest, TillkeyError, Unauthenticated
from tillkey.oauth2 import rfc8414
from tillkey.oauth2.clients import MTLS_METHODS, binding_of
from tillkey.oauth2.oidc import discovery
from tillkey.oauth2.rfc6749 import authorization_code as code_grant
from tillkey.oauth2.rfc6749 import params as oauth_params
from tillkey.oauth2.rfc6749.errors import AccessDenied, ConsentRequired, InsufficientScope, LoginRequired
from tillkey.oauth2.scopes import OPENID
from tillkey.principal import Principal, UserType
from tillkey.store.oauth2 import Client
from tillkey.surfaces.magento_wire import json_body
from tillkey.web.caching import NO_STORE
from tillkey.web.forms import read_body, require_https
from tillkey.web.routing import Api, principal, reads_own_body, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

api = Api(tags=["OAuth 2 / OpenID Connect"])
CLIENTS_RESOURCE = "Tillkey::oauth2_clients"
CONSENT_PARAMS = code_grant.AUTHORIZE_PARAMS | {"csrf", "decision"}
# Marks the authorization request of a pushed request (RFC 9126) coming back from the fresh sign-in
# its prompt=login, max_age or acr_values asked for (a user who strips prompt=login from a query
# skips it the same way; the token's auth_time and acr say what happened).
SIGNED_IN_AFRESH = "tk_fresh"


def error_body(err: TillkeyError) -> dict[str, Any]:
    """RFC 6749 §5.2 (and RFC 6750 §3.1 for the userinfo endpoint)."""
    return {"error": err.oauth_error, "error_description": err.message}


# --- metadata -----------------------------------------------------------------------------------


@api.route(
    "GET",
    "/.well-known/oauth-authorization-server",
    resources=[ANONYMOUS],
    summary="OAuth 2 authorization server metadata (RFC 8414)",
)
async def server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(rfc8414.metadata(tillkey(request).settings), headers={"Cache-Control": "public, max-age=300"})


@api.route(
    "GET",
    "/.well-known/openid-configuration",
    resources=[ANONYMOUS],
    summary="OpenID Connect discovery document",
)
async def openid_configuration(request: Request) -> JSONResponse:
    body = discovery.openid_configuration(tillkey(request).settings)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


# --- authorization endpoint (browser) -----------------------------------------------------------


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    return RedirectResponse("/console/login?" + urlencode({"next": target}), status_code=303)


@api.route(
    "GET",
    "/oauth2/authorize",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Authorization endpoint (RFC 6749 §4.1.1): sign in, consent, redirect back with a code",
)
async def authorize(request: Request) -> Response:
    tk = tillkey(request)
    try:
        require_https(request)
        params = oauth_params.parse(request.query_params.multi_items(), code_grant.AUTHORIZE_PARAMS)
        req = await tk.services.oauth2.authorization_request(params)
    except code_grant.RedirectError as exc:
        return RedirectResponse(code_grant.error_redirect(exc, tk.settings.issuer), status_code=302)
    except TillkeyError as exc:
        # Client or redirect URI unverified: tell the user, never redirect (RFC 6749 §4.1.2.1).
        return templating.error("Authorization failed", exc.message, exc.status_code)
    if req.request_uri is not None and request.query_params.get(SIGNED_IN_AFRESH) == "1":
        # A pushed request's prompt / max_age / acr_values live with it, not in the query: after
        # the fresh sign-in they asked for, go on without them (as _login_redirect_without_prompt
        # does for a request in the query), or the sign-in would loop.
        req = replace(req, prompt=None, max_age=None, acr_values=())
    session = tk.services.console_sessions.find(request.cookies.get(cookie_name(request)))
    if session is None or session.pending_otp or req.prompt == "login":
        if req.prompt == "none":
            err = code_grant.RedirectError(LoginRequired(), req.redirect_uri, req.state)
            return RedirectResponse(code_grant.error_redirect(err, tk.settings.issuer), status_code=302)
        if req.prompt == "login" and session is not None and not session.pending_otp:
            await tk.services.console_sessions.end(session)
        return _login_redirect(request) if req.prompt != "login" else _login_redirect_without_prompt(request)
    user = code_grant.User(session.user_type, session.user_id, session.auth_time, session.amr)
    if req.sign_in_falls_short(user, tk.clock.now_int(), mfa_reachable=await _mfa_reachable(tk, user)):
        # max_age / acr_values (RFC 9470 §4): a fresh sign-in, with the second factor if the user
        # has one; then on without them (the fresh sign-in met them; the token says how).
        if req.prompt == "none":
            err = code_grant.RedirectError(LoginRequired(), req.redirect_uri, req.state)
            return RedirectResponse(code_grant.error_redirect(err, tk.settings.issuer), status_code=302)
        await tk.services.console_sessions.end(session)
        return _login_redirect_without_prompt(request)
    if req.client.first_party:
        return RedirectResponse(await tk.services.oauth2.issue_code(req, user), status_code=302)
    if req.prompt == "none":
        err = code_grant.RedirectError(ConsentRequired(), req.redirect_uri, req.state)
        return RedirectResponse(code_grant.error_redirect(err, tk.settings.issuer), status_code=302)
    return templating.consent(
        client_name=req.client.name,
        scopes=req.scope,
        csrf=session.csrf,
        request_fields=req.as_params(),
        redirect_uri=req.redirect_uri,
    )


async def _mfa_reachable(tk: Tillkey, user: code_grant.User) -> bool:
    """Would a fresh console sign-in of this user pass a second factor?"""
    if tk.settings.admin_2fa == "off" or user.user_type != UserType.ADMIN:
        return False
    return await tk.services.totp.is_active(user.user_id)


def _login_redirect_without_prompt(request: Request) -> RedirectResponse:
    """prompt=login, max_age, acr_values: sign in again, then continue without them (or it would
    loop: a fresh sign-in meets them, and may cross a second boundary on its way back)."""
    once = ("prompt", "max_age", "acr_values", SIGNED_IN_AFRESH)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in once]
    if "request_uri" in request.query_params:
        kept.append((SIGNED_IN_AFRESH, "1"))
    target = request.url.path + "?" + urlencode(kept)
    return RedirectResponse("/console/login?" + urlencode({"next": target}), status_code=303)


@api.route(
    "POST",
    "/oauth2/consent",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="The consent form's answer: allow or deny the client",
)
async def consent(request: Request) -> Response:
    tk = tillkey(request)
    try:
        require_https(request)
        form = oauth_params.form(await read_body(request), request.headers.get("content-type"), CONSENT_PARAMS)
        session = tk.services.console_sessions.find(request.cookies.get(cookie_name(request)))
        if session is None or session.pending_otp:
            return templating.error(
                "Sign-in required", "Your session has ended. Start again from the application.", 401
            )
        if not constant_time_equals(form.get("csrf", ""), session.csrf):
            return templating.error("Request refused", "The form has expired. Start again from the application.", 403)
        req = await tk.services.oauth2.authorization_request(
            {k: v for k, v in form.items() if k in code_grant.AUTHORIZE_PARAMS}
        )
    except code_grant.RedirectError as exc:
        return RedirectResponse(code_grant.error_redirect(exc, tk.settings.issuer), status_code=303)
    except TillkeyError as exc:
        return templating.error("Authorization failed", exc.message, exc.status_code)
    allowed = form.get("decision") == "allow"
    await tk.audit.record_request(
        request,
        audit.OAUTH2_CONSENT,
        outcome=audit.SUCCESS if allowed else audit.FAILURE,
        actor_type=session.user_type,
        actor_id=session.user_id,
        details={"client_id": req.client.client_id, "scope": " ".join(req.scope)[:500]},
    )
    if not allowed:
        denied = code_grant.RedirectError(AccessDenied(), req.redirect_uri, req.state)
        return RedirectResponse(code_grant.error_redirect(denied, tk.settings.issuer), status_code=303)
    user = code_grant.User(session.user_type, session.user_id, session.auth_time, session.amr)
    if req.sign_in_falls_short(user, tk.clock.now_int(), mfa_reachable=await _mfa_reachable(tk, user)):
        again = "Your sign-in is too old or too weak for this. Start again from the application."
        return templating.error("Sign-in required", again, 401)
    return RedirectResponse(await tk.services.oauth2.issue_code(req, user), status_code=303)


# --- token, revocation, introspection (clients) -------------------------------------------------


@api.route(
    "POST",
    "/oauth2/token",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Token endpoint (RFC 6749 §3.2): authorization_code, client_credentials, refresh_token",
)
@reads_own_body
async def token(request: Request) -> JSONResponse:
    require_https(request)
    tk = tillkey(request)
    body = await tk.services.oauth2.token(
        await read_body(request),
        request.headers.get("content-type"),
        request.headers.get("authorization"),
        dpop=request.headers.getlist("dpop"),
        url=tk.binding.urls_of(request),
        certificate=presented(request.scope),
    )
    return JSONResponse(body, headers=NO_STORE)


@api.route(
    "POST",
    "/oauth2/revoke",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Token revocation (RFC 7009)",
)
async def revoke(request: Request) -> Response:
    require_https(request)
    await tillkey(request).services.oauth2.revoke(
        await read_body(request),
        request.headers.get("content-type"),
        request.headers.get("authorization"),
        presented(request.scope),
    )
    return Response(status_code=200, headers=NO_STORE)


@api.route(
    "POST",
    "/oauth2/introspect",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Token introspection (RFC 7662), for confidential clients",
)
@reads_own_body
async def introspect(request: Request) -> JSONResponse:
    require_https(request)
    body = await tillkey(request).services.oauth2.introspect(
        await read_body(request),
        request.headers.get("content-type"),
        request.headers.get("authorization"),
        presented(request.scope),
    )
    return JSONResponse(body, headers=NO_STORE)


@api.route(
    "POST",
    "/oauth2/par",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Pushed authorization request (RFC 9126): answers a single-use request_uri",
)
@reads_own_body
async def par(request: Request) -> JSONResponse:
    require_https(request)
    body = await tillkey(request).services.oauth2.push(
        await read_body(request),
        request.headers.get("content-type"),
        request.headers.get("authorization"),
        presented(request.scope),
    )
    return JSONResponse(body, status_code=201, headers=NO_STORE)


# --- userinfo (bearer) --------------------------------------------------------------------------


async def _userinfo(request: Request) -> JSONResponse:
    tk = tillkey(request)
    presented = access_token(request.headers.get("authorization"))
    if presented is None:
        # RFC 6750 §3.1: no credentials, no error code in the challenge.
        raise Unauthenticated(
            "A bearer access token is required.", headers={"WWW-Authenticate": 'Bearer realm="tillkey"'}
        )
    scheme, token = presented
    try:
        # BindingRefused: its own challenge
        caller, _ = await binding.authenticate(tk.authenticator, tk.binding, request, scheme, token)
        if caller.is_guest:
            raise Unauthenticated(detail="token of a deleted client")
    except BindingRefused:
        raise
    except Unauthenticated as exc:
        raise Unauthenticated(
            "The access token is invalid, expired or revoked.",
            detail=exc.detail,
            headers={"WWW-Authenticate": 'Bearer realm="tillkey", error="invalid_token"'},
        ) from None
    if caller.scopes is None or OPENID not in caller.scopes:
        raise InsufficientScope(
            headers={"WWW-Authenticate": f'Bearer realm="tillkey", error="insufficient_scope", scope="{OPENID}"'}
        )
    found = await tk.services.oauth2.userinfo(caller.user_type, caller.user_id, caller.scopes)
    if found is None:
        raise Unauthenticated(
            "The account is no longer active.",
            headers={"WWW-Authenticate": 'Bearer realm="tillkey", error="invalid_token"'},
        )
    return JSONResponse(found, headers=NO_STORE)


@api.route(
    "GET",
    "/oauth2/userinfo",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="OpenID Connect UserInfo (needs the openid scope)",
)
async def userinfo_get(request: Request) -> JSONResponse:
    return await _userinfo(request)


@api.route(
    "POST",
    "/oauth2/userinfo",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="OpenID Connect UserInfo (needs the openid scope)",
)
async def userinfo_post(request: Request) -> JSONResponse:
    return await _userinfo(request)


# --- client registration (admin API) ------------------------------------------------------------

_CLIENT_BODY = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["confidential", "public"]},
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "grant_types": {"type": "array", "items": {"type": "string"}},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "first_party": {"type": "boolean"},
        "require_pkce": {"type": "boolean"},
        "resource_server": {"type": "boolean"},
        "dpop_bound_access_tokens": {"type": "boolean"},
        "token_endpoint_auth_method": {
            "type": "string",
            "enum": ["client_secret_basic", "none", "private_key_jwt", *MTLS_METHODS],
        },
        "tls_client_certificate_bound_access_tokens": {"type": "boolean"},
        **{f"tls_client_auth_{field}": {"type": "string"} for field in NAME_FIELDS},
        "jwks": {"type": "object"},
        "jwks_uri": {"type": "string"},
        "require_pushed_authorization_requests": {"type": "boolean"},
    },
}


def client_json(c: Client, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "client_id": c.client_id,
        "name": c.name,
        "type": c.client_type,
        "redirect_uris": list(c.redirect_uris),
        "grant_types": list(c.grant_types),
        "scopes": list(c.scopes),
        "first_party": c.first_party,
        "require_pkce": c.require_pkce,
        "active": c.active,
        "created_at": c.created_at,
        "resource_server": c.resource_server,
        # RFC 9449 §5.2 (the RFC 7591 metadata name): token requests must carry a DPoP proof.
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "token_endpoint_auth_method": c.auth_method,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
        # RFC 8705 §3.4: its access tokens are bound to the certificate it presents.
        "tls_client_certificate_bound_access_tokens": c.tls_client_certificate_bound_access_tokens,
        "binding": binding_of(c),
    }
    if c.tls_client_auth_field is not None:
        out[f"tls_client_auth_{c.tls_client_auth_field}"] = c.tls_client_auth_value
    if c.jwks is not None:
        out["jwks"] = json.loads(c.jwks)
    if c.jwks_uri is not None:
        out["jwks_uri"] = c.jwks_uri
    if secret is not None:
        out["client_secret"] = secret  # shown this once; only a digest is stored
    return out


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{name} must be a list of strings.")
    return value


@api.route(
    "POST",
    "/tillkey/v1/oauth2/clients",
    resources=[CLIENTS_RESOURCE],
    body_schema=_CLIENT_BODY,
    status_code=201,
    delegates="oauth_client",
    summary="Register an OAuth 2 client; the answer holds its secret, shown once",
)
async def create_client(request: Request) -> JSONResponse:
    tk: Tillkey = tillkey(request)
    caller: Principal = await principal(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    name, ctype = body.get("name"), body.get("type")
    if not isinstance(name, str) or not isinstance(ctype, str):
        raise InvalidRequest("name and type are required strings.")
    defaults = (
        ("first_party", False),
        ("require_pkce", True),
        ("resource_server", False),
        ("require_pushed_authorization_requests", False),
        ("dpop_bound_access_tokens", False),
        ("tls_client_certificate_bound_access_tokens", False),
    )
    flags = {k: body.get(k, d) for k, d in defaults}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise InvalidRequest(
            "first_party, require_pkce, resource_server, require_pushed_authorization_requests and "
            "dpop_bound_access_tokens and tls_client_certificate_bound_access_tokens must be booleans."
        )
    method, jwks, jwks_uri = body.get("token_endpoint_auth_method"), body.get("jwks"), body.get("jwks_uri")
    if not isinstance(method, str | None) or not isinstance(jwks, dict | None) or not isinstance(jwks_uri, str | None):
        raise InvalidRequest("token_endpoint_auth_method and jwks_uri are strings; jwks is a JWKS object.")
    names = [(f, body[f"tls_client_auth_{f}"]) for f in NAME_FIELDS if f"tls_client_auth_{f}" in body]
    if len(names) > 1 or not all(isinstance(v, str) for _, v in names):
        raise InvalidRequest("Register at most one tls_client_auth_* name, a string.")
    wanted = _strings(body, "scopes")
    registered = await tk.services.clients.create(
        caller,
        name=name,
        client_type=ctype,
        redirect_uris=_strings(body, "redirect_uris"),
        grant_types=_strings(body, "grant_types"),
        scopes=wanted,
        first_party=bool(flags["first_party"]),
        require_pkce=bool(flags["require_pkce"]),
        resource_server=bool(flags["resource_server"]),
        dpop_bound_access_tokens=bool(flags["dpop_bound_access_tokens"]),
        auth_method=method,
        jwks=None if jwks is None else json.dumps(jwks),
        jwks_uri=jwks_uri,
        require_pushed_authorization_requests=bool(flags["require_pushed_authorization_requests"]),
        tls_client_certificate_bound_access_tokens=bool(flags["tls_client_certificate_bound_access_tokens"]),
        tls_client_auth=names[0] if names else None,
    )
    return JSONResponse(client_json(registered.client, registered.secret), status_code=201, headers=NO_STORE)


@api.route("GET", "/tillkey/v1/oauth2/clients", resources=[CLIENTS_RESOURCE], summary="List OAuth 2 clients")
async def list_clients(request: Request) -> JSONResponse:
    return JSONResponse([client_json(c) for c in await tillkey(request).services.clients.registered()])


@api.route(
    "DELETE",
    "/tillkey/v1/oauth2/clients/{client_id}",
    resources=[CLIENTS_RESOURCE],
    summary="Delete an OAuth 2 client: its refresh tokens are revoked and its access tokens stop working",
)
async def delete_client(request: Request, client_id: str) -> JSONResponse:
    if len(client_id) > 64:
        raise InvalidRequest("There is no OAuth client with this client_id.")
    removed = await tillkey(request).services.clients.delete(client_id, acting=await principal(request))
    return JSONResponse(client_json(removed))
