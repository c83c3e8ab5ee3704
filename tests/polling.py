"""`eventually` (and `until`, its twin for async tests): the one way a test waits for something
that happens elsewhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, within: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call `check` until it returns a truthy value (returned) or `within` wall-clock seconds pass;
    then fail naming `what` and the last value or assertion. For work that really happens elsewhere
    (another server picking up a change, a background writer); never for an expiry or a lockout,
    which in-process tests reach by moving the clock (tests/inprocess.py)."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = check()
            if value:
                return value
            last: object = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within} s: {what or getattr(check, '__name__', check)} (last: {last!r})")
        time.sleep(interval)


async def until(
    check: Callable[[], Awaitable[T]], *, within: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """`eventually` for async tests (tests/inprocess.py): awaits `check` without blocking the app,
    e.g. while an in-process app follows a change the CLI wrote to the database."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = await check()
            if value:
                return value
            last: object = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within} s: {what or getattr(check, '__name__', check)} (last: {last!r})")
        await asyncio.sleep(interval)
