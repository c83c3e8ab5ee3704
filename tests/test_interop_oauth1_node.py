"""oauth-1.0a (npm), unchanged, as a Node integration: the activation handshake and signed
GET /rest/V1/products against Tillkey. Its packages are installed by `npm ci` from the committed
lock file, once (tests/js_packages.py)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.js_packages import installed
from tests.oauth1_support import Endpoint
from tests.test_oauth1 import PRODUCTS

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent / "js" / "oauth1"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return installed("oauth1", "oauth-1.0a", what="the oauth-1.0a interop test") / "node_modules"


def create(srv: Server, *resources: str, endpoint: str) -> dict[str, Any]:
    args = ["integration", "create", "--name", f"erp-{secrets.token_hex(4)}", "--endpoint-url", endpoint]
    created: dict[str, Any] = srv.cli_json(*args, *[a for r in resources for a in ("--resource", r)])
    return created


def activate(srv: Server, integration: dict[str, Any]) -> None:
    srv.cli_json("integration", "activate", integration["name"])


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


def test_oauth_1_0a_node_client_handshake_and_signed_products(
    server: Server, endpoint: Endpoint, node_modules: Path
) -> None:
    integration = create(server, PRODUCTS, endpoint=endpoint.url)
    activate(server, integration)
    [posted] = endpoint.posts
    env = {
        **os.environ,
        "NODE_PATH": str(node_modules),
        "TILLKEY_URL": server.url,
        "CONSUMER_KEY": posted["oauth_consumer_key"],
        "CONSUMER_SECRET": posted["oauth_consumer_secret"],
        "VERIFIER": posted["oauth_verifier"],
    }
    res = subprocess.run(
        ["node", str(HERE / "handshake.js")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["request_status"] == 200 and out["request_token_length"] == 32
    assert out["access_status"] == 200, out
    assert out["access_token_length"] == 32
    assert out["products_status"] == 200, out
    assert len(out["skus"]) == 3 and out["total_count"] >= 8
    assert out["replay_status"] == 401
    assert out["replay_body"]["message"] == "The nonce is already being used by the consumer with ID %1"
    assert out["forged_status"] == 401
    assert out["forged_body"] == {"message": "The signature is invalid. Verify and try again."}
