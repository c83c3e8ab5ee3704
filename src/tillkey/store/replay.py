"""The replay cache of single-use values (DPoP proof jtis; credentials/dpop.py `ReplayCache`):
a table every process shares, cleaned by expiry. The primary key decides between two processes
that see the same value at once: one insert wins."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from tillkey.store.db import Database
from tillkey.store.models import ReplayCacheRow


class DatabaseReplayCache:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db = db
        self._now = now

    async def first_sight(self, key: str, expires_at: float) -> bool:
        """Record `key` (its digest) until `expires_at`; False when it is already recorded."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        now_ms = int(self._now() * 1000)
        async with self._db.write_turn(), self._db.transaction() as s:
            await s.execute(delete(ReplayCacheRow).where(ReplayCacheRow.expires_ms <= now_ms))
            try:
                async with s.begin_nested():
                    await s.execute(insert(ReplayCacheRow).values(digest=digest, expires_ms=int(expires_at * 1000)))
            except IntegrityError:
                return False
        return True
