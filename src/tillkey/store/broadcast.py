"""Change broadcast over Redis pub/sub: every Tillkey process hears at once that auth state changed.

The database stays the source of truth. A message carries no state, it only wakes the receivers'
change-feed poll (runtime.Tillkey.poll_changes), so a lost, late, repeated or forged message costs
at most one extra database read, never a missed or invented revocation. The regular poll
(`sync_interval`) and the full reconcile (`reconcile_interval`) keep running whether Redis is up or
not: they bound how late a change can be when a message is lost or Redis is down.

Nothing here ever fails the request that made the change (it is committed before it is published):
messages go out from a background task, and Redis failures are counted, logged at most once a
minute (never the URL: it may hold a password) and retried with backoff.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("tillkey.broadcast")

QUEUE_LIMIT = 1000  # messages waiting to be published; beyond, they are dropped (the poll covers them)
BACKOFF_MIN, BACKOFF_MAX = 0.25, 5.0  # seconds between attempts to resubscribe
WARN_EVERY = 60.0  # seconds between repeated warnings while Redis stays down
FLUSH_SECONDS = 2.0  # how long stop() waits for queued messages (a CLI command's change)


def _cancelled() -> bool:
    """Whether this task was asked to stop. redis-py can turn a cancellation inside a command into
    an error of its own (seen: `tillkey admin create` in the compose stack never exiting), so a loop
    that survives Redis errors must ask before it goes round again."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _client(url: str, retries: int) -> Redis:
    # Short timeouts: a Redis that does not answer must not hold a message (or a shutdown) for long.
    return Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        retry=Retry(NoBackoff(), retries),
    )


class Broadcast:
    """Publishes this process's committed changes and listens for other processes' ones on the
    channel `<redis_key_prefix>:changes`. Messages are JSON: origin process id (`o`), change kinds
    (`k`), highest change-feed seq (`s`) and the wall-clock publish time (`t`).

    Plain attributes, read by the metrics collector at scrape time:

    - `redis_up: bool` — the last Redis operation (subscribe, listen, publish, ping) succeeded.
    - `published: int` — messages this process published.
    - `received: int` — messages received from other processes (its own are ignored).
    - `publish_failures: int` — messages not published (Redis down, or the queue full).
    - `last_lag_seconds: float | None` — receive time minus publish time of the latest message
      received (wall clocks of two hosts: as good as their time sync).
    - `LAG_BUCKETS: tuple[float, ...]` — upper bounds (seconds) of the lag histogram;
      `lag_counts: list[int]` — messages per bucket, not cumulative, one more entry than
      LAG_BUCKETS (the last is +Inf); `lag_sum: float` — the sum of every lag observed.
    """

    LAG_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self, redis_url: str, key_prefix: str, on_change: Callable[[], None]) -> None:
        self.channel = f"{key_prefix}:changes"
        self.origin = secrets.token_hex(8)  # tells this process's own messages apart
        self._on_change = on_change
        # One retry: a pooled connection that died with a Redis restart is replaced once, at once.
        self._publisher = _client(redis_url, retries=1)
        # None: a broken subscription always surfaces here, so a resubscribe is followed by a poll.
        self._subscriber = _client(redis_url, retries=0)
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_warning = 0.0
        self._ever_up = False
        self.redis_up = False
        self.published = 0
        self.received = 0
        self.publish_failures = 0
        self.last_lag_seconds: float | None = None
        self.lag_counts = [0] * (len(self.LAG_BUCKETS) + 1)
        self.lag_sum = 0.0

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, listen: bool) -> None:
        """Start publishing; `listen` also subscribes (servers do; a CLI command only publishes)."""
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="tillkey-broadcast-publish"))
        if listen:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="tillkey-broadcast-listen"))

    async def stop(self) -> None:
        """Send what is queued (briefly: a CLI command's change should wake the servers), then close."""
        if self._tasks and not self._queue.empty():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), FLUSH_SECONDS)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a stop (a CLI command's exit, a server's shutdown) never waits on Redis.
            _done, stuck = await asyncio.wait(self._tasks, timeout=FLUSH_SECONDS)
            if stuck:
                log.warning("Redis broadcast: %d task(s) did not stop; leaving them", len(stuck))
        self._tasks.clear()
        await self._publisher.aclose()
        await self._subscriber.aclose()

    async def ping(self) -> bool:
        """Does Redis answer within a second?"""
        try:
            ok = bool(await asyncio.wait_for(self._publisher.ping(), 1.0))  # type: ignore[arg-type]
        except Exception as exc:
            self._down("ping", exc)
            return False
        self._up()
        return ok

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, kinds: list[str], seq: int) -> None:
        """Queue a message for changes just committed. Never blocks and never raises."""
        message = json.dumps({"o": self.origin, "k": sorted(set(kinds)), "s": seq, "t": time.time()})
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.publish_failures += 1

    async def _publish_loop(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._publisher.publish(self.channel, message)
            except Exception as exc:
                if _cancelled():
                    raise asyncio.CancelledError from exc
                self.publish_failures += 1
                self._down("publish", exc)
            else:
                self.published += 1
                self._up()
            finally:
                self._queue.task_done()

    # --- listening ----------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._up()
                backoff = BACKOFF_MIN
                # Messages published while this process was not subscribed are lost: poll once now.
                self._on_change()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _cancelled():
                    raise asyncio.CancelledError from exc
                self._down("subscription", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _receive(self, data: Any) -> None:
        try:
            message = json.loads(data)
            origin, sent = message["o"], float(message["t"])
        except (ValueError, KeyError, TypeError):
            return  # not one of ours; a message only wakes a poll, so nothing to act on
        if origin == self.origin:
            return  # this process applied its own change when it made it
        lag = max(0.0, time.time() - sent)
        self.received += 1
        self.last_lag_seconds = lag
        self.lag_sum += lag
        self.lag_counts[bisect.bisect_left(self.LAG_BUCKETS, lag)] += 1
        self._on_change()

    # --- health -------------------------------------------------------------------------------

    def _up(self) -> None:
        if not self.redis_up:
            if self._ever_up:
                log.warning("Redis is reachable again: change broadcast and shared rate limits resume")
            else:
                log.info("change broadcast on Redis channel %s", self.channel)
            self._ever_up = True
        self.redis_up = True

    def _down(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self.redis_up or now - self._last_warning > WARN_EVERY:
            self._last_warning = now
            # The exception's type only: its text may name the server, never needed to act on it.
            log.warning(
                "Redis %s failed (%s): changes reach other processes through the database poll, "
                "rate limits are per process until it is back",
                what,
                type(exc).__name__,
            )
        self.redis_up = False
