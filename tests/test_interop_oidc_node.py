"""openid-client and jose from the npm registry (pinned in tests/js/oidc) against a live Tillkey:
discovery, the authorization code flow with PKCE/state/nonce (the sign-in driven over HTTP
here), ID token and access token verified against the JWKS, userinfo, client credentials and
introspection."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.js_packages import installed
from tests.oauth2_support import REDIRECT, authorize, register, start_oauth_server

JS = Path(__file__).parent / "js" / "oidc"
pytestmark = pytest.mark.interop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = start_oauth_server(tmp_path / "srv", request.param)
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


def _node_modules() -> None:
    installed("oidc", "openid-client", what="the openid-client test")


def _node(env: dict[str, str]) -> Any:
    res = subprocess.run(
        ["node", "oidc-flow.mjs"],
        cwd=JS,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_openid_client_and_jose(srv: Server) -> None:
    _node_modules()
    web = register(
        srv,
        "--name",
        "Node app",
        "--type",
        "confidential",
        "--redirect-uri",
        REDIRECT,
        "--grant",
        "authorization_code",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "email",
    )
    svc = register(
        srv,
        "--name",
        "Node service",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
        # It introspects the web app's token too: only resource servers may (RFC 7662 §2.1).
        "--resource-server",
    )
    env = {
        "ISSUER": srv.url,
        "REDIRECT": REDIRECT,
        "WEB_ID": web["client_id"],
        "WEB_SECRET": web["client_secret"],
        "SVC_ID": svc["client_id"],
        "SVC_SECRET": svc["client_secret"],
    }

    started = _node({**env, "PHASE": "authorize"})
    assert started["discovered_issuer"] == srv.url
    callback = authorize(srv, started["url"])  # alice signs in and consents
    out = _node(
        {
            **env,
            "PHASE": "callback",
            "CALLBACK": callback,
            "VERIFIER": started["verifier"],
            "STATE": started["state"],
            "NONCE": started["nonce"],
        }
    )

    claims = out["id_token_claims"]
    assert claims["nonce"] == started["nonce"] and claims["sub"] == "admin:1" and claims["amr"] == ["pwd"]
    assert claims["aud"] == web["client_id"] and "at_hash" in claims and "auth_time" in claims
    assert out["id_token_verified"] == {"alg": "ES256", "nonce": started["nonce"], "sub": "admin:1"}
    assert out["access_token_verified"] == {
        "typ": "at+jwt",
        "client_id": web["client_id"],
        "scope": "openid profile email",
    }
    assert out["id_token_as_access_token"]["ok"] is False  # jose refuses the wrong typ too
    assert out["userinfo"] == {
        "sub": "admin:1",
        "preferred_username": "alice",
        "name": "alice",
        "email": "alice@example.com",
    }

    assert out["client_credentials"] == {
        "token_type": "bearer",
        "scope": "Magento_Catalog::products",
        "expires_in": 900,
        "refresh": False,
    }
    assert out["client_credentials_claims"]["client_id"] == svc["client_id"]
    assert out["client_credentials_claims"]["sub"].startswith("client:")
    assert out["introspect_cc"]["active"] is True and out["introspect_cc"]["client_id"] == svc["client_id"]
    assert out["introspect_user_token"]["active"] is True and out["introspect_user_token"]["sub"] == "admin:1"
    assert out["introspect_garbage"] == {"active": False}
    assert out["wrong_secret"]["ok"] is False and out["wrong_secret"]["error"] == "invalid_client"


def _dpop_node(env: dict[str, str]) -> Any:
    res = subprocess.run(
        ["node", "dpop-flow.mjs"],
        cwd=JS,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_openid_client_with_dpop(srv: Server) -> None:
    """openid-client 6's own DPoP support (RFC 9449): code + PKCE + DPoP, userinfo and a protected
    Tillkey API with proofs, refresh with the same key; another key and a bearer presentation refused."""
    _node_modules()
    spa = register(
        srv,
        "--name",
        "Node SPA",
        "--type",
        "public",
        "--redirect-uri",
        REDIRECT,
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "Magento_Catalog::products",
        "--dpop-bound",
    )
    env = {"ISSUER": srv.url, "REDIRECT": REDIRECT, "SPA_ID": spa["client_id"]}
    started = _dpop_node({**env, "PHASE": "authorize"})
    assert "ES256" in started["algs"]
    callback = authorize(srv, started["url"])
    out = _dpop_node(
        {**env, "PHASE": "callback", "CALLBACK": callback, "VERIFIER": started["verifier"], "STATE": started["state"]}
    )
    assert out["token_type"] == "dpop"
    assert out["userinfo"]["sub"] == "admin:1"
    assert out["api_status"] == 200
    assert out["bearer_status"] == 401 and out["bearer_challenge"].startswith("DPoP ")
    assert out["refresh_other_key"]["ok"] is False and out["refresh_other_key"]["error"] == "invalid_dpop_proof"
    assert out["refreshed_token_type"] == "dpop"
    assert out["api_status_after_refresh"] == 200
    # openid-client turns the 401's DPoP challenge into its WWW-Authenticate error.
    assert out["api_other_key"] == {"ok": False, "error": "OAUTH_WWW_AUTHENTICATE_CHALLENGE", "status": 401}
