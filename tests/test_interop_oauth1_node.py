"""oauth-1.0a (npm), unchanged, as a Node integration: the activation handshake and signed
GET /rest/V1/products against Tillkey. Its packages are installed by `npm ci` from the committed
lock file into a cache folder, once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, need_node
from tests.test_oauth1 import PRODUCTS, Endpoint, activate, create

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent / "js" / "oauth1"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    need_node("the oauth-1.0a interop test")
    lock = (HERE / "package-lock.json").read_bytes()
    cache_root = Path(os.environ.get("TILLKEY_TEST_CACHE", Path.home() / ".cache" / "tillkey-tests"))
    cache = cache_root / f"js-oauth1-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (cache / "node_modules" / "oauth-1.0a").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, cache / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=cache, check=True, capture_output=True,
            timeout=300,
        )  # fmt: skip
    return cache / "node_modules"


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
        **os.environ, "NODE_PATH": str(node_modules), "TILLKEY_URL": server.url,
        "CONSUMER_KEY": posted["oauth_consumer_key"], "CONSUMER_SECRET": posted["oauth_consumer_secret"],
        "VERIFIER": posted["oauth_verifier"],
    }  # fmt: skip
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
