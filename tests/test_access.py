"""Role-based access over the resource tree: 401 means "who are you", 403 means "not allowed".
In process (tests/inprocess.py): one seeded app per backend for the tests that only read, an app
of their own for those where the CLI changes grants or accounts under a live token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tests.polling import until
from tillkey.storeapi.seed import seed

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."


@pytest.fixture(scope="module", params=inprocess.BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[inprocess.Shared]:
    tmp = tmp_path_factory.mktemp(f"access-{request.param}")
    with inprocess.database(request.param, tmp) as db, inprocess.shared(tmp, inprocess.seed_like_server, **db) as app:
        yield app


def test_no_token_is_401_with_bearer_challenge(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        r = await t.client.get("/rest/V1/products/24-MB01")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="tillkey"'
        assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Catalog::products"}}

    app.call(body)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer eyJhbGciOiJub25lIn0.eyJ1aWQiOjEsInV0eXBpZCI6MiwiaWF0IjoxLCJqdGkiOiJ4In0.",
        "Bearer " + "x" * 10000,
    ],
)
def test_unreadable_token_is_401_invalid_token(app: inprocess.Shared, authorization: str) -> None:
    async def body(t: InProcess) -> None:
        r = await t.client.get("/rest/V1/products/24-MB01", headers={"Authorization": authorization})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'

    app.call(body)


@pytest.mark.parametrize("authorization", ["Bearer  {t}", "Token {t}", "{t}", "Bearer {t} x"])
def test_header_must_be_exactly_scheme_space_token(app: inprocess.Shared, authorization: str) -> None:
    async def body(t: InProcess) -> None:
        token = await t.admin_token("alice")
        headers = {"Authorization": authorization.format(t=token)}
        assert (await t.client.get("/rest/V1/store/websites", headers=headers)).status_code == 401

    app.call(body)


def test_scheme_is_case_insensitive(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        token = await t.admin_token("alice")
        r = await t.client.get("/rest/V1/store/websites", headers={"Authorization": f"bEaReR {token}"})
        assert r.status_code == 200

    app.call(body)


def test_customer_on_admin_route_is_403_not_401(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        roni = t.bearer(await t.customer_token("roni_cost@example.com", CUSTOMER_PASSWORD))
        r = await t.client.get("/rest/V1/products", headers=roni)
        assert r.status_code == 403
        assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Catalog::products"}}
        assert (await t.client.get("/rest/V1/orders/1", headers=roni)).status_code == 403
        assert (await t.client.get("/rest/V1/customers/2", headers=roni)).status_code == 403

    app.call(body)


def test_admin_on_self_route_is_403(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        r = await t.client.get("/rest/V1/customers/me", headers=t.bearer(await t.admin_token("alice")))
        assert r.status_code == 403
        assert r.json()["parameters"] == {"resources": "self"}

    app.call(body)


def test_limited_role_reaches_only_its_subtree(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        # carol's role grants Magento_Catalog::catalog, whose subtree holds Magento_Catalog::products.
        carol = t.bearer(await t.admin_token("carol"))
        assert (await t.client.get("/rest/V1/products/24-MB01", headers=carol)).status_code == 200
        assert (await t.client.get("/rest/V1/products", headers=carol)).status_code == 200
        for path in [
            "/rest/V1/orders",
            "/rest/V1/customers/1",
            "/rest/V1/store/websites",
            "/rest/V1/stockItems/24-MB01",
        ]:
            r = await t.client.get(path, headers=carol)
            assert r.status_code == 403, path
            assert r.json()["message"] == NOT_AUTHORIZED

    app.call(body)


def test_every_route_declares_its_resources(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        spec = (await t.client.get("/openapi.json")).json()
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                assert op.get("x-tillkey-resources"), f"{method.upper()} {path} declares no resources"
        ops = spec["paths"]["/rest/V1/products/{sku}"]["get"]
        assert ops["x-tillkey-resources"] == ["Magento_Catalog::products"]
        assert spec["paths"]["/rest/V1/customers/me"]["get"]["x-tillkey-resources"] == ["self"]
        assert (await t.client.get("/docs")).status_code == 200

    app.call(body)


# --- the CLI changes what a live token may do: an app of its own ----------------------------------


@pytest.fixture
def db(scaleout_db: dict[str, Any]) -> dict[str, Any]:
    return scaleout_db  # conftest's: on PostgreSQL with Redis, as the scale-out servers ran


@asynccontextmanager
async def fresh(tmp_path: Path, db: dict[str, Any]) -> AsyncIterator[InProcess]:
    async with inprocess.running(tmp_path, **db) as t:
        yield t


def _status(t: InProcess, path: str, token: str) -> Callable[[], Awaitable[int]]:
    async def status() -> int:
        return (await t.client.get(path, headers=t.bearer(token))).status_code

    return status


async def _becomes(status: Callable[[], Awaitable[int]], code: int, within: float = 3.0) -> None:
    """The app follows what the CLI wrote to the database (its change feed): a real wait."""

    async def reached() -> bool:
        return await status() == code

    await until(reached, within=within, what=f"status {code}")


def test_grant_change_applies_to_live_tokens_without_relogin(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with fresh(tmp_path, db) as t:
            # Set up through the services, which this process applies at once; what is under test
            # is the CLI's change below reaching a live token.
            await t.create_admin("dan", role=await t.create_role([], "Stock"))
            await seed(t.tk, CUSTOMER_PASSWORD)
            stock = _status(t, "/rest/V1/stockItems/24-MB01", await t.admin_token("dan"))
            assert await stock() == 403
            # The CLI writes to the database; the running app follows through its change feed.
            cli = inprocess.cli
            await cli("role", "grant", "Stock", "--resource", "Magento_CatalogInventory::cataloginventory")
            await _becomes(stock, 200)
            await cli("role", "revoke", "Stock", "--resource", "Magento_CatalogInventory::cataloginventory")
            await _becomes(stock, 403)

    inprocess.run(body)


@pytest.mark.serial  # the one-second bound is measured: alone, not beside the parallel pass
def test_deactivated_admin_is_refused_within_a_second(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with fresh(tmp_path, db) as t:
            # Created through the service (applied here at once): a CLI-made admin is known to the
            # app's grants only after its next poll, and the CLI's deactivation is what is timed.
            await t.create_admin("eve")
            websites = _status(t, "/rest/V1/store/websites", await t.admin_token("eve"))
            assert await websites() == 200
            await inprocess.cli("admin", "deactivate", "eve")
            start = time.monotonic()
            await _becomes(websites, 401)
            assert time.monotonic() - start < 1.5
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "eve", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 401
            await inprocess.cli("admin", "activate", "eve")
            assert await t.admin_token("eve")

    inprocess.run(body)


def test_deleted_customer_token_dies(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with fresh(tmp_path, db) as t:
            await t.create_customer("f@example.com")
            me = _status(t, "/rest/V1/customers/me", await t.customer_token("f@example.com"))
            assert await me() == 200
            await inprocess.cli("customer", "delete", "f@example.com")
            await _becomes(me, 401)

    inprocess.run(body)
