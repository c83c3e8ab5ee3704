"""Security headers on every response, and the general per-client rate limit. Pure ASGI, so the
hot path pays a header append, not a middleware object per request."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillkey.errors import RateLimited, TillkeyError
from tillkey.security.flood import Pacer
from tillkey.security.proxy import client_ip, is_secure
from tillkey.security.ratelimit import RateLimiter

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


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] == "/docs"
        secure = is_secure(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend(_COMMON)
                if b"content-security-policy" not in names:  # console pages set their own
                    headers.append((b"content-security-policy", _DOCS_CSP if docs else _API_CSP))
                # API answers carry account data: no cache keeps them unless a route says so (JWKS).
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if secure:
                    headers.append(_HSTS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimitMiddleware:
    """The general per-client-IP budget; credential endpoints add stricter ones of their own."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, spec: str, render: object, pacer: Pacer) -> None:
        self.app = app
        self.limiter = limiter
        self.item = limiter.item(spec)
        self.render = render
        self.pacer = pacer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.item is not None:
            try:
                await self.limiter.hit(self.item, "client", client_ip(scope))
            except RateLimited as exc:
                await self.pacer.pause()
                await self._reject(scope, receive, send, exc)
                return
        await self.app(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, exc: TillkeyError) -> None:
        response = self.render(scope, exc)  # type: ignore[operator]
        await response(scope, receive, send)
