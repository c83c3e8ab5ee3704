"""The refresh token grant (RFC 6749 §6, OAuth 2.1 §4.3): rotation on every use, reuse detection
and family revocation live in tokens/refresh.py; this module checks the client and the scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.access_tokens import AccessToken
from tillkey.oauth2.rfc6749.errors import UnauthorizedClient
from tillkey.oauth2.rfc6749.params import require
from tillkey.oauth2.rfc6749.token_response import Grant, mint_access, respond
from tillkey.store.oauth2 import Client, RefreshToken

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

GRANT_TYPE = "refresh_token"
TOKEN_PARAMS = frozenset({"grant_type", "refresh_token", "scope", "client_id", "client_secret"})


async def exchange(tk: Tillkey, client: Client, params: dict[str, str]) -> dict[str, Any]:
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient()
    (token,) = require(params, "refresh_token")
    requested = scope_rules.parse(params.get("scope"))
    refreshes = tk.services.refresh_tokens
    if requested:
        # A bad scope must not spend the token: check it against the grant first.
        found = await refreshes.lookup(token)
        if found is not None and found.client_id == client.client_id:
            scope_rules.within(requested, found.scope or ())

    def narrowed(spent: RefreshToken) -> tuple[str, ...]:
        # §6: a narrower scope may be asked for; the family keeps the original grant. Never beyond
        # what the client may hold now (an admin may have narrowed it).
        original = spent.scope or ()
        scope = scope_rules.within(requested, original) if requested else original
        return tuple(s for s in scope if s in client.scopes)

    def grant_of(spent: RefreshToken, scope: tuple[str, ...]) -> Grant:
        return Grant(client, spent.user_type, spent.user_id, scope, spent.auth_time, spent.amr)

    async def mint(spent: RefreshToken, scope: tuple[str, ...] | None) -> AccessToken:
        return await mint_access(tk, grant_of(spent, scope or ()), not_after=spent.family_expires_at)

    done = await refreshes.rotate(token, client_id=client.client_id, scope=narrowed, mint=mint)
    grant = grant_of(done.spent, done.scope or ())
    return (await respond(tk, grant, refresh=True, rotated=done)).body
