"""Revoking tokens durably: the cold path beside tokens/revocation.py's in-memory state."""

from __future__ import annotations

from collections.abc import Callable

from tillkey.audit import TOKEN_REVOKED, AuditLog
from tillkey.store import auth as repo
from tillkey.store.db import Database
from tillkey.tokens.contracts import TokenClaims
from tillkey.tokens.revocation import RevocationState


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
