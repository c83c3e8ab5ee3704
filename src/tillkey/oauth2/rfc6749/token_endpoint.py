"""The token endpoint (RFC 6749 §3.2) as a pipeline: parse the form (each parameter once), keep
only the parameters the grant declares, authenticate the client, run the grant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tillkey.oauth2.rfc6749 import authorization_code, client_credentials, refresh_token
from tillkey.oauth2.rfc6749.errors import UnsupportedGrantType
from tillkey.oauth2.rfc6749.params import form, require
from tillkey.store.oauth2 import Client

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

Exchange = Callable[["Tillkey", Client, dict[str, str]], Awaitable[dict[str, Any]]]
# grant_type -> (declared parameters, handler). No implicit and no password grant (OAuth 2.1).
GRANTS: dict[str, tuple[frozenset[str], Exchange]] = {
    authorization_code.GRANT_TYPE: (authorization_code.TOKEN_PARAMS, authorization_code.exchange),
    client_credentials.GRANT_TYPE: (client_credentials.TOKEN_PARAMS, client_credentials.exchange),
    refresh_token.GRANT_TYPE: (refresh_token.TOKEN_PARAMS, refresh_token.exchange),
}


async def token(tk: Tillkey, body: bytes, content_type: str | None, authorization: str | None) -> dict[str, Any]:
    raw = form(body, content_type)
    (grant_type,) = require(raw, "grant_type")
    if grant_type not in GRANTS:
        raise UnsupportedGrantType()
    declared, exchange = GRANTS[grant_type]
    params = {k: v for k, v in raw.items() if k in declared}
    client = await tk.services.clients.authenticate(params, authorization)
    return await exchange(tk, client, params)
