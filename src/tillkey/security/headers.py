"""Security headers on every response, added by the one ASGI layer in front of the app
(web/edge.py): a few list appends per response, no middleware object per request."""

from __future__ import annotations

from starlette.types import Scope

_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The interactive API docs page loads Swagger UI from /docs/static (surfaces/api_docs.py) and runs
# FastAPI's one inline bootstrap script; nothing comes from another origin.
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# Set in the scope by a route whose answer only a proxy reads (forward-auth's 200: nginx's
# auth_request and Traefik's forwardAuth copy the identity headers they are told to and drop the
# rest): no browser ever sees it, so it goes without the browser-facing headers (it sets its own
# Cache-Control). Refusals keep them (Traefik hands a forward-auth 401/403 to the client as it is).
PROXY_ONLY = "tillkey.proxy_only"


def with_security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's headers plus the security headers (a new list; the response's own stays as is)."""
    csp = cache = False
    for name, _ in headers:
        lowered = name.lower()
        if lowered == b"content-security-policy":
            csp = True  # console pages set their own
        elif lowered == b"cache-control":
            cache = True
    out = [*headers, *_COMMON]
    if not csp:
        out.append((b"content-security-policy", _DOCS_CSP if scope["path"] == "/docs" else _API_CSP))
    # API answers carry account data: no cache keeps them unless a route says so (JWKS).
    if not cache:
        out.append((b"cache-control", b"no-store"))
    if scope.get("scheme") in ("https", "wss"):
        out.append(_HSTS)
    return out
