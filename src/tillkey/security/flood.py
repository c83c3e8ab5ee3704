"""Login flood control: how a flood of sign-ins (or of refused requests) is slowed, queued and shed.

The layers, outermost first; accounts/signin/budget.py (FailureBudget) is the one caller of the
sign-in ones:
- Rate limits per client IP and per name presented (security/ratelimit.py, `limits`), before any work.
- Pacing (`Pacer`): a refusal is answered after a short, jittered pause, so a closed-loop flood
  cannot spin on refusals (also the general rate limit's, security/headers.py).
- Admission (`LoginAdmission`): how many sign-ins work at once; the rest wait or are shed.
- The hashing queue (`HashingQueue`, used by crypto/passwords.py): argon2 work past the pool and
  its queue is refused at once, whichever path (sign-in, password change, registration) asks.
- The throttle and the lockout: failures per name and per account (budget.py), stored through the
  repository store/throttle.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tillkey.errors import Unavailable

# --- pacing -------------------------------------------------------------------------------------


class Pacer:
    """Slow refusals: a request refused for being over its budget is answered after a short, jittered
    pause instead of at once.

    A closed-loop flood (hundreds of connections, each sending its next request the moment the last
    is answered) that is refused in microseconds comes straight back: the event loop then spends its
    time refusing, and verified requests queue behind the refusals. Pausing costs a sleeping task,
    not CPU, and caps such a flood at about (connections / pause) requests per second. The number of
    paused requests is bounded; past it, refusals go out at once."""

    def __init__(self, *, seconds: float, limit: int) -> None:
        self._seconds = seconds
        self._limit = limit
        self._paused = 0

    async def pause(self) -> None:
        if self._seconds <= 0 or self._paused >= self._limit:
            return
        self._paused += 1
        try:
            # Jittered, so a flood that arrived together is not answered in one burst.
            await asyncio.sleep(self._seconds * (0.5 + random.random() / 2))  # noqa: S311
        finally:
            self._paused -= 1


# --- admission ---------------------------------------------------------------------------------


class LoginAdmission:
    """Login admission: how many logins may work at once, and how the rest wait or are shed.

    A login past the hashing pool waits in a bounded waiting room for a slot, sleeping on the event
    loop at no CPU cost; it is refused with 503 only when the room is full or its wait runs out.
    Answering a flood at once would invite its next request at once (see Pacer):
    waiting bounds the flood's rate by the hashing pool instead."""

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


# --- the hashing queue -------------------------------------------------------------------------


class HashingQueue:
    """The bound in front of the password hashing pool: its workers plus a queue. Past it, work is
    refused with 503 at once instead of piling up memory and latency."""

    def __init__(self, limit: int, *, detail: str) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._detail = detail

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            raise Unavailable(headers={"Retry-After": "1"}, detail=self._detail)
        async with self._slots:
            yield
