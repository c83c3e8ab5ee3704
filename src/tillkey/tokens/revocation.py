"""Revocation at two grains, kept in memory for the hot path and in the database for durability.

Per user: Magento's "revoke before" watermark — every token of (user_type, user_id) with
iat <= revoke_before is dead. Per token: a jti deny list, kept until the token expires.
"""

from __future__ import annotations

from collections.abc import Callable

from tillkey.audit import TOKEN_REVOKED, AuditLog
from tillkey.store import auth as repo
from tillkey.store.db import Database
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


class Revoker:
    """Writes revocations durably (row + change-feed entry in one transaction), then applies them
    to this process at once; other processes pick them up from the change feed."""

    def __init__(
        self, db: Database, state: RevocationState, now: Callable[[], int], audit: AuditLog | None = None
    ) -> None:
        self._db = db
        self._state = state
        self._now = now
        self._audit = audit

    async def revoke_for(self, user_type: int, user_id: int) -> None:
        ts = self._now()
        async with self._db.transaction() as s:
            await repo.set_revoke_before(s, user_type, user_id, ts)
            await repo.record_change(s, "revoke_user", ts, user_type=user_type, user_id=user_id)
            if self._audit:
                await self._audit.record_in(
                    s, TOKEN_REVOKED, details={"target_type": user_type, "target_id": user_id, "scope": "all"}
                )
        self._state.note_user(user_type, user_id, ts)

    async def revoke_token(self, claims: TokenClaims) -> None:
        now = self._now()
        async with self._db.transaction() as s:
            await repo.add_revoked_token(s, claims.jti, claims.expires_at)
            await repo.record_change(s, "revoke_token", now, ref=claims.jti)
            if self._audit:
                details = {
                    "target_type": claims.user_type,
                    "target_id": claims.user_id,
                    "scope": "one",
                    "jti": claims.jti,
                }
                await self._audit.record_in(s, TOKEN_REVOKED, details=details)
        self._state.note_token(claims.jti, claims.expires_at)

    async def revoke_ids(self, tokens: list[tuple[str, int | None]]) -> None:
        """Deny these token ids (jti, expiry) — the access tokens of a revoked refresh family or of
        a replayed authorization code. Audited by the caller, who knows why."""
        if not tokens:
            return
        now = self._now()
        async with self._db.transaction() as s:
            for jti, expires_at in tokens:
                await repo.add_revoked_token(s, jti, expires_at)
                await repo.record_change(s, "revoke_token", now, ref=jti)
        for jti, expires_at in tokens:
            self._state.note_token(jti, expires_at)
