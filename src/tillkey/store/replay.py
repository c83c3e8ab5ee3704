"""The replay cache of single-use values (DPoP proof jtis; credentials/dpop.py `ReplayCache`):
a table every process shares, cleaned by expiry. The primary key decides between two processes
that see the same value at once: one insert wins.

This is on the hot path of every DPoP request, so values are committed in groups, as opaque tokens
are (tokens/issuer.py `OpaqueStore`): the values of requests that arrive while a commit is in flight
go together into the next transaction (`INSERT … ON CONFLICT DO NOTHING RETURNING` tells which rows
were new), and expired rows are purged at most once per `PURGE_EVERY` seconds, not per value."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tillkey.errors import Unavailable
from tillkey.store.db import Database
from tillkey.store.models import ReplayCacheRow

GROUP_MAX = 500
PURGE_EVERY = 30.0
log = logging.getLogger(__name__)


class DatabaseReplayCache:
    def __init__(self, db: Database, now: Callable[[], float], *, group_max: int = GROUP_MAX) -> None:
        self._db = db
        self._now = now
        self._group_max = group_max
        self._waiting: list[tuple[str, int, asyncio.Future[bool]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._purged_at = float("-inf")

    async def first_sight(self, key: str, expires_at: float) -> bool:
        """Record `key` (its digest) until `expires_at`; False when it is already recorded.
        `Unavailable` (503) when the database cannot record it: never accepted unrecorded."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((digest, int(expires_at * 1000), done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups(), name="tillkey-replay-group")
        return await done

    async def _commit_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self._group_max], self._waiting[self._group_max :]
            rows: dict[str, int] = {}
            for digest, expires_ms, _ in group:
                rows.setdefault(digest, expires_ms)
            try:
                fresh = await self._insert(rows)
            except BaseException as exc:
                why = type(exc).__name__  # the class only: a driver's message can carry parameters
                log.warning("replay cache not written (%d values): %s", len(group), why)
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(Unavailable(headers={"Retry-After": "1"}, detail=f"replay cache: {why}"))
                if not isinstance(exc, Exception):
                    for _, _, done in self._waiting:
                        if not done.done():
                            done.set_exception(Unavailable(headers={"Retry-After": "1"}, detail="shutting down"))
                    self._waiting = []
                    raise
                continue
            for digest, _, done in group:
                # A value twice in one group: the first caller has it, the second is a replay.
                first = digest in fresh
                fresh.discard(digest)
                if not done.done():
                    done.set_result(first)

    async def _insert(self, rows: dict[str, int]) -> set[str]:
        now = self._now()
        # A Core connection, not an ORM session: this runs per DPoP request (or group of them).
        async with self._db.write_turn(), self._db.engine.begin() as conn:
            if now - self._purged_at >= PURGE_EVERY:
                # A value seen again after its row expired but before this purge counts as a
                # replay: it stays refused up to PURGE_EVERY seconds longer than needed, never less.
                await conn.execute(delete(ReplayCacheRow).where(ReplayCacheRow.expires_ms <= int(now * 1000)))
                self._purged_at = now
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            stmt = (
                insert(ReplayCacheRow)
                .values([{"digest": d, "expires_ms": e} for d, e in rows.items()])
                .on_conflict_do_nothing(index_elements=["digest"])
                .returning(ReplayCacheRow.digest)
            )
            return set((await conn.scalars(stmt)).all())
