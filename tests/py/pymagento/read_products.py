"""Run by tests/test_interop_pymagento.py with pymagento first on the path: reads the catalog
with an integration access token as Bearer (PYMAGENTO_TOKEN, PYMAGENTO_BASE_URL) and prints JSON."""

from __future__ import annotations

import json

import magento
from magento.exceptions import MagentoException

client = magento.Magento(user_agent=None)  # token and base URL from PYMAGENTO_* variables
out: dict[str, object] = {"module": magento.__file__, "user_agent": client.headers["User-Agent"]}
product = client.get_product("24-MB01")
out["product"] = None if product is None else {"sku": product["sku"], "name": product["name"]}
out["skus"] = sorted(p["sku"] for p in client.get_products())
try:
    list(client.get_orders(limit=1))
    out["orders"] = "allowed"
except MagentoException as exc:
    out["orders"] = {"message": str(exc), "status": exc.response.status_code if exc.response is not None else None}
print(json.dumps(out))
