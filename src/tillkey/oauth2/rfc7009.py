"""RFC 7009 token revocation. The client authenticates; a refresh token revokes its whole family
(and the access tokens issued from it), an access token is denied by its jti. Unknown, invalid
or someone else's tokens get the same 200 (§2.2), so the endpoint reveals nothing. The steps:
OAuth2.revoke (oauth2/service.py)."""

from __future__ import annotations

PARAMS = frozenset(
    {"token", "token_type_hint", "client_id", "client_secret", "client_assertion_type", "client_assertion"}
)
HINTS = frozenset({"access_token", "refresh_token"})
