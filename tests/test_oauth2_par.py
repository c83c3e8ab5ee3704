"""Pushed authorization requests (RFC 9126) in process: a client pushes its request (authenticated
as at the token endpoint, checked as the authorization endpoint checks it), then the browser goes
to /oauth2/authorize with client_id and request_uri alone, through sign-in and consent to a
code and a token. The request_uri is single use, expires, belongs to its client, and parameters
sent beside it are ignored; a client registered with --require-par cannot skip the push."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.oauth2_support import (
    REDIRECT,
    async_authorize,
    async_web_client,
    basic,
    pkce_pair,
    query,
    register_async,
    seed_oauth_app,
)
from tests.test_oauth2_private_key_jwt import assertion, public_jwk, rsa_key
from tillkey.oauth2.client_assertion import ASSERTION_TYPE

SCOPE = "openid Magento_Catalog::products"


async def web_app(t: InProcess, *extra: str) -> dict[str, Any]:
    args = ["--name", "Reports", "--type", "confidential", "--redirect-uri", REDIRECT, "--scope", "openid"]
    args += ["--scope", "Magento_Catalog::products", "--grant", "authorization_code", *extra]
    return await register_async(t, *args)


def authorize_url(client_id: str, request_uri: str, **extra: str) -> str:
    return "/oauth2/authorize?" + str(httpx.QueryParams({"client_id": client_id, "request_uri": request_uri, **extra}))


def test_par_then_authorize_with_request_uri_to_a_token(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await seed_oauth_app(t)
            t.freeze()
            client = await web_app(t, "--require-par")
            other = await web_app(t)
            cid, auth = client["client_id"], basic(client["client_id"], client["client_secret"])
            assert client["require_pushed_authorization_requests"] is True
            verifier, challenge = pkce_pair()
            request = {
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "scope": SCOPE,
                "state": "st-par",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }

            # A client that must push cannot send its request on the front channel.
            direct = await t.client.get("/oauth2/authorize?" + str(httpx.QueryParams({"client_id": cid, **request})))
            assert direct.status_code == 400 and "push" in direct.text

            pushed = await t.client.post("/oauth2/par", data=request, headers=auth)
            assert pushed.status_code == 201, pushed.text
            assert pushed.headers["cache-control"] == "no-store"
            request_uri = pushed.json()["request_uri"]
            assert request_uri.startswith("urn:ietf:params:oauth:request_uri:") and pushed.json()["expires_in"] == 60

            # Another client cannot use it (and doing so does not spend it).
            stolen = await t.client.get(authorize_url(other["client_id"], request_uri))
            assert stolen.status_code == 400

            # Parameters beside request_uri are ignored: the code goes to the pushed redirect URI
            # with the pushed state and scope.
            tampered = authorize_url(
                cid, request_uri, redirect_uri="https://evil.example/cb", state="evil", scope="openid"
            )
            location = await async_authorize(t, tampered)
            assert location.startswith(REDIRECT + "?"), location
            q = query(location)
            assert q["state"] == "st-par" and q["iss"] == BASE_URL
            data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT}
            token = await t.client.post("/oauth2/token", data={**data, "code_verifier": verifier}, headers=auth)
            assert token.status_code == 200, token.text
            assert token.json()["scope"] == SCOPE

            # Single use.
            again = await t.client.get(authorize_url(cid, request_uri))
            assert again.status_code == 400 and "already used" in again.text

            # Expired: 60 s on the server's clock.
            late = (await t.client.post("/oauth2/par", data=request, headers=auth)).json()["request_uri"]
            t.advance(61)
            expired = await t.client.get(authorize_url(cid, late))
            assert expired.status_code == 400

            # The push is checked as the authorization endpoint checks: a bad redirect URI, a
            # missing PKCE challenge, a request_uri inside, no client authentication.
            bad = await t.client.post(
                "/oauth2/par", data={**request, "redirect_uri": "https://evil.example/cb"}, headers=auth
            )
            assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
            no_pkce = {k: v for k, v in request.items() if not k.startswith("code_challenge")}
            assert (await t.client.post("/oauth2/par", data=no_pkce, headers=auth)).status_code == 400
            nested = await t.client.post("/oauth2/par", data={**request, "request_uri": request_uri}, headers=auth)
            assert nested.status_code == 400
            anonymous = await t.client.post("/oauth2/par", data={**request, "client_id": cid})
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"

            # prompt=login inside a pushed request: a fresh sign-in, then on (no loop), signed in
            # already or not.
            browser = async_web_client(t)
            for _ in range(2):
                fresh = await t.client.post("/oauth2/par", data={**request, "prompt": "login"}, headers=auth)
                url = authorize_url(cid, fresh.json()["request_uri"])
                first = await browser.get(url)
                assert first.status_code == 303 and first.headers["location"].startswith("/console/login")
                location = await async_authorize(t, url, browser=browser)
                assert "code" in query(location), location

            metadata = (await t.client.get("/.well-known/oauth-authorization-server")).json()
            assert metadata["pushed_authorization_request_endpoint"] == f"{BASE_URL}/oauth2/par"
            assert metadata["require_pushed_authorization_requests"] is False

    inprocess.run(body)


def test_private_key_jwt_client_pushes_its_request(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await seed_oauth_app(t)
            key = rsa_key()
            path = tmp_path / "jwks.json"
            path.write_text(json.dumps({"keys": [public_jwk(key, "k1")]}))
            client = await web_app(t, "--auth-method", "private_key_jwt", "--jwks-file", str(path))
            cid = client["client_id"]
            verifier, challenge = pkce_pair()
            request = {
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "scope": SCOPE,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "client_assertion_type": ASSERTION_TYPE,
            }
            # RFC 9126 §2: the issuer is a fine audience for the assertion.
            signed = assertion(key, cid, t.clock.now(), aud=BASE_URL)
            pushed = await t.client.post("/oauth2/par", data={**request, "client_assertion": signed})
            assert pushed.status_code == 201, pushed.text
            location = await async_authorize(t, authorize_url(cid, pushed.json()["request_uri"]))
            code = query(location)["code"]
            exchange = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(key, cid, t.clock.now()),
            }
            token = await t.client.post("/oauth2/token", data=exchange)
            assert token.status_code == 200, token.text
            assert "id_token" in token.json()

    inprocess.run(body)
