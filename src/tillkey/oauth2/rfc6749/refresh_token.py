"""The refresh token grant (RFC 6749 §6, OAuth 2.1 §4.3): rotation on every use, reuse detection
and family revocation live in tokens/refresh.py; this module checks the client and the scope;
oauth2/service.py runs the steps."""

from __future__ import annotations

from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.rfc6749.errors import UnauthorizedClient
from tillkey.oauth2.rfc6749.params import require
from tillkey.store.oauth2 import Client, RefreshToken

GRANT_TYPE = "refresh_token"
TOKEN_PARAMS = frozenset(
    {"grant_type", "refresh_token", "scope", "client_id", "client_secret", "client_assertion_type", "client_assertion"}
)


def token_and_scope(client: Client, params: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """The presented refresh token and the scope asked for (empty: the family's)."""
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient()
    (token,) = require(params, "refresh_token")
    return token, scope_rules.parse(params.get("scope"))


def narrowed(client: Client, spent: RefreshToken, requested: tuple[str, ...]) -> tuple[str, ...]:
    """§6: a narrower scope may be asked for; the family keeps the original grant. Never beyond
    what the client may hold now (an admin may have narrowed it)."""
    original = spent.scope or ()
    scope = scope_rules.within(requested, original) if requested else original
    return tuple(s for s in scope if s in client.scopes)
