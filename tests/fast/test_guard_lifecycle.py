"""The library guard stops when its app stops, whatever its auth-state poll was awaiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.app import create_app
from tillkey.clock import Clock
from tillkey.guard import Guard, IntegrationCredential
from tillkey.runtime import Tillkey
from tillkey.settings import Settings


class AbsorbsACancellation(httpx.AsyncBaseTransport):
    """Passes requests on to the app; once armed, the next request waits, and when it is cancelled
    it answers 503 instead of letting the cancellation through (as an app served in the same
    process, or a transport, may do)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.armed = False
        self.waiting = asyncio.Event()
        self.absorbed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.armed:
            return await self.inner.handle_async_request(request)
        self.waiting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.absorbed += 1
        return httpx.Response(503, json={"message": "shutting down"})


def test_stop_returns_even_when_the_poll_absorbs_its_cancellation(tmp_path: Path) -> None:
    async def body() -> None:
        tk = Tillkey(Settings(**{**inprocess.FAST_SETTINGS, "data_dir": tmp_path}), clock=Clock())
        app = create_app(tk=tk)
        transport = AbsorbsACancellation(httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)))
        async with app.router.lifespan_context(app):
            created = await tk.services.integrations.create(OPERATOR, name="guard", resources=["Tillkey::auth_state"])
            done = await tk.services.integrations.activate(OPERATOR, "guard")
            assert done.access_token and done.access_token_secret
            credential = IntegrationCredential(
                consumer_key=created.consumer_key,
                consumer_secret=created.consumer_secret,
                access_token=done.access_token,
                access_token_secret=done.access_token_secret,
            )
            guard = Guard(
                inprocess.BASE_URL,
                feed_integration=credential,
                poll_interval=0.01,
                http_client=lambda: httpx.AsyncClient(transport=transport, timeout=30),
            )
            await guard.start()
            transport.armed = True
            await asyncio.wait_for(transport.waiting.wait(), 10)  # the poll is now inside a request
            await asyncio.wait_for(guard.stop(), 10)
            assert transport.absorbed == 1
            assert not guard.started

    inprocess.run(body)
