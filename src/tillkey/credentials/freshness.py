"""Fresh as well as fast (issue 19): a credential created a moment ago by the CLI or another
process works on the very next request, not after the next change-feed poll.

The credential kinds answer from memory, which the change feed keeps current every `sync_interval`.
When a kind does not know a credential, it asks `CatchUp.refresh` before refusing: one poll of the
change feed that started after the request arrived (single-flight: every request missing at that
moment waits for the same poll, so a burst costs one query), then it looks again. A credential still
unknown after a poll is remembered as unknown for `ttl` seconds, so a flood repeating made-up
credentials does not cost a database query each; the background poll still runs every interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("tillkey.access")


class CatchUp:
    MAX_NEGATIVE = 10_000  # remembered unknown credentials; beyond it the memory starts over

    def __init__(
        self, poll: Callable[[], Awaitable[None]], *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._poll = poll
        self._ttl = ttl
        self._clock = clock
        # hash of a credential -> until when it is known to be unknown (hashes: bounded memory per entry)
        self._unknown: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = 0  # polls started so far; the running one is number _started
        self.polls = 0  # polls made (for unknown credentials, or settling on a change signal)
        self.lookups = 0  # unknown credentials that asked for a poll (not answered by the negative cache)
        self.skipped = 0  # misses answered from the negative cache

    async def refresh(self, key: str) -> bool:
        """Bring the in-memory state up to date with the change feed as of now, unless `key` was
        found unknown less than `ttl` ago. True when a poll ran: the caller should look again."""
        now = self._clock()
        until = self._unknown.get(hash(key))
        if until is not None:
            if until > now:
                self.skipped += 1
                return False
            del self._unknown[hash(key)]
        self.lookups += 1
        return await self._poll_after(self._started + 1)  # a poll that starts after this request arrived

    async def settle(self) -> bool:
        """Wait for one poll that starts after this call (another process signalled a change:
        store/signal.py), shared with every request waiting at the same moment. False if it failed."""
        return await self._poll_after(self._started + 1)

    async def _poll_after(self, need: int) -> bool:
        while True:
            task = self._task
            if task is None:
                self._started += 1
                self.polls += 1
                task = self._task = asyncio.create_task(self._run(), name="tillkey-catch-up")
                started = self._started
            else:
                started = self._started
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("catching up with the change feed failed; answering from memory")
                return False
            if started >= need:
                return True

    def unknown(self, key: str) -> None:
        """The caller looked again after a poll and still does not know `key`."""
        if len(self._unknown) >= self.MAX_NEGATIVE:
            now = self._clock()
            self._unknown = {k: t for k, t in self._unknown.items() if t > now}
            if len(self._unknown) >= self.MAX_NEGATIVE:
                self._unknown.clear()
        self._unknown[hash(key)] = self._clock() + self._ttl

    async def look_again(self, key: str, lookup: Callable[[], T | None]) -> T | None:
        """`lookup` once more after catching up (None at once if `key` is known to be unknown)."""
        if not await self.refresh(key):
            return None
        found = lookup()
        if found is None:
            self.unknown(key)
        return found

    async def _run(self) -> None:
        try:
            await self._poll()
        finally:
            self._task = None
