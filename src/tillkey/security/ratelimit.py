"""Rate limits with the `limits` library: in memory by default, in Redis when configured, so
several processes share one budget. If Redis fails, the check falls back to this process's own
memory (weaker, never open) and says so in the log; Redis is then left alone for a moment, so a
dead server costs one request a connection attempt, not every request."""

from __future__ import annotations

import logging
import math
import time
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
                "implementation": "redispy", "key_prefix": key_prefix, "socket_connect_timeout": 0.5,
                "socket_timeout": 1.0, "retry": Retry(NoBackoff(), 1),
            }  # fmt: skip
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
