"""Role-based access over the resource tree: 401 means "who are you", 403 means "not allowed"."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."


def test_no_token_is_401_with_bearer_challenge(server: Server) -> None:
    r = httpx.get(f"{server.url}/rest/V1/products/24-MB01")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tillkey"'
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Catalog::products"}}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer eyJhbGciOiJub25lIn0.eyJ1aWQiOjEsInV0eXBpZCI6MiwiaWF0IjoxLCJqdGkiOiJ4In0.",
        "Bearer " + "x" * 10000,
    ],
)
def test_unreadable_token_is_401_invalid_token(server: Server, authorization: str) -> None:
    r = httpx.get(f"{server.url}/rest/V1/products/24-MB01", headers={"Authorization": authorization})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'


@pytest.mark.parametrize("authorization", ["Bearer  {t}", "Token {t}", "{t}", "Bearer {t} x"])
def test_header_must_be_exactly_scheme_space_token(server: Server, authorization: str) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    r = httpx.get(f"{server.url}/rest/V1/store/websites", headers={"Authorization": authorization.format(t=token)})
    assert r.status_code == 401


def test_scheme_is_case_insensitive(server: Server) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    r = httpx.get(f"{server.url}/rest/V1/store/websites", headers={"Authorization": f"bEaReR {token}"})
    assert r.status_code == 200


def test_customer_on_admin_route_is_403_not_401(server: Server) -> None:
    token = server.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    r = server.client(token).get("/rest/V1/products")
    assert r.status_code == 403
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Catalog::products"}}
    assert server.client(token).get("/rest/V1/orders/1").status_code == 403
    assert server.client(token).get("/rest/V1/customers/2").status_code == 403


def test_admin_on_self_route_is_403(server: Server) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    r = server.client(token).get("/rest/V1/customers/me")
    assert r.status_code == 403
    assert r.json()["parameters"] == {"resources": "self"}


def test_limited_role_reaches_only_its_subtree(server: Server) -> None:
    # carol's role grants Magento_Catalog::catalog, whose subtree holds Magento_Catalog::products.
    c = server.client(server.token("admin", "carol", ADMIN_PASSWORD))
    assert c.get("/rest/V1/products/24-MB01").status_code == 200
    assert c.get("/rest/V1/products").status_code == 200
    for path in ["/rest/V1/orders", "/rest/V1/customers/1", "/rest/V1/store/websites", "/rest/V1/stockItems/24-MB01"]:
        r = c.get(path)
        assert r.status_code == 403, path
        assert r.json()["message"] == NOT_AUTHORIZED


def test_grant_change_applies_to_live_tokens_without_relogin(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("role", "create", "Stock")
    srv.cli("admin", "create", "--username", "dan", "--email", "dan@example.com",
            "--password", ADMIN_PASSWORD, "--role", "Stock")  # fmt: skip
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    c = srv.client(srv.token("admin", "dan", ADMIN_PASSWORD))
    assert c.get("/rest/V1/stockItems/24-MB01").status_code == 403
    # The CLI writes to the database; the running server follows through its change feed.
    srv.cli("role", "grant", "Stock", "--resource", "Magento_CatalogInventory::cataloginventory")
    assert _eventually(lambda: c.get("/rest/V1/stockItems/24-MB01").status_code == 200)
    srv.cli("role", "revoke", "Stock", "--resource", "Magento_CatalogInventory::cataloginventory")
    assert _eventually(lambda: c.get("/rest/V1/stockItems/24-MB01").status_code == 403)


def test_deactivated_admin_is_refused_within_a_second(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "eve", "--email", "eve@example.com", "--password", ADMIN_PASSWORD)
    c = srv.client(srv.token("admin", "eve", ADMIN_PASSWORD))
    assert c.get("/rest/V1/store/websites").status_code == 200
    srv.cli("admin", "deactivate", "eve")
    start = time.monotonic()
    assert _eventually(lambda: c.get("/rest/V1/store/websites").status_code == 401)
    assert time.monotonic() - start < 1.5
    r = httpx.post(f"{srv.url}/rest/V1/integration/admin/token", json={"username": "eve", "password": ADMIN_PASSWORD})
    assert r.status_code == 401
    srv.cli("admin", "activate", "eve")
    assert srv.token("admin", "eve", ADMIN_PASSWORD)


def test_deleted_customer_token_dies(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("customer", "create", "--email", "f@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "F", "--last-name", "G")  # fmt: skip
    c = srv.client(srv.token("customer", "f@example.com", CUSTOMER_PASSWORD))
    assert c.get("/rest/V1/customers/me").status_code == 200
    srv.cli("customer", "delete", "f@example.com")
    assert _eventually(lambda: c.get("/rest/V1/customers/me").status_code == 401)


def test_every_route_declares_its_resources(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("x-tillkey-resources"), f"{method.upper()} {path} declares no resources"
    ops = spec["paths"]["/rest/V1/products/{sku}"]["get"]
    assert ops["x-tillkey-resources"] == ["Magento_Catalog::products"]
    assert spec["paths"]["/rest/V1/customers/me"]["get"]["x-tillkey-resources"] == ["self"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def _eventually(cond: object, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
