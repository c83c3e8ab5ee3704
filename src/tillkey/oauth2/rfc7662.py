"""RFC 7662 token introspection, for resource servers holding a token: is it active, for whom,
which scopes. Access tokens are checked exactly as the hot path checks them (signature or lookup,
expiry, revocation, the client still registered); refresh tokens only by the client they belong to.

§2.1: the endpoint must keep token scanning and cross-client reading out. Any confidential client
may ask, but only a client registered as a resource server (`resource_server`) learns about tokens
it was not issued (admin and customer login tokens, API keys, other clients' tokens); any other
client learns only about its own. Everything else is {"active": false} (§2.2), the same answer as
for a token that does not exist. The steps: OAuth2.introspect (oauth2/service.py)."""

from __future__ import annotations

from typing import Any

from tillkey.oauth2.access_tokens import subject
from tillkey.principal import Principal
from tillkey.store.oauth2 import Client, RefreshToken
from tillkey.tokens.contracts import TokenClaims

PARAMS = frozenset(
    {"token", "token_type_hint", "client_id", "client_secret", "client_assertion_type", "client_assertion"}
)
INACTIVE: dict[str, Any] = {"active": False}


def refresh_answer(rec: RefreshToken | None, client: Client, now: int, issuer: str) -> dict[str, Any]:
    """A refresh token is active only to the client it belongs to, while unspent and unexpired."""
    if (
        rec is None
        or rec.client_id != client.client_id
        or rec.used_at is not None
        or rec.revoked_at is not None
        or min(rec.expires_at, rec.family_expires_at) <= now
    ):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": rec.client_id,
        "scope": " ".join(rec.scope or ()),
        "sub": subject(rec.user_type, rec.user_id),
        "iat": rec.issued_at,
        "exp": min(rec.expires_at, rec.family_expires_at),
        "iss": issuer,
    }


def access_answer(principal: Principal, claims: TokenClaims, client: Client, issuer: str) -> dict[str, Any]:
    """An access token that passed the hot path's checks (`principal`, `claims`)."""
    if principal.is_guest:
        return INACTIVE  # e.g. the client it was issued to has been deleted
    if not client.resource_server and claims.client_id != client.client_id:
        return INACTIVE
    out: dict[str, Any] = {
        "active": True,
        "token_type": "DPoP" if claims.cnf is not None and "jkt" in claims.cnf else "Bearer",
        "sub": subject(claims.user_type, claims.user_id),
        "iat": claims.issued_at,
        "jti": claims.jti,
        "iss": issuer,
    }
    if claims.expires_at is not None:
        out["exp"] = claims.expires_at
    if claims.client_id is not None:
        out["client_id"] = claims.client_id
        out["aud"] = issuer
    if principal.scopes is not None:
        out["scope"] = " ".join(sorted(principal.scopes))
    if claims.cnf is not None:
        out["cnf"] = dict(claims.cnf)  # RFC 9449 §6.2: the resource server checks the proof's key
    return out
