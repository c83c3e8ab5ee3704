"""Forward-auth: the one endpoint a reverse proxy asks before it passes a request on (nginx's
`auth_request`, Traefik's `forwardAuth`). It answers 200 with the caller's identity in headers, 401
(who are you) or 403 (not allowed), exactly as a Tillkey route declaring the same resources would.

The proxy calls it with GET and tells the original request in headers: nginx as its config sets
them (X-Original-Method, X-Original-URI), Traefik by itself (X-Forwarded-Method, X-Forwarded-Uri,
-Host, -Proto). The route table (access/route_table.py) maps that method and path to resources.

These headers need no trusted proxy: whoever sends them only asks what their own credential may do,
which the protected API would tell them anyway; the proxy decides on the answer to its own call.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response
from starlette.types import Message

from tillkey.access.route_table import BadTarget, normalize, normalize_method, origin_form
from tillkey.credentials.binding import ORIGINAL_URL
from tillkey.errors import Forbidden, InvalidRequest
from tillkey.principal import Principal
from tillkey.security.headers import PROXY_ONLY
from tillkey.web.routing import ERROR_RESPONSES, Api, enforce, tillkey

PATH = "/tillkey/v1/forward-auth"
NO_ROUTE = "No forward-auth route matches this request."
NO_TARGET = (
    "Forward-auth needs the original request: X-Original-Method and X-Original-URI (nginx), "
    "or X-Forwarded-Method and X-Forwarded-Uri (Traefik)."
)
CONFLICT = "Forward-auth got two different original requests (X-Original-* and X-Forwarded-*)."
# Sent on 200, read by the proxy and passed upstream. Never an e-mail, a name or a secret.
USER_ID = "X-Tillkey-User-Id"
USER_TYPE = "X-Tillkey-User-Type"
CREDENTIAL = "X-Tillkey-Credential"
CLIENT_ID = "X-Tillkey-Client-Id"
SCOPES = "X-Tillkey-Scopes"
IDENTITY_HEADERS = (USER_ID, USER_TYPE, CREDENTIAL, CLIENT_ID, SCOPES)

api = Api(tags=["Forward-auth"])


# The headers forward-auth reads, by their index in _Asked: one pass over the raw headers.
_ASKED = {
    name: at
    for at, name in enumerate(
        (
            b"x-original-method",
            b"x-original-uri",
            b"x-forwarded-method",
            b"x-forwarded-uri",
            b"x-forwarded-proto",
            b"x-forwarded-host",
        )
    )
}


def _asked(request: Request) -> list[str | None]:
    """The first value of each header in _ASKED (as Headers.get answers), or None. One pass over the
    raw headers: this runs for every request of the site behind the proxy, and each Headers.get
    would be a scan of its own (and Request.headers an object built for it)."""
    got: list[str | None] = [None, None, None, None, None, None]
    for name, value in request.scope["headers"]:
        at = _ASKED.get(name)
        if at is not None and got[at] is None:
            got[at] = value.decode("latin-1")
    return got


def _target(request: Request, asked: list[str | None] | None = None) -> tuple[str, str]:
    """(method, URI) of the original request. A proxy copies the client's own headers into its
    question, so a client may add the other convention's pair: where both name a method or a URI
    they must agree, or a client could have the request judged as one it did not send."""
    got = _asked(request) if asked is None else asked
    nginx, traefik = (got[0], got[1]), (got[2], got[3])
    for ours, theirs in zip(nginx, traefik, strict=True):
        if ours and theirs and ours != theirs:
            raise InvalidRequest(CONFLICT)
    for method, uri in (nginx, traefik):
        if method and uri:
            return method, uri
    raise InvalidRequest(NO_TARGET)


async def _no_body() -> Message:
    # The proxy does not pass the original body; a signed form body cannot be checked here.
    return {"type": "http.request", "body": b"", "more_body": False}


def as_original(request: Request, method: str, uri: str, asked: list[str | None] | None = None) -> Request:
    """The request as the client sent it to the proxy, for the credential kinds: OAuth 1.0a
    signatures cover the original method, scheme, host, path and query, not this endpoint's."""
    got = _asked(request) if asked is None else asked
    scope: dict[str, Any] = dict(request.scope)
    path, _, query = origin_form(uri).partition("?")
    scope["method"] = method
    scope["path"] = path
    scope["raw_path"] = path.encode("latin-1", "replace")
    scope["tillkey.signed_path"] = path
    scope["query_string"] = query.encode("latin-1", "replace")
    proto, host = got[4], got[5]
    if proto in ("http", "https"):
        scope["scheme"] = proto
    if host:
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"host"]
        scope["headers"].append((b"host", host.encode("latin-1", "replace")))
    else:
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if not host:
        server = scope.get("server")
        name = f"[{server[0]}]" if server and ":" in str(server[0]) else (server[0] if server else "localhost")
        host = f"{name}:{server[1]}" if server else name
    # DPoP proofs name the URL the client asked the proxy for (credentials/binding.py), as
    # Request.url would spell it (scheme, Host, path) without building it: this runs on every
    # forward-auth request, and htu comparison normalises case and default ports anyway.
    scope[ORIGINAL_URL] = f"{scope['scheme']}://{host}{path}"
    return Request(scope, _no_body)


