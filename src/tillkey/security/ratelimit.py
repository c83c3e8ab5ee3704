"""Rate limits with the `limits` library: in memory by default, in Redis when configured, so
several processes share one budget. If Redis fails, the check falls back to this process's own
memory (weaker, never open) and says so in the log; Redis is then left alone for a moment, so a
dead server costs one request a connection attempt, not every request."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tillkey.errors import RateLimited

log = logging.getLogger("tillkey.ratelimit")


# Seconds the shared storage is skipped after a failure (limits then count in this process).
REDIS_RETRY_AFTER = 1.0


class RateLimiter:
    def __init__(self, redis_url: str = "", key_prefix: str = "tillkey") -> None:
        memory = storage_from_string("async+memory://")
        assert isinstance(memory, Storage)
        self._memory = SlidingWindowCounterRateLimiter(memory)
        self._shared: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            # redis-py (the client of store/broadcast.py too), with short timeouts and one retry:
            # its default retries with backoff would hold a request for seconds if Redis is down.
            options: dict[str, Any] = {
                "implementation": "redispy",
                "key_prefix": key_prefix,
                "socket_connect_timeout": 0.5,
                "socket_timeout": 1.0,
                "retry": Retry(NoBackoff(), 1),
            }
            storage = storage_from_string("async+" + redis_url, **options)
            assert isinstance(storage, Storage)
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._last_warning = 0.0
        self._skip_shared_until = 0.0
        self.redis_failures = 0

    @staticmethod
    def item(spec: str) -> RateLimitItem | None:
        """'30/minute' → a limit; '' → no limit."""
        return parse(spec) if spec else None

    async def hit(self, item: RateLimitItem | None, *key: str) -> None:
        """Count one request against `item` for `key`; raise RateLimited (429) past the limit."""
        if item is None:
            return
        limiter = self._shared or self._memory
        if limiter is not self._memory and time.monotonic() < self._skip_shared_until:
            limiter = self._memory
        try:
            allowed = await limiter.hit(item, *key)
        except Exception as exc:  # Redis down or unreachable: degrade, never fail open
            self.redis_failures += 1
            self._skip_shared_until = time.monotonic() + REDIS_RETRY_AFTER
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("rate-limit storage failed (%s); using per-process limits", type(exc).__name__)
            limiter = self._memory
            allowed = await limiter.hit(item, *key)
        if not allowed:
            try:
                stats = await limiter.get_window_stats(item, *key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
            except Exception:
                retry = item.get_expiry()
            raise RateLimited(
                "Too many requests. Please wait and try again later.",
                headers={"Retry-After": str(retry)},
                detail=f"rate limit {item} exceeded for {key[0]}",
            )

    async def count(self, key: str, expiry: int) -> int:
        """Add one to a plain counter (shared through Redis when configured) that is forgotten
        `expiry` seconds after it was started; the new value."""
        return int(await self._counter("incr", key, expiry))

    async def peek(self, key: str) -> int:
        """A counter's value, 0 if it was never counted or is forgotten."""
        return int(await self._counter("get", key, 0))

    async def _counter(self, op: str, key: str, expiry: int) -> int:
        shared = self._shared is not None and time.monotonic() >= self._skip_shared_until
        limiter = self._shared if shared and self._shared is not None else self._memory
        key = "counter/" + key
        try:
            storage = limiter.storage
            return int(await (storage.incr(key, expiry) if op == "incr" else storage.get(key)) or 0)
        except Exception as exc:  # Redis down: this process's memory, as for the limits
            if limiter is self._memory:
                raise
            self.redis_failures += 1
            self._skip_shared_until = time.monotonic() + REDIS_RETRY_AFTER
            log.warning("counter storage failed (%s); counting in this process", type(exc).__name__)
            storage = self._memory.storage
            return int(await (storage.incr(key, expiry) if op == "incr" else storage.get(key)) or 0)


class LocalBudget:
    """The general per-client budget, counted in this process: a sliding-window counter (the same
    approximation as the `limits` strategy above: the previous window weighted by how much of it
    still overlaps, plus the current one) in a dict, under a microsecond a request.

    Not shared with other processes even when Redis is configured: a round trip per request would
    cost more than the whole auth check (issue 19). The general limit bounds one client's load on
    one process; the limits that must be exact across processes (logins) stay on RateLimiter."""

    MAX_KEYS = 100_000  # distinct clients tracked at once; beyond it, stale entries are dropped

    def __init__(self, item: RateLimitItem, clock: Callable[[], float] = time.time) -> None:
        self.limit = item.amount
        self.window = float(item.get_expiry())
        self.item = item
        self._clock = clock
        # key -> [window index, count in the previous window, count in the current one]
        self._counts: dict[str, list[int]] = {}

    def hit(self, key: str) -> None:
        """Count one request for `key`; raise RateLimited (429, with Retry-After) past the budget."""
        now = self._clock()
        position = now / self.window
        index = int(position)
        entry = self._counts.get(key)
        if entry is None:
            if len(self._counts) >= self.MAX_KEYS:
                self._prune(index)
            entry = self._counts[key] = [index, 0, 0]
        elif entry[0] != index:
            entry[1] = entry[2] if entry[0] == index - 1 else 0
            entry[2] = 0
            entry[0] = index
        overlap = 1.0 - (position - index)  # share of the previous window still inside the sliding one
        if entry[1] * overlap + entry[2] + 1 > self.limit:
            raise RateLimited(
                "Too many requests. Please wait and try again later.",
                headers={"Retry-After": str(self._retry_after(entry, overlap, position - index))},
                detail=f"rate limit {self.item} exceeded for client",
            )
        entry[2] += 1

    def _retry_after(self, entry: list[int], overlap: float, elapsed: float) -> int:
        """Seconds until one more request fits: the previous window's weight must fall far enough,
        or, if the current window alone is full, this window must end."""
        to_window_end = (1.0 - elapsed) * self.window
        excess = entry[1] * overlap + entry[2] - self.limit + 1
        if entry[2] < self.limit and entry[1] and excess / entry[1] * self.window < to_window_end:
            return max(1, math.ceil(excess / entry[1] * self.window))
        return max(1, math.ceil(to_window_end))

    def _prune(self, index: int) -> None:
        stale = [k for k, v in self._counts.items() if v[0] < index - 1]
        for k in stale:
            del self._counts[k]
        if len(self._counts) >= self.MAX_KEYS:
            self._counts.clear()  # all live: start over rather than grow without bound
