"""A shutdown that cancels the opaque tokens' group commit (tokens/issuer.py `OpaqueStore`) while
requests wait on it: each waiting request, in the group being written and in the next one, gets a
clean 503 instead of waiting forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import Unavailable
from tillkey.store.db import Database
from tillkey.tokens.issuer import OpaqueStore


class _StuckDatabase:
    """A database whose commit never comes back (the transaction's body never starts)."""

    batches_in_one_trip = False  # the async transaction path, whose body never starts

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.entered.set()
        await asyncio.Event().wait()
        yield None


def test_cancelling_the_group_commit_fails_every_waiting_request_cleanly() -> None:
    async def body() -> None:
        db = _StuckDatabase()
        store = OpaqueStore(cast(Database, db), MasterSecret(b"k" * 32), group_max=2)
        record = cast(Any, None)  # never written: the transaction does not start
        waiting = [asyncio.create_task(store.add(f"tok-{i}", record)) for i in range(5)]
        await db.entered.wait()  # the first group of two is being written, three wait for the next
        assert store._committer is not None
        store._committer.cancel()
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=5)
        assert all(isinstance(r, Unavailable) for r in results), results
        assert [cast(Unavailable, r).status_code for r in results] == [503] * 5

    asyncio.run(body())


@pytest.mark.parametrize("group_max", [1, 64])
def test_a_request_after_a_cancelled_commit_starts_a_new_one(group_max: int) -> None:
    async def body() -> None:
        db = _StuckDatabase()
        store = OpaqueStore(cast(Database, db), MasterSecret(b"k" * 32), group_max=group_max)
        first = asyncio.create_task(store.add("tok-a", cast(Any, None)))
        await db.entered.wait()
        assert store._committer is not None
        store._committer.cancel()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(first, timeout=5)
        db.entered.clear()
        second = asyncio.create_task(store.add("tok-b", cast(Any, None)))
        await asyncio.wait_for(db.entered.wait(), timeout=5)  # a new commit started for it
        second.cancel()
        assert store._committer is not None
        store._committer.cancel()

    asyncio.run(body())
