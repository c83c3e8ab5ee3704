"""RFC 7009 token revocation. The client authenticates; a refresh token revokes its whole family
(and the access tokens issued from it), an access token is denied by its jti. Unknown, invalid
or someone else's tokens get the same 200 (§2.2), so the endpoint reveals nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tillkey.oauth2.rfc6749.errors import UnsupportedTokenType
from tillkey.oauth2.rfc6749.params import form, require
from tillkey.tokens.contracts import InvalidToken
from tillkey.tokens.refresh import PREFIX as REFRESH_PREFIX

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

PARAMS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})
HINTS = frozenset({"access_token", "refresh_token"})


async def revoke(tk: Tillkey, body: bytes, content_type: str | None, authorization: str | None) -> None:
    params = form(body, content_type, PARAMS)
    client = await tk.services.clients.authenticate(params, authorization)
    (token,) = require(params, "token")
    hint = params.get("token_type_hint")
    if hint is not None and hint not in HINTS:
        raise UnsupportedTokenType()
    # The hint only orders the lookups (§2.1); the token's prefix tells refresh tokens apart.
    if token.startswith(REFRESH_PREFIX):
        refreshes = tk.services.refresh_tokens
        found = await refreshes.lookup(token)
        if found is not None and found.client_id == client.client_id and found.revoked_at is None:
            await refreshes.revoke_family(found, reason="revoked")
        return
    try:
        claims = await tk.authenticator.read(token)
    except InvalidToken:
        return
    if claims.client_id == client.client_id:
        await tk.revoker.revoke_token(claims)
