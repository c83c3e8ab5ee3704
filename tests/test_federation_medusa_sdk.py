"""@medusajs/js-sdk 2.21 (npm, tests/js/medusa) signing a customer in with an external OpenID
provider through a live Tillkey: `sdk.auth.login("customer", "corp", {})` answers the provider's
location, a browser signs in there (panva's oidc-provider, tests/js/oidc-op), and
`sdk.auth.callback(...)` → `store.customer.create` → `auth.refresh` → `store.customer.retrieve`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.conftest import Server, start_server
from tests.federation_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    STOREFRONT_CALLBACK,
    OpenIDProvider,
    openid_provider,
    sign_in_at_provider,
)
from tests.inprocess import run
from tests.js_packages import installed

JS = Path(__file__).parent / "js" / "medusa"
pytestmark = pytest.mark.interop


@pytest.fixture
def op(tmp_path: Path) -> Iterator[OpenIDProvider]:
    accounts = {"ada": {"claims": {"email": "ada@sdk.example", "email_verified": True}}}
    with openid_provider(accounts, [STOREFRONT_CALLBACK], tmp_path) as started:
        yield started


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "srv", TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS="true")
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


def _sdk(srv: Server, key: str, **env: str) -> Any:
    installed("medusa", "@medusajs/js-sdk", what="the Medusa SDK federation test")
    base = {"PATH": "/usr/bin:/bin:/usr/local/bin", "BASE": srv.url, "KEY": key}
    res = subprocess.run(
        ["node", "sdk-federated.mjs"], cwd=JS, env={**base, **env}, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr + srv.log()
    return json.loads(res.stdout)


def test_medusa_js_sdk_signs_a_customer_in_with_the_provider(srv: Server, op: OpenIDProvider) -> None:
    srv.cli(
        "idp",
        "add",
        "--name",
        "corp",
        "--issuer",
        op.issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--actor",
        "customer",
        "--redirect-uri",
        STOREFRONT_CALLBACK,
        "--provision",
        "jit",
    )
    key = srv.cli_json("api-key", "create", "--title", "storefront", "--type", "publishable")["token"]
    location = _sdk(srv, key, STEP="login")["login"]["location"]
    query = run(lambda: sign_in_at_provider(location, "ada", STOREFRONT_CALLBACK))
    out = _sdk(srv, key, STEP="callback", QUERY=json.dumps(query))
    registration = jwt.decode(out["token"], options={"verify_signature": False})
    assert registration["actor_id"] == "" and registration["idp"] == "corp" and "fed" in registration["amr"]
    assert out["created"]["email"] == "ada@sdk.example"
    refreshed = jwt.decode(out["refreshed"]["token"], options={"verify_signature": False})
    assert refreshed["actor_id"] == out["created"]["id"] == out["me"]["id"]
