"""Login admission: how many logins may work at once, and how the rest wait or are shed.

A login past the hashing pool waits in a bounded waiting room for a slot, sleeping on the event
loop at no CPU cost; it is refused with 503 only when the room is full or its wait runs out.
Answering a flood at once would invite its next request at once (see security/pacing.py):
waiting bounds the flood's rate by the hashing pool instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tillkey.errors import Unavailable


class LoginAdmission:
    def __init__(self, *, working: int, waiting: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(working)
        self._waiting_limit = waiting
        self._waiting = 0
        self._wait_seconds = wait_seconds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            if self._waiting >= self._waiting_limit:
                raise Unavailable(headers={"Retry-After": "1"}, detail="login waiting room full")
            self._waiting += 1
            try:
                # Jittered, so a flood that arrived together is not answered in one burst.
                async with asyncio.timeout(self._wait_seconds * (0.5 + random.random() / 2)):  # noqa: S311
                    await self._slots.acquire()
            except TimeoutError:
                raise Unavailable(headers={"Retry-After": "1"}, detail="login wait timed out") from None
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
