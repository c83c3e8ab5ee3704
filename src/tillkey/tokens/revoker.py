"""Revoking tokens durably: the cold path beside tokens/revocation.py's in-memory state."""

from __future__ import annotations

import functools

from tillkey.audit import TOKEN_REVOKED
from tillkey.contracts import Changes, RevocationStore
from tillkey.store.unit_of_work import REVOKE_TOKEN, REVOKE_USER
from tillkey.tokens.contracts import TokenClaims
from tillkey.tokens.revocation import RevocationState


class Revoker:
    """Writes revocations durably (row + change-feed entry + audit in one unit of work), then
    applies them to this process at once; other processes pick them up from the change feed."""

    def __init__(self, uow: Changes, state: RevocationState, store: RevocationStore) -> None:
        self._uow = uow
        self._state = state
        self._store = store

    async def revoke_for(self, user_type: int, user_id: int) -> None:
        async with self._uow() as w:
            ts = w.now
            await self._store.revoke_user(w, user_type, user_id, ts)
            note = functools.partial(self._state.note_user, user_type, user_id, ts)
            w.changed(REVOKE_USER, user_type=user_type, user_id=user_id, apply=note)
            w.audit(TOKEN_REVOKED, details={"target_type": user_type, "target_id": user_id, "scope": "all"})

    async def revoke_token(self, claims: TokenClaims) -> None:
        async with self._uow() as w:
            await self._store.revoke_token(w, claims.jti, claims.expires_at)
            note = functools.partial(self._state.note_token, claims.jti, claims.expires_at)
            w.changed(REVOKE_TOKEN, ref=claims.jti, apply=note)
            details = {"target_type": claims.user_type, "target_id": claims.user_id, "scope": "one", "jti": claims.jti}
            w.audit(TOKEN_REVOKED, details=details)

    async def revoke_ids(self, tokens: list[tuple[str, int | None]]) -> None:
        """Deny these token ids (jti, expiry) — the access tokens of a revoked refresh family or of
        a replayed authorization code. Audited by the caller, who knows why."""
        if not tokens:
            return
        async with self._uow() as w:
            for jti, expires_at in tokens:
                await self._store.revoke_token(w, jti, expires_at)
                w.changed(REVOKE_TOKEN, ref=jti, apply=functools.partial(self._state.note_token, jti, expires_at))
