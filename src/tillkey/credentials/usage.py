"""Last-use times, noted in memory on the hot path and written in batches off it.

A credential used a thousand times a second must not cost a thousand writes: each use only notes
the time here, at most once per `interval` seconds per credential, and the sync loop writes what
was noted (Tillkey.flush_usage). A crash loses at most the last interval's notes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")


class UsageNotes(Generic[K]):
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: dict[K, int] = {}
        self._noted: dict[K, float] = {}  # key -> when last noted (seconds)

    def touch(self, key: K, now: float) -> None:
        if now - self._noted.get(key, -1e18) < self.interval:
            return
        self._noted[key] = now
        self._pending[key] = int(now * 1000)

    def drain(self) -> dict[K, int]:
        pending, self._pending = self._pending, {}
        return pending

    def forget(self, key: K) -> None:
        self._noted.pop(key, None)
        self._pending.pop(key, None)
