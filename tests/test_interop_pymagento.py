"""pymagento (PyPI `pymagento`, Bixoto), unchanged: it only ever sends an integration access token
as `Bearer` to /rest/all/V1/..., which Tillkey accepts when TILLKEY_INTEGRATION_AS_BEARER=true.

pymagento and my-magento are both the package `magento`, so pymagento lives in a folder of its own
(installed once by pip from tests/py/pymagento/requirements.txt) and runs in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, start_server
from tests.polling import eventually

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent / "py" / "pymagento"
PRODUCTS = "Magento_Catalog::products"
SKUS = sorted(["24-MB01", "24-MB04", "24-MB03", "24-UG06", "24-UG04", "24-WG02", "MH01-XS-Black", "WS12-M-Orange"])


@pytest.fixture(scope="session")
def pymagento_path() -> Path:
    requirements = (HERE / "requirements.txt").read_bytes()
    cache_root = Path(os.environ.get("TILLKEY_TEST_CACHE", Path.home() / ".cache" / "tillkey-tests"))
    target = cache_root / f"pymagento-{hashlib.sha256(requirements).hexdigest()[:12]}"
    if not (target / "magento" / "client.py").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                "-r",
                str(HERE / "requirements.txt"),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return target


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bearer_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "srv", request.param, TILLKEY_INTEGRATION_AS_BEARER="true")
    try:
        srv.cli("demo", "seed", "--customer-password", "Customer-pass-4-tests")
        yield srv
    finally:
        srv.stop()
        srv.database.drop()


def manual(srv: Server, *resources: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An integration made and activated by the operator's CLI: its credentials and access token."""
    name = f"erp-{secrets.token_hex(4)}"
    integration = srv.cli_json(
        "integration", "create", "--name", name, *[a for r in resources for a in ("--resource", r)]
    )
    return integration, srv.cli_json("integration", "activate", name)


def run_pymagento(srv: Server, path: Path, token: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": str(path),
        "PYMAGENTO_TOKEN": token,
        "PYMAGENTO_BASE_URL": srv.url,
    }
    res = subprocess.run(
        [sys.executable, str(HERE / "read_products.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_pymagento_reads_products_with_an_integration_token_as_bearer(
    bearer_server: Server, pymagento_path: Path
) -> None:
    _integration, tokens = manual(bearer_server, PRODUCTS)

    def reads() -> dict[str, object]:
        out = run_pymagento(bearer_server, pymagento_path, tokens["access_token"])
        assert out["product"] is not None, out
        return out

    out = eventually(reads, within=15, what="pymagento reading products")
    assert str(out["module"]).startswith(str(pymagento_path))  # pymagento, not my-magento
    assert str(out["user_agent"]).startswith("Bixoto/PyMagento")
    assert out["product"] == {"sku": "24-MB01", "name": "Joust Duffle Bag"}
    assert out["skus"] == SKUS
    # Its grant is the integration's: no orders.
    assert out["orders"] == {
        "message": "The consumer isn't authorized to access Magento_Sales::actions_view.",
        "status": 403,
    }
