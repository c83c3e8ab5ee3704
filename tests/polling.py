"""`eventually`: the one way a test waits for something another process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call `check` until it returns a truthy value (returned) or `timeout` wall-clock seconds pass;
    then fail naming `what` and the last value or assertion. For work that really happens elsewhere
    (another server picking up a change, a background writer); never for an expiry or a lockout,
    which in-process tests reach by moving the clock (tests/inprocess.py)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
            last: object = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not within {timeout} s: {what or getattr(check, '__name__', check)} (last: {last!r})"
            )
        time.sleep(interval)
