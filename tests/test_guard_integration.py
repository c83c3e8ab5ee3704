"""Library guards reading the auth-state feed with an integration's OAuth 1.0a credentials instead
of an admin's password: the guard signs each feed request with oauthlib; the server verifies it as
any signed call. The guarded app runs in process here (tests/test_guard.py covers the rest)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from fastapi import Depends, FastAPI

from tests.conftest import ADMIN_PASSWORD, Server
from tests.test_oauth1 import PRODUCTS, manual
from tillkey.guard import Guard, GuardError, IntegrationCredential
from tillkey.principal import Principal

ISSUER = "http://tillkey.test"


def test_guard_follows_the_feed_with_an_integration(server: Server) -> None:
    integration, tokens = manual(server, "Tillkey::auth_state")
    credential = IntegrationCredential(
        integration["consumer_key"], integration["consumer_secret"], tokens["access_token"],
        tokens["access_token_secret"],
    )  # fmt: skip
    assert integration["consumer_secret"] not in repr(credential)
    admin = {"Authorization": f"Bearer {server.token('admin', 'alice', ADMIN_PASSWORD)}"}

    async def go() -> None:
        guard = Guard(server.url, issuer=ISSUER, feed_integration=credential, poll_interval=0.2, max_staleness=10)
        app = FastAPI()
        guard.install(app, lifespan=False)

        @app.get("/catalog")
        async def catalog(who: Principal = Depends(guard.requires(PRODUCTS))) -> dict[str, int]:  # noqa: B008
            return {"admin": who.user_id}

        deadline = time.monotonic() + 5
        while True:  # the server learns of the new integration through its change feed
            try:
                await guard.start()
                break
            except GuardError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
                assert (await client.get("/catalog", headers=admin)).status_code == 200
                assert (await client.get("/catalog")).status_code == 401
            await asyncio.to_thread(server.cli, "integration", "revoke", integration["name"])
            await asyncio.sleep(1.0)
            with pytest.raises(GuardError, match=re.escape("the feed integration's credentials were refused")):
                await guard.refresh_state()
        finally:
            await guard.stop()

    asyncio.run(go())


def test_an_integration_without_the_feed_resource_is_told_so(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    credential = IntegrationCredential(
        integration["consumer_key"], integration["consumer_secret"], tokens["access_token"],
        tokens["access_token_secret"],
    )  # fmt: skip
    guard = Guard(server.url, issuer=ISSUER, feed_integration=credential)

    async def go() -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                await guard.start()
            except GuardError as exc:
                if "may not read" in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    with pytest.raises(GuardError, match=re.escape("the feed integration may not read")):
        asyncio.run(go())


def test_a_guard_needs_exactly_one_feed_credential() -> None:
    with pytest.raises(ValueError, match="one feed credential"):
        Guard("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="one feed credential"):
        Guard("http://127.0.0.1:1", feed_username="g", feed_password="p", feed_integration=IntegrationCredential(
            "k", "s", "t", "ts"))  # fmt: skip
