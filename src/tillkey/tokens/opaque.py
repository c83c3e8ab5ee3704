"""Opaque access tokens: `tk_at_` + 256 random bits. Only a keyed HMAC digest is stored.

Reading one is a lookup, so the reader asks an `OpaqueTokens` store that the server provides
(tokens/issuer.py `OpaqueStore`, over the database): this module, on the hot path, imports no
storage, and the library guard (which cannot look opaque tokens up) never loads the database.
"""

from __future__ import annotations

from typing import Protocol

from tillkey.tokens.contracts import InvalidToken, TokenClaims

PREFIX = "tk_at_"
MAX_LENGTH = 128


class OpaqueTokens(Protocol):
    async def find(self, token: str) -> TokenClaims | None:
        """The claims stored for this token (looked up by its keyed digest), or None."""
        ...


class OpaqueReader:
    """Looks the token up in the store; the token cache in front keeps this off the hot path."""

    def __init__(self, tokens: OpaqueTokens) -> None:
        self._tokens = tokens

    async def read(self, token: str) -> TokenClaims:
        if not token.startswith(PREFIX) or len(token) > MAX_LENGTH:
            raise InvalidToken(detail="not an opaque token")
        claims = await self._tokens.find(token)
        if claims is None:
            raise InvalidToken(detail="unknown opaque token")
        return claims
