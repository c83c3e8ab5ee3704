"""Request helpers the OAuth 2 pages and the console share: the HTTPS rule and a bounded body."""

from __future__ import annotations

from starlette.requests import Request

from tillkey.errors import InvalidRequest
from tillkey.security.body_limit import read_limited
from tillkey.security.proxy import plain_http_from_afar
from tillkey.web.routing import tillkey


def require_https(request: Request) -> None:
    tk = tillkey(request)
    if tk.settings.require_https and plain_http_from_afar(request.scope):
        raise InvalidRequest("HTTPS is required.")  # RFC 6749 §3.1, §3.2


async def read_body(request: Request) -> bytes:
    return await read_limited(request, tillkey(request).settings.max_body_bytes)
