"""Revocation at two grains, as the hot path reads it: in memory, no storage imports.

Per user: Magento's "revoke before" watermark — every token of (user_type, user_id) with
iat <= revoke_before is dead. Per token: a jti deny list, kept until the token expires.
The server fills this state from its database (tokens/revoker.py writes, runtime.py replays the
change feed); the library guard fills it from the server's auth-state feed.
"""

from __future__ import annotations

from collections.abc import Callable

from tillkey.tokens.contracts import InvalidToken, TokenClaims
from tillkey.tokens.keys import Keyring


class RevocationState:
    def __init__(self) -> None:
        self.revoke_before: dict[tuple[int, int], int] = {}
        self.revoked: dict[str, int | None] = {}

    def note_user(self, user_type: int, user_id: int, ts: int) -> None:
        key = (user_type, user_id)
        if ts > self.revoke_before.get(key, -1):
            self.revoke_before[key] = ts

    def note_token(self, jti: str, expires_at: int | None) -> None:
        self.revoked[jti] = expires_at

    def prune(self, now: int) -> None:
        self.revoked = {j: e for j, e in self.revoked.items() if e is None or e > now}

    def is_revoked(self, claims: TokenClaims) -> bool:
        before = self.revoke_before.get((claims.user_type, claims.user_id))
        if before is not None and claims.issued_at <= before:
            return True
        return claims.jti in self.revoked


class Validator:
    """Composite validator: expiry, revocation, then the signing key (Magento's
    CompositeUserTokenValidator, plus key retirement: a cached token skips the signature check,
    so the key's end is checked here on every call)."""

    def __init__(
        self, state: RevocationState, now: Callable[[], float], keyring: Callable[[], Keyring] | None = None
    ) -> None:
        self._state = state
        self._now = now
        self._keyring = keyring

    def validate(self, claims: TokenClaims) -> None:
        now = self._now()
        if claims.expires_at is not None and claims.expires_at <= now:
            raise InvalidToken(detail="token expired", reason="expired")
        if self._state.is_revoked(claims):
            raise InvalidToken(detail="token revoked", reason="revoked")
        if claims.kid is not None and self._keyring is not None and self._keyring().verifier(claims.kid, now) is None:
            raise InvalidToken(detail="signing key retired", reason="revoked")
