"""The client credentials grant (RFC 6749 §4.4): a confidential client acting for itself. The token
stands for a principal of type OAUTH_CLIENT holding the resources its scopes cover; no refresh
token (§4.4.3), the client simply asks again. The steps: oauth2/service.py."""

from __future__ import annotations

from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.rfc6749.errors import InvalidScope, UnauthorizedClient
from tillkey.store.oauth2 import Client

GRANT_TYPE = "client_credentials"
TOKEN_PARAMS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion_type", "client_assertion"}
)


def scope_of(client: Client, params: dict[str, str]) -> tuple[str, ...]:
    """The scope of the token: what the client asks for, within the resource scopes it holds."""
    if GRANT_TYPE not in client.grant_types or not client.confidential:
        raise UnauthorizedClient()
    allowed = scope_rules.resource_scopes(client.scopes)
    requested = scope_rules.parse(params.get("scope"))
    scope = scope_rules.within(requested, allowed) if requested else allowed
    if not scope:
        raise InvalidScope("No scope: the client holds no resource scopes.")
    return scope
