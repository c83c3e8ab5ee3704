"""Readiness: can this process serve? The database answers `SELECT 1`, and Redis (when configured)
answers PING, each within a short timeout.

A result is reused for `ttl` seconds, and concurrent callers share one check in flight: /readyz is
anonymous, and a flood of it must cost at most one database round trip per second, not one each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from tillkey.store.db import Database


log = logging.getLogger("tillkey.health")

CHECK_TIMEOUT = 1.0  # seconds each dependency has to answer
RESULT_TTL = 1.0  # seconds a result is reused


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, bool] = field(default_factory=dict)  # dependency -> reachable
    at: float = -1e18  # monotonic time of the check

    @property
    def ready(self) -> bool:
        return all(self.checks.values())


class ReadinessProbe:
    def __init__(
        self,
        db: Database,
        redis_ping: Callable[[], Awaitable[bool]] | None = None,
        *,
        timeout: float = CHECK_TIMEOUT,
        ttl: float = RESULT_TTL,
    ) -> None:
        """`redis_ping`: when Redis is configured, whether it answers PING."""
        self._db = db
        self._redis_ping = redis_ping
        self._timeout = timeout
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self.last = Readiness()

    async def check(self) -> Readiness:
        if time.monotonic() - self.last.at < self._ttl:
            return self.last
        async with self._lock:
            if time.monotonic() - self.last.at < self._ttl:  # someone else just checked
                return self.last
            checks = {"database": await self._probe("database", self._database)}
            if self._redis_ping is not None:
                checks["redis"] = await self._probe("redis", self._redis)
            self.last = Readiness(checks, time.monotonic())
            return self.last

    async def _probe(self, name: str, probe: Callable[[], Awaitable[Any]]) -> bool:
        try:
            await asyncio.wait_for(probe(), self._timeout)
            return True
        except Exception as exc:
            # The exception's type only: its text may carry the connection URL and its password.
            log.warning("readiness: %s unreachable (%s)", name, type(exc).__name__)
            return False

    async def _database(self) -> None:
        async with self._db.session() as s:
            await s.execute(text("SELECT 1"))

    async def _redis(self) -> None:
        if self._redis_ping is None or not await self._redis_ping():
            raise ConnectionError("redis did not answer PING")
