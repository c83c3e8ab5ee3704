"""The protected store API: Magento's shapes, pagination, filters, and `self` isolation. One
seeded app per backend in this process (tests/inprocess.py), shared: these tests only read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.inprocess import CUSTOMER_PASSWORD, InProcess


@pytest.fixture(scope="module", params=inprocess.BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[inprocess.Shared]:
    tmp = tmp_path_factory.mktemp(f"store-api-{request.param}")
    with inprocess.database(request.param, tmp) as db, inprocess.shared(tmp, inprocess.seed_like_server, **db) as app:
        yield app


@dataclass
class Caller:
    """A client with one token, as the server tests' `server.client(token)`."""

    t: InProcess
    token: str

    async def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return await self.t.client.get(path, params=params, headers=self.t.bearer(self.token))


def as_alice(app: inprocess.Shared, body: Callable[[Caller], Awaitable[None]]) -> None:
    """Run `body` with alice (Administrators) signed in."""

    async def run(t: InProcess) -> None:
        await body(Caller(t, await t.admin_token("alice")))

    app.call(run)


def test_websites(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        r = await admin.get("/rest/V1/store/websites")
        assert r.status_code == 200
        assert r.json() == [
            {"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0},
            {"id": 1, "code": "base", "name": "Main Website", "default_group_id": 1},
        ]

    as_alice(app, body)


def test_products_paginate_with_search_criteria(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        everything = (await admin.get("/rest/V1/products")).json()
        assert everything["total_count"] == 8
        assert len(everything["items"]) == 8
        assert everything["search_criteria"] == {"filter_groups": []}
        page = await admin.get(
            "/rest/V1/products", params={"searchCriteria[pageSize]": 3, "searchCriteria[currentPage]": 2}
        )
        got = page.json()
        assert got["total_count"] == 8
        assert [p["sku"] for p in got["items"]] == [p["sku"] for p in everything["items"]][3:6]
        assert got["search_criteria"] == {"filter_groups": [], "page_size": 3, "current_page": 2}
        last = await admin.get(
            "/rest/V1/products", params={"searchCriteria[pageSize]": 3, "searchCriteria[currentPage]": 3}
        )
        assert len(last.json()["items"]) == 2

    as_alice(app, body)


def test_products_filter_and_sort(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        q = {
            "searchCriteria[filterGroups][0][filters][0][field]": "price",
            "searchCriteria[filterGroups][0][filters][0][value]": "30",
            "searchCriteria[filterGroups][0][filters][0][conditionType]": "gt",
            "searchCriteria[sortOrders][0][field]": "price",
            "searchCriteria[sortOrders][0][direction]": "DESC",
        }
        got = (await admin.get("/rest/V1/products", params=q)).json()
        assert [p["price"] for p in got["items"]] == [92, 52, 38, 34, 32]
        q = {
            "searchCriteria[filter_groups][0][filters][0][field]": "sku",
            "searchCriteria[filter_groups][0][filters][0][value]": "24-MB%",
            "searchCriteria[filter_groups][0][filters][0][condition_type]": "like",
        }
        assert (await admin.get("/rest/V1/products", params=q)).json()["total_count"] == 3

    as_alice(app, body)


@pytest.mark.parametrize(
    "params",
    [
        {"searchCriteria[pageSize]": "abc"},
        {"searchCriteria[pageSize]": "0"},
        {"searchCriteria[currentPage]": "-1"},
        {"searchCriteria[filterGroups][0][filters][0][field]": "password_hash"},
        {
            "searchCriteria[filterGroups][0][filters][0][field]": "price",
            "searchCriteria[filterGroups][0][filters][0][value]": "cheap",
        },
        {
            "searchCriteria[filterGroups][0][filters][0][field]": "sku",
            "searchCriteria[filterGroups][0][filters][0][conditionType]": "regexp",
        },
    ],
)
def test_bad_search_criteria_is_400(app: inprocess.Shared, params: dict[str, str]) -> None:
    async def body(admin: Caller) -> None:
        r = await admin.get("/rest/V1/products", params=params)
        assert r.status_code == 400
        assert "message" in r.json()

    as_alice(app, body)


def test_product_by_sku(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        p = (await admin.get("/rest/V1/products/24-MB01")).json()
        assert {k: p[k] for k in ("sku", "name", "price", "status", "type_id")} == {
            "sku": "24-MB01",
            "name": "Joust Duffle Bag",
            "price": 34,
            "status": 1,
            "type_id": "simple",
        }
        r = await admin.get("/rest/V1/products/NOPE")
        assert r.status_code == 404
        assert r.json() == {
            "message": "The product that was requested doesn't exist. Verify the product and try again."
        }

    as_alice(app, body)


def test_stock_item(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        s = (await admin.get("/rest/V1/stockItems/24-UG04")).json()
        assert s["qty"] == 0 and s["is_in_stock"] is False
        assert (await admin.get("/rest/V1/stockItems/24-MB01")).json()["qty"] == 100
        assert (await admin.get("/rest/V1/stockItems/NOPE")).status_code == 404

    as_alice(app, body)


def test_orders(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        got = (await admin.get("/rest/V1/orders")).json()
        assert got["total_count"] == 2
        first = got["items"][0]
        assert first["customer_email"] == "roni_cost@example.com"
        assert [i["sku"] for i in first["items"]] == ["24-MB01", "24-UG06"]
        assert first["grand_total"] == 48
        one = (await admin.get(f"/rest/V1/orders/{first['entity_id']}")).json()
        assert one["increment_id"] == first["increment_id"]
        assert (await admin.get("/rest/V1/orders/999999")).status_code == 404
        r = await admin.get("/rest/V1/orders/abc")
        assert r.status_code == 400

    as_alice(app, body)


def test_customer_by_id_for_admins(app: inprocess.Shared) -> None:
    async def body(admin: Caller) -> None:
        c = (await admin.get("/rest/V1/customers/1")).json()
        assert {k: c[k] for k in ("id", "email", "firstname", "lastname")} == {
            "id": 1,
            "email": "roni_cost@example.com",
            "firstname": "Veronica",
            "lastname": "Costello",
        }
        r = await admin.get("/rest/V1/customers/4242")
        assert r.status_code == 404
        assert r.json()["parameters"] == {"fieldName": "customerId", "fieldValue": 4242}

    as_alice(app, body)


def test_customers_see_only_their_own_records(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        roni = Caller(t, await t.customer_token("roni_cost@example.com", CUSTOMER_PASSWORD))
        john = Caller(t, await t.customer_token("john.smith@example.com", CUSTOMER_PASSWORD))
        assert (await roni.get("/rest/V1/customers/me")).json()["email"] == "roni_cost@example.com"
        assert (await john.get("/rest/V1/customers/me")).json()["email"] == "john.smith@example.com"
        roni_orders = (await roni.get("/rest/V1/customers/me/orders")).json()
        john_orders = (await john.get("/rest/V1/customers/me/orders")).json()
        assert {o["customer_email"] for o in roni_orders["items"]} == {"roni_cost@example.com"}
        assert {o["customer_email"] for o in john_orders["items"]} == {"john.smith@example.com"}
        assert roni_orders["total_count"] == john_orders["total_count"] == 1
        # Another customer's record by id is an admin resource, not `self`.
        assert (await roni.get("/rest/V1/customers/2")).status_code == 403

    app.call(body)
