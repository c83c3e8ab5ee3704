"""The successful token response (RFC 6749 §5.1), shared by the grants: an access token, and, as
the grant allows, a refresh token (a new family, or the successor of a spent one) and an ID token;
OAuth2.respond (oauth2/service.py) mints them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tillkey.oauth2.access_tokens import AccessToken
from tillkey.store.oauth2 import Client


@dataclass(frozen=True, slots=True)
class Grant:
    """What a grant decided: who, for which client, which scopes, since when logged in."""

    client: Client
    user_type: int
    user_id: int
    scope: tuple[str, ...]
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    nonce: str | None = None
    jkt: str | None = None  # DPoP (RFC 9449): the access token is bound to this key
    x5t: str | None = None  # mTLS (RFC 8705 §3): ... and/or to this client certificate


@dataclass(frozen=True, slots=True)
class Sender:
    """What the token request proved it holds: a DPoP key, a client certificate (their thumbprints)."""

    jkt: str | None = None
    x5t: str | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    body: dict[str, Any]
    access: AccessToken
    family_id: str | None


def body_of(grant: Grant, access: AccessToken, refresh_token: str | None, id_token: str | None) -> dict[str, Any]:
    """RFC 6749 §5.1 (and OpenID Connect Core §3.1.3.3 for the ID token)."""
    body: dict[str, Any] = {
        "access_token": access.token,
        # RFC 9449 §5: a DPoP-bound token's type is DPoP.
        "token_type": "Bearer" if grant.jkt is None else "DPoP",
        "expires_in": access.expires_at - access.issued_at,
        "scope": " ".join(grant.scope),
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if id_token is not None:
        body["id_token"] = id_token
    return body
