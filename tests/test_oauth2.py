"""OAuth 2 / OpenID Connect provider over HTTP, on SQLite and PostgreSQL: metadata, client
credentials, the authorization code flow with PKCE through the console sign-in, refresh-token
rotation and reuse detection, revocation, introspection, userinfo, client deletion.

The app runs in this process (tests/inprocess.py), its issuer its own base URL; clients are
registered with the operator's CLI (CliRunner) on the same database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, BASE_URL, CUSTOMER_PASSWORD, InProcess
from tests.oauth2_support import (
    REDIRECT,
    async_authorize,
    async_web_client,
    basic,
    hidden_fields,
    pkce_pair,
    query,
    register_async,
    seed_oauth_app,
)
from tests.polling import until

PRODUCTS_PAGE = {"searchCriteria[pageSize]": "1"}


@asynccontextmanager
async def seeded(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[InProcess]:
    """alice (admin:1), carol (Catalog only) and the demo data. The app follows the CLI's changes
    (a deleted client) through the change feed, polled every 0.2 s as by conftest's servers."""
    async with inprocess.running(tmp_path, **{"sync_interval": 0.2, **db, **settings}) as t:
        await seed_oauth_app(t)
        yield t


def options(name: str, values: tuple[str, ...] | list[str]) -> list[str]:
    return [arg for value in values for arg in (name, value)]


async def service_client(t: InProcess, *scopes: str) -> dict[str, str]:
    args = ["--name", "Warehouse sync", "--type", "confidential", "--grant", "client_credentials"]
    return await register_async(t, *args, *options("--scope", scopes))


WEB_SCOPES = ("openid", "profile", "email", "Magento_Catalog::products", "Magento_Sales::sales")


async def web_app(t: InProcess, *, first_party: bool = False, public: bool = False) -> dict[str, str]:
    args = ["--name", "Reports <app>", "--type", "public" if public else "confidential", "--redirect-uri", REDIRECT]
    args += options("--grant", ("authorization_code", "refresh_token")) + options("--scope", WEB_SCOPES)
    if first_party:
        args.append("--first-party")
    return await register_async(t, *args)


async def token_request(t: InProcess, data: dict[str, str], auth: dict[str, str] | None = None) -> httpx.Response:
    return await t.client.post("/oauth2/token", data=data, headers=auth or {})


