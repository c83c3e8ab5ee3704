"""The protected store API: Magento's shapes, pagination, filters, and `self` isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    return server.client(server.token("admin", "alice", ADMIN_PASSWORD))


def test_websites(admin: httpx.Client) -> None:
    r = admin.get("/rest/V1/store/websites")
    assert r.status_code == 200
    assert r.json() == [
        {"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0},
        {"id": 1, "code": "base", "name": "Main Website", "default_group_id": 1},
    ]


def test_products_paginate_with_search_criteria(admin: httpx.Client) -> None:
    everything = admin.get("/rest/V1/products").json()
    assert everything["total_count"] == 8
    assert len(everything["items"]) == 8
    assert everything["search_criteria"] == {"filter_groups": []}
    page = admin.get("/rest/V1/products", params={"searchCriteria[pageSize]": 3, "searchCriteria[currentPage]": 2})
    body = page.json()
    assert body["total_count"] == 8
    assert [p["sku"] for p in body["items"]] == [p["sku"] for p in everything["items"]][3:6]
    assert body["search_criteria"] == {"filter_groups": [], "page_size": 3, "current_page": 2}
    last = admin.get("/rest/V1/products", params={"searchCriteria[pageSize]": 3, "searchCriteria[currentPage]": 3})
    assert len(last.json()["items"]) == 2


def test_products_filter_and_sort(admin: httpx.Client) -> None:
    q = {
        "searchCriteria[filterGroups][0][filters][0][field]": "price",
        "searchCriteria[filterGroups][0][filters][0][value]": "30",
        "searchCriteria[filterGroups][0][filters][0][conditionType]": "gt",
        "searchCriteria[sortOrders][0][field]": "price",
        "searchCriteria[sortOrders][0][direction]": "DESC",
    }
    body = admin.get("/rest/V1/products", params=q).json()
    assert [p["price"] for p in body["items"]] == [92, 52, 38, 34, 32]
    q = {
        "searchCriteria[filter_groups][0][filters][0][field]": "sku",
        "searchCriteria[filter_groups][0][filters][0][value]": "24-MB%",
        "searchCriteria[filter_groups][0][filters][0][condition_type]": "like",
    }
    assert admin.get("/rest/V1/products", params=q).json()["total_count"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"searchCriteria[pageSize]": "abc"},
        {"searchCriteria[pageSize]": "0"},
        {"searchCriteria[currentPage]": "-1"},
        {"searchCriteria[filterGroups][0][filters][0][field]": "password_hash"},
        {"searchCriteria[filterGroups][0][filters][0][field]": "price",
         "searchCriteria[filterGroups][0][filters][0][value]": "cheap"},
        {"searchCriteria[filterGroups][0][filters][0][field]": "sku",
         "searchCriteria[filterGroups][0][filters][0][conditionType]": "regexp"},
    ],
)  # fmt: skip
def test_bad_search_criteria_is_400(admin: httpx.Client, params: dict[str, str]) -> None:
    r = admin.get("/rest/V1/products", params=params)
    assert r.status_code == 400
    assert "message" in r.json()


def test_product_by_sku(admin: httpx.Client) -> None:
    p = admin.get("/rest/V1/products/24-MB01").json()
    assert {k: p[k] for k in ("sku", "name", "price", "status", "type_id")} == {
        "sku": "24-MB01", "name": "Joust Duffle Bag", "price": 34, "status": 1, "type_id": "simple",
    }  # fmt: skip
    r = admin.get("/rest/V1/products/NOPE")
    assert r.status_code == 404
    assert r.json() == {"message": "The product that was requested doesn't exist. Verify the product and try again."}


def test_stock_item(admin: httpx.Client) -> None:
    s = admin.get("/rest/V1/stockItems/24-UG04").json()
    assert s["qty"] == 0 and s["is_in_stock"] is False
    assert admin.get("/rest/V1/stockItems/24-MB01").json()["qty"] == 100
    assert admin.get("/rest/V1/stockItems/NOPE").status_code == 404


def test_orders(admin: httpx.Client) -> None:
    body = admin.get("/rest/V1/orders").json()
    assert body["total_count"] == 2
    first = body["items"][0]
    assert first["customer_email"] == "roni_cost@example.com"
    assert [i["sku"] for i in first["items"]] == ["24-MB01", "24-UG06"]
    assert first["grand_total"] == 48
    assert admin.get(f"/rest/V1/orders/{first['entity_id']}").json()["increment_id"] == first["increment_id"]
    assert admin.get("/rest/V1/orders/999999").status_code == 404
    r = admin.get("/rest/V1/orders/abc")
    assert r.status_code == 400


def test_customer_by_id_for_admins(admin: httpx.Client) -> None:
    c = admin.get("/rest/V1/customers/1").json()
    assert {k: c[k] for k in ("id", "email", "firstname", "lastname")} == {
        "id": 1, "email": "roni_cost@example.com", "firstname": "Veronica", "lastname": "Costello",
    }  # fmt: skip
    r = admin.get("/rest/V1/customers/4242")
    assert r.status_code == 404
    assert r.json()["parameters"] == {"fieldName": "customerId", "fieldValue": 4242}


def test_customers_see_only_their_own_records(server: Server) -> None:
    roni = server.client(server.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD))
    john = server.client(server.token("customer", "john.smith@example.com", CUSTOMER_PASSWORD))
    assert roni.get("/rest/V1/customers/me").json()["email"] == "roni_cost@example.com"
    assert john.get("/rest/V1/customers/me").json()["email"] == "john.smith@example.com"
    roni_orders = roni.get("/rest/V1/customers/me/orders").json()
    john_orders = john.get("/rest/V1/customers/me/orders").json()
    assert {o["customer_email"] for o in roni_orders["items"]} == {"roni_cost@example.com"}
    assert {o["customer_email"] for o in john_orders["items"]} == {"john.smith@example.com"}
    assert roni_orders["total_count"] == john_orders["total_count"] == 1
    # Another customer's record by id is an admin resource, not `self`.
    assert roni.get("/rest/V1/customers/2").status_code == 403
