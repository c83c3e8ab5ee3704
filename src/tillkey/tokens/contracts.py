"""The four token verbs, as Magento splits them: issue, read, validate, revoke.

Configuration picks the issuer (JWT or opaque); the reader accepts both, so switching the
format does not sign anyone out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from tillkey.errors import Unauthenticated

TokenKind = Literal["jwt", "opaque"]
# The surface a login token was issued for (tokens/issuer.py sets it; nothing else can).
SURFACE_CLAIM = "tk_surface"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_type: int
    user_id: int
    issued_at: int
    expires_at: int | None  # None: never expires (integration tokens)
    jti: str
    kind: TokenKind
    auth_methods: tuple[str, ...] = ("pwd",)
    kid: str | None = None  # the signing key of a JWT: retiring the key ends the token
    # OAuth 2 access tokens: granted scopes and the client they were issued to (None otherwise).
    scope: tuple[str, ...] | None = None
    client_id: str | None = None
    # Login tokens a surface renews: that surface ("medusa"), and the original sign-in time that
    # every renewal carries forward (None: neither was recorded, so the token is not renewable).
    surface: str | None = None
    auth_time: int | None = None
    # Confirmation (RFC 7800): the key the token is bound to, e.g. {"jkt": ...} for DPoP (RFC 9449
    # §6); None: a bearer token. credentials/binding.py checks it on every use.
    cnf: dict[str, str] | None = None


class InvalidToken(Unauthenticated):
    """A bearer credential that is unreadable, expired or revoked. `detail` says which (log only).

    `permanent` marks a token that can never become valid (bad signature, malformed), as opposed
    to one that might later (signed by a key this process has not loaded yet, dated ahead)."""

    permanent = False


class TokenIssuer(Protocol):
    async def issue(
        self, user_type: int, user_id: int, ttl: int | None, auth_methods: tuple[str, ...] = ("pwd",)
    ) -> str:
        """Mint a token for this user. Callers: the token endpoints, after authenticating."""
        ...


class TokenReader(Protocol):
    async def read(self, token: str) -> TokenClaims:
        """Parse and check integrity only (signature / lookup). Raises InvalidToken."""
        ...


class TokenValidator(Protocol):
    def validate(self, claims: TokenClaims) -> None:
        """Check expiry and revocation against in-memory state. Raises InvalidToken."""
        ...


class TokenRevoker(Protocol):
    async def revoke_for(self, user_type: int, user_id: int) -> None:
        """Revoke every token of this user issued up to now. Durable before it returns."""
        ...

    async def revoke_token(self, claims: TokenClaims) -> None:
        """Revoke one token by its id. Durable before it returns."""
        ...
