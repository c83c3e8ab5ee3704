"""Library guards reading the auth-state feed with an integration's OAuth 1.0a credentials instead
of an admin's password: the guard signs each feed request with oauthlib; the server verifies it as
any signed call. Both the Tillkey app and the guarded app run in process here: the guard reaches
Tillkey through its `http_client` hook over httpx.ASGITransport (tests/test_guard.py covers the
rest, with the example app as a process)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.polling import until
from tillkey.guard import Guard, GuardError, IntegrationCredential
from tillkey.principal import Principal

PRODUCTS = "Magento_Catalog::products"
# The CLI writes to the database; the app polls the change feed this often (the servers' setting).
FEED = {"sync_interval": 0.2}


@pytest.fixture
def db(scaleout_db: dict[str, Any]) -> dict[str, Any]:
    return scaleout_db  # conftest's: on PostgreSQL with Redis, as the scale-out servers ran


async def manual(*resources: str) -> tuple[dict[str, Any], IntegrationCredential]:
    """An integration made and activated by the operator's CLI (manual activation, magento.md §7)."""
    name = f"erp-{secrets.token_hex(4)}"
    integration = await inprocess.cli_json(
        "integration", "create", "--name", name, *[a for r in resources for a in ("--resource", r)]
    )
    tokens = await inprocess.cli_json("integration", "activate", integration["name"])
    credential = IntegrationCredential(
        integration["consumer_key"],
        integration["consumer_secret"],
        tokens["access_token"],
        tokens["access_token_secret"],
    )
    return integration, credential


def guard_of(t: InProcess, credential: IntegrationCredential, **options: Any) -> Guard:
    """A guard of the in-process Tillkey app: its requests go through the app's ASGI transport."""
    return Guard(
        BASE_URL,
        issuer=BASE_URL,
        feed_integration=credential,
        http_client=lambda: httpx.AsyncClient(transport=t.transport, timeout=10),
        **options,
    )


async def start_once_known(guard: Guard, *, unless: str = "") -> None:
    """Start the guard; until the app has read the new integration from its change feed, the feed
    refuses it, so retry. A refusal naming `unless` is final."""

    async def started() -> bool:
        try:
            await guard.start()
        except GuardError as exc:
            if unless and unless in str(exc):
                raise
            return False
        return True

    await until(started, within=5, what="the guard started")


def test_guard_follows_the_feed_with_an_integration(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db, **FEED) as t:
            await t.create_admin("alice")
            integration, credential = await manual("Tillkey::auth_state")
            assert integration["consumer_secret"] not in repr(credential)
            admin = t.bearer(await t.admin_token("alice"))
            guard = guard_of(t, credential, poll_interval=0.2, max_staleness=10)
            app = FastAPI()
            guard.install(app, lifespan=False)

            @app.get("/catalog")
            async def catalog(who: Principal = Depends(guard.requires(PRODUCTS))) -> dict[str, int]:  # noqa: B008
                return {"admin": who.user_id}

            await start_once_known(guard)
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
                    assert (await client.get("/catalog", headers=admin)).status_code == 200
                    assert (await client.get("/catalog")).status_code == 401
                await inprocess.cli("integration", "revoke", integration["name"])

                async def refused() -> bool:
                    try:
                        await guard.refresh_state()
                    except GuardError as exc:
                        return "the feed integration's credentials were refused" in str(exc)
                    return False

                # The app learns of the revocation through its change feed.
                await until(refused, what="the feed credentials refused")
                with pytest.raises(GuardError, match=re.escape("the feed integration's credentials were refused")):
                    await guard.refresh_state()
            finally:
                await guard.stop()

    inprocess.run(body)


def test_an_integration_without_the_feed_resource_is_told_so(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db, **FEED) as t:
            _, credential = await manual(PRODUCTS)
            guard = guard_of(t, credential)
            try:
                with pytest.raises(GuardError, match=re.escape("the feed integration may not read")):
                    await start_once_known(guard, unless="may not read")
            finally:
                await guard.stop()

    inprocess.run(body)


def test_a_guard_needs_exactly_one_feed_credential() -> None:
    with pytest.raises(ValueError, match="one feed credential"):
        Guard("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="one feed credential"):
        Guard(
            "http://127.0.0.1:1",
            feed_username="g",
            feed_password="p",
            feed_integration=IntegrationCredential("k", "s", "t", "ts"),
        )
