"""The general per-client rate limit counted in process (security/ratelimit.LocalBudget): the same
sliding-window arithmetic as the `limits` strategy it replaces on the hot path, on an injected clock."""

from __future__ import annotations

import pytest

from tillkey.errors import RateLimited
from tillkey.security.ratelimit import LocalBudget, RateLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _budget(spec: str, clock: Clock) -> LocalBudget:
    item = RateLimiter.item(spec)
    assert item is not None
    return LocalBudget(item, clock)


def test_the_budget_refuses_past_the_limit_per_client_with_retry_after() -> None:
    clock = Clock(60_000.0)  # the start of a minute window
    budget = _budget("5/minute", clock)
    for _ in range(5):
        budget.hit("10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        budget.hit("10.0.0.1")
    assert refused.value.status_code == 429
    assert refused.value.headers["Retry-After"] == "60"  # the current window alone is full
    budget.hit("10.0.0.2")  # another client has its own budget


def test_the_previous_window_counts_by_its_overlap() -> None:
    clock = Clock(60_000.0)
    budget = _budget("10/minute", clock)
    for _ in range(10):
        budget.hit("c")
    clock.now += 60 + 15  # a quarter into the next window: 7.5 of the previous 10 still count
    for _ in range(2):
        budget.hit("c")
    with pytest.raises(RateLimited) as refused:
        budget.hit("c")  # 7.5 + 2 + 1 > 10
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 45
    clock.now += 30  # three quarters in: 2.5 of the previous count
    for _ in range(5):
        budget.hit("c")
    clock.now += 120  # two windows later: a fresh budget
    for _ in range(10):
        budget.hit("c")


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalBudget, "MAX_KEYS", 100)
    clock = Clock(60_000.0)
    budget = _budget("5/minute", clock)
    for i in range(1000):
        budget.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(budget._counts) <= 100
