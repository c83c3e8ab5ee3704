"""my-magento (PyPI, TDKorn), unchanged, against Tillkey: log in, validate, read the catalog."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, Server

pytestmark = pytest.mark.interop


def _client(magento: Any, server: Server, username: str) -> Any:
    # my-magento drops the port from `domain` and downloads a user agent unless given one
    # (shared/specs/magento.md §9), so point BASE_URL at the test server before logging in.
    client = magento.Client(
        "127.0.0.1", username, ADMIN_PASSWORD, local=True, user_agent="tillkey-tests", login=False, log_level="WARNING"
    )
    client.BASE_URL = f"{server.url}/rest/V1/"
    return client


def test_my_magento_logs_in_and_reads_products(server: Server, magento: Any) -> None:
    client = _client(magento, server, "alice")
    assert client.authenticate() is True  # POST admin/token, then GET store/websites must be 200
    product = client.products.by_sku("24-MB01")
    assert product is not None
    assert product.sku == "24-MB01"
    assert product.name == "Joust Duffle Bag"
    products = client.products.get_all()
    assert sorted(p.sku for p in products) == sorted(
        ["24-MB01", "24-MB04", "24-MB03", "24-UG06", "24-UG04", "24-WG02", "MH01-XS-Black", "WS12-M-Orange"]
    )
    websites = client.get(client.url_for("store/websites")).json()
    assert [w["code"] for w in websites] == ["admin", "base"]


def test_my_magento_with_store_scope(server: Server, magento: Any) -> None:
    client = _client(magento, server, "alice")
    client.scope = "default"
    assert client.authenticate() is True
    assert client.url_for("products").endswith("/rest/default/V1/products")
    assert client.products.by_sku("24-WG02").name == "Didi Sport Watch"


def test_my_magento_limited_admin_gets_403_not_a_relogin_loop(server: Server, magento: Any) -> None:
    # carol may read products but not store/websites: Magento's 401 would make my-magento
    # re-login forever; Tillkey's 403 makes it fail once, cleanly.
    client = _client(magento, server, "carol")
    with pytest.raises(magento.exceptions.AuthenticationError):
        client.authenticate()
    assert client.ACCESS_TOKEN  # the login itself succeeded
    assert client.products.by_sku("24-MB01").sku == "24-MB01"
    orders = client.get(client.url_for("orders"))
    assert orders.status_code == 403
