"""Slow refusals: a request refused for being over its budget is answered after a short, jittered
pause instead of at once.

A closed-loop flood (hundreds of connections, each sending its next request the moment the last
is answered) that is refused in microseconds comes straight back: the event loop then spends its
time refusing, and verified requests queue behind the refusals. Pausing costs a sleeping task,
not CPU, and caps such a flood at about (connections / pause) requests per second. The number of
paused requests is bounded; past it, refusals go out at once.
"""

from __future__ import annotations

import asyncio
import random


class Pacer:
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
