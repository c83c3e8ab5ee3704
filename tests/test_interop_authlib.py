"""Authlib's OAuth 2 client (nobody here wrote it) against a live Tillkey: authorization code with
PKCE (the sign-in form driven over HTTP), a call with the token, refresh, revoke."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from tests.conftest import Server
from tests.oauth2_support import REDIRECT, authorize, register, start_oauth_server

pytestmark = pytest.mark.interop
SCOPE = "openid profile Magento_Catalog::products"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_oauth_server(tmp_path_factory.mktemp(f"authlib-{request.param}"), request.param)
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test server speaks plain HTTP on loopback; Authlib refuses that unless told.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def _client(srv: Server, public: bool) -> dict[str, str]:
    return register(
        srv,
        "--name",
        "Authlib app",
        "--type",
        "public" if public else "confidential",
        "--redirect-uri",
        REDIRECT,
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "Magento_Catalog::products",
    )


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post", "none"])
def test_authlib_code_pkce_refresh_revoke(srv: Server, auth_method: str) -> None:
    registered = _client(srv, public=auth_method == "none")
    client = OAuth2Client(
        registered["client_id"],
        registered.get("client_secret"),
        scope=SCOPE,
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(f"{srv.url}/oauth2/authorize", code_verifier=verifier, nonce="n1")
    assert "code_challenge=" in url and "code_challenge_method=S256" in url
    location = authorize(srv, url)  # sign in as alice on /console/login, then consent
    token = client.fetch_token(
        f"{srv.url}/oauth2/token", authorization_response=location, code_verifier=verifier, state=state
    )
    assert token["token_type"].lower() == "bearer" and token["scope"] == SCOPE
    assert token["refresh_token"].startswith("tk_rt_") and "id_token" in token

    products = client.get(f"{srv.url}/rest/V1/products", params={"searchCriteria[pageSize]": "1"})
    assert products.status_code == 200 and products.json()["total_count"] >= 1
    assert client.get(f"{srv.url}/oauth2/userinfo").json()["preferred_username"] == "alice"

    first_refresh = token["refresh_token"]
    renewed = client.refresh_token(f"{srv.url}/oauth2/token")
    assert renewed["refresh_token"] != first_refresh and renewed["access_token"] != token["access_token"]
    assert client.get(f"{srv.url}/oauth2/userinfo").status_code == 200

    revoked = client.revoke_token(
        f"{srv.url}/oauth2/revoke", token=renewed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{srv.url}/oauth2/token", refresh_token=renewed["refresh_token"])
    assert refused.value.error == "invalid_grant"
    # The family's access token died with it.
    assert client.get(f"{srv.url}/oauth2/userinfo").status_code == 401