def identity(principal: Principal) -> dict[str, str]:
    """The caller as response headers. Guests get only their type: an absent header, not a fake id."""
    headers = {USER_TYPE: principal.user_type.name.lower()}
    if not principal.is_guest:
        headers[USER_ID] = str(principal.user_id)
        headers[CREDENTIAL] = principal.credential
    if principal.client_id:
        headers[CLIENT_ID] = principal.client_id
    if principal.scopes is not None:
        headers[SCOPES] = " ".join(sorted(principal.scopes))
    return headers


async def forward_auth(request: Request) -> Response:
    tk = tillkey(request)
    asked = _asked(request)
    raw_method, uri = _target(request, asked)
    settings = tk.settings
    try:
        method = normalize_method(raw_method)
        path = normalize(
            uri, max_length=settings.forward_auth_max_uri_length, max_segments=settings.forward_auth_max_segments
        )
    except BadTarget as exc:
        raise InvalidRequest(f"Forward-auth cannot judge this request: {exc}.") from None
    route = tk.forward_routes.match(method, path)
    if route is None:
        # No credential work for paths nobody may reach.
        raise Forbidden(NO_ROUTE, detail=f"no forward-auth route for {method} {path[:256]}")
    principal, presented = await tk.credentials.authenticate(as_original(request, method, uri, asked))
    enforce(request, principal, presented, route.resources, target=(method, path))
    request.scope[PROXY_ONLY] = True  # the proxy reads this answer, never a browser
    return forward_auth_response(principal)


class _Allowed(Response):
    """The 200 answer: the identity headers, already encoded, and no body. Response.__init__ would
    encode the same headers again on every request; this one takes them as they are."""

    def __init__(self, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = raw_headers


# A principal comes from the token cache, the same object for every request with the same token
# (tokens/service.py), and is immutable: its encoded identity headers are kept beside it, by
# id() with the object itself held (so the id cannot be reused while the entry lives).
_ENCODED: dict[int, tuple[Principal, list[tuple[bytes, bytes]]]] = {}
_ENCODED_MAX = 4096


def forward_auth_response(principal: Principal) -> Response:
    """200 with the identity headers (and content-length: 0), as Response(headers=identity(...))."""
    hit = _ENCODED.get(id(principal))
    if hit is not None and hit[0] is principal:
        return _Allowed(list(hit[1]))
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in identity(principal).items()]
    # No cache may keep an identity answer (a revocation applies on the next request); the
    # browser-facing security headers are left off: only the proxy reads this (PROXY_ONLY).
    raw += [(b"cache-control", b"no-store"), (b"content-length", b"0")]
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.clear()
    _ENCODED[id(principal)] = (principal, raw)
    return _Allowed(list(raw))


_HEADER_PARAMS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": what}
    for name, what in [
        ("X-Original-Method", "nginx: the original request's method ($request_method)"),
        ("X-Original-URI", "nginx: the original request's URI ($request_uri)"),
        ("X-Forwarded-Method", "Traefik: the original request's method"),
        ("X-Forwarded-Uri", "Traefik: the original request's URI"),
    ]
]
# One route per method: each gets an operation id of its own in the OpenAPI document (one route
# for both would give GET and HEAD the same id, which FastAPI warns about).
for _method in ("GET", "HEAD"):
    api.router.add_api_route(
        PATH,
        forward_auth,
        methods=[_method],
        response_class=Response,
        operation_id=f"forward_auth_{_method.lower()}",
        summary="Forward-auth for nginx auth_request and Traefik forwardAuth: 200 with X-Tillkey-* identity "
        "headers, 401 or 403",
        description="Requires: the resources the first matching rule of TILLKEY_FORWARD_AUTH_ROUTES names "
        "for the original method and path; no matching rule: 403.",
        openapi_extra={
            "x-tillkey-resources": ["(TILLKEY_FORWARD_AUTH_ROUTES)"],
            "security": [{"bearer": []}, {}],
            "parameters": _HEADER_PARAMS,
        },
        responses={
            **ERROR_RESPONSES,
            200: {
                "description": "Allowed; the identity is in the headers",
                "headers": {h: {"schema": {"type": "string"}} for h in IDENTITY_HEADERS},
            },
        },
    )