async def code_for(t: InProcess, client: dict[str, str], **extra: str) -> tuple[str, str, dict[str, str]]:
    """(code, verifier, redirect query) for alice, through sign-in and consent."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid profile Magento_Catalog::products",
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    location = await async_authorize(t, f"/oauth2/authorize?{httpx.QueryParams(params)}")
    assert location.startswith(REDIRECT + "?"), location
    q = query(location)
    return q["code"], verifier, q


async def exchange(t: InProcess, client: dict[str, str], code: str, verifier: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    return await token_request(t, data, basic(client["client_id"], client["client_secret"]))


async def refresh(t: InProcess, client: dict[str, str], refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await token_request(t, data, basic(client["client_id"], client["client_secret"]))


async def get(t: InProcess, token: str, path: str, params: dict[str, str] | None = None) -> httpx.Response:
    return await t.client.get(path, params=params, headers=t.bearer(token))


# --- metadata -------------------------------------------------------------------------------------


def test_metadata_and_discovery_describe_the_endpoints(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            meta = (await t.client.get("/.well-known/oauth-authorization-server")).json()
            assert meta["issuer"] == BASE_URL
            assert meta["token_endpoint"] == f"{BASE_URL}/oauth2/token"
            assert meta["code_challenge_methods_supported"] == ["S256"]
            assert meta["response_types_supported"] == ["code"]
            assert "password" not in meta["grant_types_supported"]
            assert "implicit" not in meta["grant_types_supported"]
            oidc = (await t.client.get("/.well-known/openid-configuration")).json()
            assert {k: oidc[k] for k in meta} == meta
            assert oidc["userinfo_endpoint"] == f"{BASE_URL}/oauth2/userinfo"
            assert oidc["id_token_signing_alg_values_supported"] == ["ES256"]
            keys = (await t.client.get(oidc["jwks_uri"])).json()["keys"]
            assert keys and all("d" not in k for k in keys)

    inprocess.run(body)


# --- client credentials ---------------------------------------------------------------------------


def test_client_credentials_token_holds_only_its_scopes(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await service_client(t, "Magento_Catalog::products")
            assert client["client_secret"].startswith("tk_cs_")
            auth = basic(client["client_id"], client["client_secret"])
            r = await token_request(t, {"grant_type": "client_credentials"}, auth)
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            got = r.json()
            assert got["token_type"] == "Bearer" and got["scope"] == "Magento_Catalog::products"
            assert "refresh_token" not in got and got["expires_in"] == 900
            header = jwt.get_unverified_header(got["access_token"])
            claims = jwt.decode(got["access_token"], options={"verify_signature": False})
            assert header["typ"] == "at+jwt"  # RFC 9068
            assert claims["client_id"] == client["client_id"] and claims["sub"].startswith("client:")
            assert claims["utypid"] == 6 and claims["aud"] == BASE_URL

            token = got["access_token"]
            assert (await get(t, token, "/rest/V1/products", PRODUCTS_PAGE)).status_code == 200
            denied = await get(t, token, "/rest/V1/orders")
            assert denied.status_code == 403  # a scope the client does not hold

            # client_secret_post works too; asking beyond the registered scopes does not.
            post = {
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            }
            assert (await token_request(t, post)).status_code == 200
            wider = await token_request(t, {**post, "scope": "Magento_Sales::sales"})
            assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    inprocess.run(body)


def test_token_endpoint_errors_have_rfc6749_shape(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await service_client(t, "Magento_Catalog::products")
            cc = {"grant_type": "client_credentials"}
            bad = await token_request(t, cc, basic(client["client_id"], "tk_cs_wrong"))
            assert bad.status_code == 401
            assert bad.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}
            assert bad.headers["www-authenticate"].startswith("Basic")
            assert bad.headers["cache-control"] == "no-store"
            unknown = await token_request(t, cc, basic("tkc_nobody", "tk_cs_x"))
            assert unknown.status_code == 401 and unknown.json() == bad.json()  # nothing tells them apart

            auth = basic(client["client_id"], client["client_secret"])
            for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
                r = await token_request(t, {"grant_type": grant, "username": "alice", "password": ADMIN_PASSWORD}, auth)
                assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
            r = await token_request(t, {"grant_type": "authorization_code", "code": "x"}, auth)
            assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
            dup = await t.client.post(
                "/oauth2/token",
                content="grant_type=client_credentials&grant_type=client_credentials",
                headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
            )
            assert dup.status_code == 400 and dup.json()["error"] == "invalid_request"
            as_json = await t.client.post("/oauth2/token", json=cc, headers=auth)
            assert as_json.status_code == 415 and as_json.json()["error"] == "invalid_request"
            both = await token_request(t, {**cc, "client_id": client["client_id"], "client_secret": "x"}, auth)
            assert both.status_code == 400 and both.json()["error"] == "invalid_request"

    inprocess.run(body)


# --- authorization code ---------------------------------------------------------------------------


def test_authorization_code_flow_with_consent_id_token_and_userinfo(tmp_path: Path, db: dict[str, Any]) -> None:
    from tillkey.oauth2.oidc.id_token import at_hash

    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            code, verifier, q = await code_for(t, client, nonce="n-0S6_WzA2Mj")
            assert q["state"] == "st-123" and q["iss"] == BASE_URL  # state round trip, RFC 9207 iss
            r = await exchange(t, client, code, verifier)
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            got = r.json()
            assert got["refresh_token"].startswith("tk_rt_")
            assert got["scope"] == "openid profile Magento_Catalog::products"
            keys = (await t.client.get("/.well-known/jwks.json")).json()
            kid = jwt.get_unverified_header(got["id_token"])["kid"]
            key = next(jwt.PyJWK(k) for k in keys["keys"] if k["kid"] == kid)
            id_claims = jwt.decode(
                got["id_token"], key, algorithms=["ES256"], audience=client["client_id"], issuer=BASE_URL
            )
            assert id_claims["nonce"] == "n-0S6_WzA2Mj" and id_claims["amr"] == ["pwd"]
            assert id_claims["sub"] == "admin:1" and abs(id_claims["auth_time"] - t.clock.now()) < 60
            assert id_claims["at_hash"] == at_hash(got["access_token"], "ES256")

            token = got["access_token"]
            assert (await get(t, token, "/rest/V1/products", PRODUCTS_PAGE)).status_code == 200
            # alice may read orders, but this token was granted only the products scope
            assert (await get(t, token, "/rest/V1/orders")).status_code == 403
            info = await get(t, token, "/oauth2/userinfo")
            assert info.status_code == 200 and info.json()["sub"] == "admin:1"
            assert info.json()["preferred_username"] == "alice" and "email" not in info.json()  # no email scope

            # An ID token is not an access token.
            assert (await get(t, got["id_token"], "/rest/V1/products")).status_code == 401

    inprocess.run(body)


def test_first_party_client_skips_consent_and_public_client_needs_no_secret(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t, first_party=True, public=True)
            verifier, challenge = pkce_pair()
            params = {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": REDIRECT,
                "scope": "openid email",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            location = await async_authorize(t, f"/oauth2/authorize?{httpx.QueryParams(params)}", consent=None)
            code = query(location)["code"]
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": client["client_id"],
            }
            r = await token_request(t, data)
            assert r.status_code == 200, r.text
            info = (await get(t, r.json()["access_token"], "/oauth2/userinfo")).json()
            assert info["email"] == "alice@example.com"

    inprocess.run(body)


def test_authorization_request_is_checked_before_anyone_signs_in(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            browser = async_web_client(t)
            _, challenge = pkce_pair()
            base = {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": REDIRECT,
                "state": "xyz",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }

            async def authorize(**changes: str | None) -> httpx.Response:
                params = {k: v for k, v in {**base, **changes}.items() if v is not None}
                return await browser.get("/oauth2/authorize", params=params)

            # Unverified redirect URI or client: an error page, never a redirect (RFC 6749 §4.1.2.1).
            for changes in (
                {"redirect_uri": REDIRECT + "/other"},
                {"redirect_uri": "https://app.example.test/callback?x=1"},
                {"client_id": "tkc_unknown"},
            ):
                r = await authorize(**changes)
                assert r.status_code == 400 and "location" not in r.headers
                assert "script-src" not in r.headers["content-security-policy"]
                assert "default-src 'none'" in r.headers["content-security-policy"]
            # Known redirect URI: the client hears about it, with its state.
            for changes, error in (
                ({"response_type": "token"}, "unsupported_response_type"),
                ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # PKCE is required
                ({"code_challenge_method": "plain"}, "invalid_request"),
                ({"scope": "Magento_Backend::all"}, "invalid_scope"),
            ):
                r = await authorize(**changes)
                assert r.status_code == 302, (changes, r.text)
                q = query(r.headers["location"])
                assert r.headers["location"].startswith(REDIRECT + "?")
                assert q["error"] == error and q["state"] == "xyz" and q["iss"] == BASE_URL
            # Nobody signed in and prompt=none: login_required, without showing a page.
            q = query((await authorize(prompt="none")).headers["location"])
            assert q["error"] == "login_required"
            # Otherwise the console sign-in page.
            r = await authorize()
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")

    inprocess.run(body)


def test_denied_consent_and_bad_sign_in(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            _, challenge = pkce_pair()
            params = httpx.QueryParams(
                {
                    "response_type": "code",
                    "client_id": client["client_id"],
                    "redirect_uri": REDIRECT,
                    "state": "d",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
            )
            q = query(await async_authorize(t, f"/oauth2/authorize?{params}", consent="deny"))
            assert q == {
                "error": "access_denied",
                "error_description": q["error_description"],
                "state": "d",
                "iss": BASE_URL,
            }

            browser = async_web_client(t)
            login = await browser.get((await browser.get(f"/oauth2/authorize?{params}")).headers["location"])
            assert login.status_code == 200 and 'name="password"' in login.text
            # form-action for the way back
            assert "https://app.example.test" in login.headers["content-security-policy"]
            fields = hidden_fields(login.text)
            wrong = await browser.post(
                "/console/login", data={**fields, "username": "alice", "password": "wrong-password-1"}
            )
            assert wrong.status_code == 401 and "sign-in was incorrect" in wrong.text
            forged = await browser.post(
                "/console/login", data={**fields, "csrf": "forged", "username": "alice", "password": ADMIN_PASSWORD}
            )
            assert forged.status_code == 401 and "form expired" in forged.text
            open_redirect = await browser.post(
                "/console/login",
                data={**fields, "next": "//evil.example/", "username": "alice", "password": ADMIN_PASSWORD},
            )
            assert open_redirect.status_code == 303 and open_redirect.headers["location"] == "/console/"

    inprocess.run(body)


def test_code_is_single_use_and_a_replay_revokes_its_tokens(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            first = await exchange(t, client, code, verifier)
            assert first.status_code == 200
            tokens = first.json()
            token = tokens["access_token"]
            assert (await get(t, token, "/rest/V1/products", PRODUCTS_PAGE)).status_code == 200

            replay = await exchange(t, client, code, verifier)
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
            # The side effect, not just the status: what the code produced is dead.
            assert (await get(t, token, "/rest/V1/products")).status_code == 401
            assert (await refresh(t, client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
            events = await inprocess.cli_json("audit", "search", "--event", "oauth2.code_reused", "--limit", "1")
            assert events["details"]["client_id"] == client["client_id"]

    inprocess.run(body)


def test_code_needs_its_verifier_its_redirect_uri_and_its_client(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client, other = await web_app(t), await web_app(t)
            code, verifier, _ = await code_for(t, client)
            wrong_verifier = await exchange(t, client, code, pkce_pair()[0])
            assert wrong_verifier.status_code == 400 and wrong_verifier.json()["error"] == "invalid_grant"
            code, verifier, _ = await code_for(t, client)
            # another client's code
            assert (await exchange(t, other, code, verifier)).json()["error"] == "invalid_grant"
            code, verifier, _ = await code_for(t, client)
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT + "x",
                "code_verifier": verifier,
            }
            r = await token_request(t, data, basic(client["client_id"], client["client_secret"]))
            assert r.json()["error"] == "invalid_grant"

    inprocess.run(body)


# --- refresh tokens -------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            first = (await exchange(t, client, code, verifier)).json()
            second = await refresh(t, client, first["refresh_token"])
            assert second.status_code == 200 and second.headers["cache-control"] == "no-store"
            rotated = second.json()
            assert rotated["refresh_token"] != first["refresh_token"]
            assert (await get(t, rotated["access_token"], "/oauth2/userinfo")).status_code == 200

            # An attacker replays the spent token: refused, and the whole family dies with it.
            replay = await refresh(t, client, first["refresh_token"])
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
            assert (await refresh(t, client, rotated["refresh_token"])).json()["error"] == "invalid_grant"
            assert (await get(t, rotated["access_token"], "/oauth2/userinfo")).status_code == 401
            assert (await get(t, first["access_token"], "/oauth2/userinfo")).status_code == 401
            event = await inprocess.cli_json("audit", "search", "--event", "token.refresh_reused", "--limit", "1")
            assert event["outcome"] == "failure" and event["actor_id"] == 1
            assert event["details"]["client_id"] == client["client_id"]
            assert event["details"]["access_revoked"] == 2
            assert "tk_rt_" not in str(event)

    inprocess.run(body)


def test_refresh_scope_can_narrow_but_not_widen(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()
            auth = basic(client["client_id"], client["client_secret"])
            wider = await token_request(
                t,
                {
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "scope": "openid Magento_Sales::sales",
                },
                auth,
            )
            assert wider.json()["error"] == "invalid_scope"
            narrow = await token_request(
                t, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "openid"}, auth
            )
            assert narrow.status_code == 200 and narrow.json()["scope"] == "openid"

    inprocess.run(body)


def test_two_simultaneous_refreshes_cannot_both_succeed(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()
            # Four requests in flight at once: the app interleaves them at every await (a database
            # round trip), as it does concurrent connections.
            results = await asyncio.gather(*(refresh(t, client, tokens["refresh_token"]) for _ in range(4)))
            wins = [r for r in results if r.status_code == 200]
            assert len(wins) <= 1, [r.text for r in results]
            assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
            # Whoever won holds a token of a family the losers' reuse revoked.
            for win in wins:
                assert (await refresh(t, client, win.json()["refresh_token"])).json()["error"] == "invalid_grant"

    inprocess.run(body)


def test_revoke_endpoint_ends_a_family_or_an_access_token(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            client = await web_app(t)
            auth = basic(client["client_id"], client["client_secret"])
            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()
            r = await t.client.post("/oauth2/revoke", data={"token": tokens["access_token"]}, headers=auth)
            assert r.status_code == 200
            assert (await get(t, tokens["access_token"], "/oauth2/userinfo")).status_code == 401
            assert (await refresh(t, client, tokens["refresh_token"])).status_code == 200  # the family lives on

            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()
            r = await t.client.post(
                "/oauth2/revoke",
                data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
                headers=auth,
            )
            assert r.status_code == 200
            assert (await refresh(t, client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
            assert (await get(t, tokens["access_token"], "/oauth2/userinfo")).status_code == 401
            # Unknown tokens: 200 all the same (RFC 7009 §2.2); bad client: 401.
            assert (await t.client.post("/oauth2/revoke", data={"token": "nonsense"}, headers=auth)).status_code == 200
            bad = await t.client.post("/oauth2/revoke", data={"token": "x"}, headers=basic(client["client_id"], "nope"))
            assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"

    inprocess.run(body)


# --- introspection, userinfo errors ---------------------------------------------------------------


def test_introspection_answers_resource_servers(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            gateway = ["--name", "API gateway", "--type", "confidential", "--grant", "client_credentials"]
            rs = await register_async(t, *gateway, "--resource-server")
            rs_auth = basic(rs["client_id"], rs["client_secret"])
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()

            async def introspect(token: str, auth: dict[str, str] = rs_auth) -> httpx.Response:
                return await t.client.post("/oauth2/introspect", data={"token": token}, headers=auth)

            info = (await introspect(tokens["access_token"])).json()
            assert info["active"] is True and info["client_id"] == client["client_id"] and info["sub"] == "admin:1"
            assert set(info["scope"].split()) == {"openid", "profile", "Magento_Catalog::products"}
            assert info["exp"] > t.clock.now()
            assert (await introspect("garbage")).json() == {"active": False}
            # another client's refresh token
            assert (await introspect(tokens["refresh_token"])).json() == {"active": False}
            own = (
                await introspect(tokens["refresh_token"], basic(client["client_id"], client["client_secret"]))
            ).json()
            assert own["active"] is True and own["token_type"] == "refresh_token"
            unauthenticated = await t.client.post("/oauth2/introspect", data={"token": tokens["access_token"]})
            assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"

    inprocess.run(body)


def test_userinfo_speaks_rfc6750(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            none = await t.client.get("/oauth2/userinfo")
            assert none.status_code == 401 and none.headers["www-authenticate"] == 'Bearer realm="tillkey"'
            bad = await get(t, "nope", "/oauth2/userinfo")
            assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
            assert bad.json()["error"] == "invalid_token"
            cc = await service_client(t, "Magento_Catalog::products")
            token = await token_request(
                t, {"grant_type": "client_credentials"}, basic(cc["client_id"], cc["client_secret"])
            )
            no_openid = await get(t, token.json()["access_token"], "/oauth2/userinfo")
            assert no_openid.status_code == 403
            assert 'error="insufficient_scope"' in no_openid.headers["www-authenticate"]

    inprocess.run(body)


# --- client lifecycle -----------------------------------------------------------------------------


def test_deleting_a_client_ends_its_tokens_everywhere(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            cc = await service_client(t, "Magento_Catalog::products")
            cc_auth = basic(cc["client_id"], cc["client_secret"])
            cc_token = (await token_request(t, {"grant_type": "client_credentials"}, cc_auth)).json()["access_token"]
            client = await web_app(t)
            code, verifier, _ = await code_for(t, client)
            tokens = (await exchange(t, client, code, verifier)).json()
            assert (await get(t, cc_token, "/rest/V1/products", PRODUCTS_PAGE)).status_code == 200

            await inprocess.cli("client", "delete", cc["client_id"])
            # by the CLI: the app hears through the change feed
            await inprocess.cli("client", "delete", client["client_id"])
            for token in (cc_token, tokens["access_token"]):

                async def refused(token: str = token) -> bool:
                    return (await get(t, token, "/rest/V1/products")).status_code == 401

                await until(refused, what="the deleted client's token refused")

            # Refused at once (its family went with the client); the client itself is unknown once
            # the app has applied the whole change (revocations and the client list are two steps).
            async def unknown_client() -> bool:
                error = (await refresh(t, client, tokens["refresh_token"])).json()["error"]
                assert error in ("invalid_grant", "invalid_client"), error
                return bool(error == "invalid_client")

            await until(unknown_client, what="the deleted client unknown to the token endpoint")
            again = await inprocess.cli("client", "delete", client["client_id"], check=False)
            assert again.stderr.startswith("error:")

    inprocess.run(body)


def test_admin_api_registers_clients_within_the_callers_grant(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            alice = t.bearer(await t.admin_token("alice"))
            r = await t.client.post(
                "/tillkey/v1/oauth2/clients",
                headers=alice,
                json={
                    "name": "Partner",
                    "type": "confidential",
                    "grant_types": ["client_credentials"],
                    "scopes": ["Magento_Sales::actions_view"],
                },
            )
            assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
            created = r.json()
            assert created["client_secret"].startswith("tk_cs_")
            listed = (await t.client.get("/tillkey/v1/oauth2/clients", headers=alice)).json()
            mine = next(c for c in listed if c["client_id"] == created["client_id"])
            assert "client_secret" not in mine and mine["scopes"] == ["Magento_Sales::actions_view"]
            token = await token_request(
                t, {"grant_type": "client_credentials"}, basic(created["client_id"], created["client_secret"])
            )
            assert (await get(t, token.json()["access_token"], "/rest/V1/orders")).status_code == 200

            async def create(json: dict[str, Any]) -> httpx.Response:
                return await t.client.post("/tillkey/v1/oauth2/clients", headers=alice, json=json)

            bad = await create({"name": "X", "type": "public", "grant_types": ["client_credentials"]})
            assert bad.status_code == 400
            implicit = await create(
                {"name": "X", "type": "public", "grant_types": ["implicit"], "redirect_uris": [REDIRECT]}
            )
            assert implicit.status_code == 400
            http_redirect = await create(
                {"name": "X", "type": "public", "redirect_uris": ["http://app.example.test/cb"]}
            )
            assert http_redirect.status_code == 400 and "https" in http_redirect.json()["message"]
            url = f"/tillkey/v1/oauth2/clients/{created['client_id']}"
            assert (await t.client.delete(url, headers=alice)).status_code == 200
            assert (await t.client.delete(url, headers=alice)).status_code == 404

            carol = t.bearer(await t.admin_token("carol"))  # Catalog role only
            assert (await t.client.get("/tillkey/v1/oauth2/clients", headers=carol)).status_code == 403

    inprocess.run(body)


# --- the headless storefront: refresh token in a cookie --------------------------------------------


def _cookie(response: httpx.Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    value = header.split(";")[0].split("=", 1)[1]
    return value, header


def test_magento_token_endpoints_set_a_refresh_cookie_that_rotates(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            # Each call from a browser of its own: the cookie it sends is the one the test names.
            async def post(path: str, **kw: Any) -> httpx.Response:
                async with t.browser() as browser:
                    return await browser.post(path, **kw)

            customer = {"username": "roni_cost@example.com", "password": CUSTOMER_PASSWORD}
            login = await post("/rest/V1/integration/customer/token", json=customer)
            assert login.status_code == 200 and isinstance(login.json(), str)  # the bare-string body stays
            cookie, header = _cookie(login)
            assert cookie.startswith("tk_rt_")
            attrs = {a.strip().lower() for a in header.split(";")[1:]}
            assert {"httponly", "secure", "samesite=strict", "path=/rest"} <= attrs

            async def use(value: str) -> httpx.Response:
                return await post("/rest/V1/integration/token/refresh", headers={"Cookie": f"tillkey_refresh={value}"})

            r = await use(cookie)
            assert r.status_code == 200 and isinstance(r.json(), str) and r.json() != login.json()
            new_cookie, _ = _cookie(r)
            assert new_cookie != cookie
            assert (await get(t, r.json(), "/rest/V1/customers/me")).json()["email"] == "roni_cost@example.com"

            stolen = await use(cookie)  # the spent cookie, replayed
            assert stolen.status_code == 401 and "message" in stolen.json()
            assert (await use(new_cookie)).status_code == 401  # the family is revoked
            assert (await get(t, r.json(), "/rest/V1/customers/me")).status_code == 401
            assert (await post("/rest/V1/integration/token/refresh")).status_code == 401

            # Logging out everywhere also ends refresh families begun before.
            login = await post("/rest/V1/integration/customer/token", json=customer)
            cookie, _ = _cookie(login)
            await t.client.post("/rest/V1/integration/customer/revoke-customer-token", headers=t.bearer(login.json()))
            assert (await use(cookie)).status_code == 401

    inprocess.run(body)


def test_opaque_access_tokens_by_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with seeded(tmp_path, {}, oauth2_access_token_format="opaque") as t:
            cc = await service_client(t, "Magento_Catalog::products")
            auth = basic(cc["client_id"], cc["client_secret"])
            token = (await token_request(t, {"grant_type": "client_credentials"}, auth)).json()["access_token"]
            assert token.startswith("tk_at_")
            assert (await get(t, token, "/rest/V1/products", PRODUCTS_PAGE)).status_code == 200
            assert (await get(t, token, "/rest/V1/orders")).status_code == 403
            info = (await t.client.post("/oauth2/introspect", data={"token": token}, headers=auth)).json()
            assert info["active"] and info["scope"] == "Magento_Catalog::products"
            await t.client.post("/oauth2/revoke", data={"token": token}, headers=auth)
            assert (await get(t, token, "/rest/V1/products")).status_code == 401

    inprocess.run(body)
