"""Authlib's OAuth 2 client (nobody here wrote it) against a live Tillkey: authorization code with
PKCE (the sign-in form driven over HTTP), a call with the token, refresh, revoke; private_key_jwt
client authentication (Authlib's PrivateKeyJWT), and a pushed authorization request followed by
the authorization request by request_uri, to a token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import pytest
from authlib.common.encoding import to_unicode
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Server
from tests.oauth2_support import REDIRECT, authorize, register, start_oauth_server
from tillkey.oauth2.client_assertion import ASSERTION_TYPE

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


# --- private_key_jwt (RFC 7523) and pushed authorization requests (RFC 9126) ---------------------


def _pkjwt_client(srv: Server, tmp_path: Path, *args: str) -> tuple[dict[str, str], bytes]:
    """A client registered with private_key_jwt and its public key; answers it and the private PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "erp-1", "use": "sig"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    registered = register(
        srv,
        "--name",
        "ERP",
        "--type",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
        *args,
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return registered, pem


def test_authlib_private_key_jwt_client_credentials(srv: Server, tmp_path: Path) -> None:
    registered, pem = _pkjwt_client(
        srv, tmp_path, "--grant", "client_credentials", "--scope", "Magento_Catalog::products"
    )
    assert "client_secret" not in registered
    token_url = f"{srv.url}/oauth2/token"
    client = OAuth2Client(registered["client_id"], pem, token_endpoint_auth_method="private_key_jwt")
    client.register_client_auth_method(PrivateKeyJWT(token_url))
    token = client.fetch_token(token_url, grant_type="client_credentials")
    assert token["scope"] == "Magento_Catalog::products"
    products = client.get(f"{srv.url}/rest/V1/products", params={"searchCriteria[pageSize]": "1"})
    assert products.status_code == 200
    # Another fetch signs a fresh assertion (new jti): accepted again.
    assert client.fetch_token(token_url, grant_type="client_credentials")["access_token"] != token["access_token"]
    # A secret client's Authlib cannot pass itself off with a key it signs: the same invalid_client.
    with pytest.raises(OAuthError) as refused:
        other = OAuth2Client(registered["client_id"], "tk_cs_guess", token_endpoint_auth_method="client_secret_post")
        other.fetch_token(token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


def test_authlib_pushed_authorization_request_then_request_uri_to_a_token(srv: Server, tmp_path: Path) -> None:
    registered, pem = _pkjwt_client(
        srv,
        tmp_path,
        "--grant",
        "authorization_code",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "openid",
        "--scope",
        "Magento_Catalog::products",
        "--require-par",
    )
    cid = registered["client_id"]
    token_url = f"{srv.url}/oauth2/token"
    client = OAuth2Client(
        cid,
        pem,
        scope="openid Magento_Catalog::products",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="private_key_jwt",
    )
    client.register_client_auth_method(PrivateKeyJWT(token_url))
    verifier = generate_token(48)
    # The request Authlib would send on the front channel, pushed instead (RFC 9126 §2.1), with an
    # assertion Authlib signs for the issuer.
    url, state = client.create_authorization_url(f"{srv.url}/oauth2/authorize", code_verifier=verifier, nonce="n1")
    front = dict(parse_qsl(urlsplit(url).query))
    signed = to_unicode(private_key_jwt_sign(pem, cid, srv.url, claims={"exp": int(time.time()) + 60}))
    pushed = httpx.post(
        f"{srv.url}/oauth2/par", data={**front, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    # Sent on the front channel directly, the request is refused (this client must push).
    assert httpx.get(url).status_code == 400
    location = authorize(
        srv, f"{srv.url}/oauth2/authorize?" + urlencode({"client_id": cid, "request_uri": request_uri})
    )
    token = client.fetch_token(token_url, authorization_response=location, code_verifier=verifier, state=state)
    assert token["scope"] == "openid Magento_Catalog::products" and "id_token" in token
    assert client.get(f"{srv.url}/oauth2/userinfo").json()["sub"].startswith("admin:")
    # The request_uri was spent.
    again = httpx.get(f"{srv.url}/oauth2/authorize?" + urlencode({"client_id": cid, "request_uri": request_uri}))
    assert again.status_code == 400
