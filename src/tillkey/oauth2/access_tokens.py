"""OAuth 2 access tokens: a JWT in the RFC 9068 profile (`typ: at+jwt`), or an opaque `tk_at_`
token (TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT), minted by the one issuer (tokens/issuer.py). Both carry
Tillkey's own claims (uid, utypid), so the one reader and the one hot path (tokens/service.py)
accept them beside every other token; the scope and client claims then narrow the caller
(access/grants.py). Minted by OAuth2.access_token (oauth2/service.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tillkey.tokens.issuer import subject

__all__ = ["AccessToken", "subject"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int
    scope: tuple[str, ...]
    audited: bool = False  # its token.issued record was committed with it (opaque tokens)
