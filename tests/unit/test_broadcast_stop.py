"""A stop (a CLI command's exit, a server's shutdown) never hangs on Redis: redis-py can turn the
cancellation of a command in flight into an error of its own, which the publish loop used to catch
and go round again, so `tillkey admin create` in the compose stack committed, then never exited."""

from __future__ import annotations

import asyncio
import time

from tillkey.store.broadcast import Broadcast


class _SwallowingRedis:
    """A publisher whose command in flight answers its cancellation with a ConnectionError."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def publish(self, channel: str, message: str) -> int:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None
        return 0

    async def aclose(self) -> None:
        return None


def test_stop_ends_a_publish_whose_cancellation_redis_turned_into_an_error() -> None:
    async def body() -> float:
        b = Broadcast("redis://127.0.0.1:1/0", "tk", lambda: None)
        fake = _SwallowingRedis()
        b._publisher = fake  # type: ignore[assignment]
        b._subscriber = fake  # type: ignore[assignment]
        b.start(listen=False)
        b.publish(["admins"], 1)
        await asyncio.wait_for(fake.started.wait(), 5)
        began = time.monotonic()
        await asyncio.wait_for(b.stop(), 30)  # before the fix: never returned
        return time.monotonic() - began

    took = asyncio.run(body())
    # The queued message gets its flush window (2 s), then the task stops at once.
    assert took < 5, took
