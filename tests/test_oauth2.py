"""OAuth 2 / OpenID Connect provider over real HTTP, on SQLite and PostgreSQL: metadata, client
credentials, the authorization code flow with PKCE through the console sign-in, refresh-token
rotation and reuse detection, revocation, introspection, userinfo, client deletion."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import ADMIN_PASSWORD, Server
from tests.oauth2_support import (
    REDIRECT,
    authorize,
    basic,
    pkce_pair,
    query,
    register,
    start_oauth_server,
    web_client,
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_oauth_server(tmp_path_factory.mktemp(f"oauth-{request.param}"), request.param)
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


def service_client(srv: Server, *scopes: str) -> dict[str, str]:
    args = ["--name", "Warehouse sync", "--type", "confidential", "--grant", "client_credentials"]
    for s in scopes:
        args += ["--scope", s]
    return register(srv, *args)


def web_app(srv: Server, *, first_party: bool = False, public: bool = False) -> dict[str, str]:
    args = [
        "--name", "Reports <app>", "--type", "public" if public else "confidential", "--redirect-uri", REDIRECT,
        "--grant", "authorization_code", "--grant", "refresh_token", "--scope", "openid", "--scope", "profile",
        "--scope", "email", "--scope", "Magento_Catalog::products", "--scope", "Magento_Sales::sales",
    ]  # fmt: skip
    if first_party:
        args.append("--first-party")
    return register(srv, *args)


def token_request(srv: Server, data: dict[str, str], auth: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{srv.url}/oauth2/token", data=data, headers=auth or {})


def code_for(srv: Server, client: dict[str, str], **extra: str) -> tuple[str, str, dict[str, str]]:
    """(code, verifier, redirect query) for alice, through sign-in and consent."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
        "scope": "openid profile Magento_Catalog::products", "state": "st-123", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra,
    }  # fmt: skip
    location = authorize(srv, f"/oauth2/authorize?{httpx.QueryParams(params)}")
    assert location.startswith(REDIRECT + "?"), location
    q = query(location)
    return q["code"], verifier, q


def exchange(srv: Server, client: dict[str, str], code: str, verifier: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    return token_request(srv, data, basic(client["client_id"], client["client_secret"]))


def refresh(srv: Server, client: dict[str, str], refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(srv, data, basic(client["client_id"], client["client_secret"]))


def wait_until(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


# --- metadata -------------------------------------------------------------------------------------


def test_metadata_and_discovery_describe_the_endpoints(srv: Server) -> None:
    meta = httpx.get(f"{srv.url}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == srv.url
    assert meta["token_endpoint"] == f"{srv.url}/oauth2/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert "password" not in meta["grant_types_supported"] and "implicit" not in meta["grant_types_supported"]
    oidc = httpx.get(f"{srv.url}/.well-known/openid-configuration").json()
    assert {k: oidc[k] for k in meta} == meta
    assert oidc["userinfo_endpoint"] == f"{srv.url}/oauth2/userinfo"
    assert oidc["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = httpx.get(oidc["jwks_uri"]).json()["keys"]
    assert keys and all("d" not in k for k in keys)


# --- client credentials ---------------------------------------------------------------------------


def test_client_credentials_token_holds_only_its_scopes(srv: Server) -> None:
    client = service_client(srv, "Magento_Catalog::products")
    assert client["client_secret"].startswith("tk_cs_")
    r = token_request(srv, {"grant_type": "client_credentials"}, basic(client["client_id"], client["client_secret"]))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "Magento_Catalog::products"
    assert "refresh_token" not in body and body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert header["typ"] == "at+jwt"  # RFC 9068
    assert claims["client_id"] == client["client_id"] and claims["sub"].startswith("client:")
    assert claims["utypid"] == 6 and claims["aud"] == srv.url

    api = srv.client(body["access_token"])
    assert api.get("/rest/V1/products", params={"searchCriteria[pageSize]": "1"}).status_code == 200
    denied = api.get("/rest/V1/orders")
    assert denied.status_code == 403  # a scope the client does not hold

    # client_secret_post works too; asking beyond the registered scopes does not.
    post = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    assert token_request(srv, post).status_code == 200
    wider = token_request(srv, {**post, "scope": "Magento_Sales::sales"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_token_endpoint_errors_have_rfc6749_shape(srv: Server) -> None:
    client = service_client(srv, "Magento_Catalog::products")
    bad = token_request(srv, {"grant_type": "client_credentials"}, basic(client["client_id"], "tk_cs_wrong"))
    assert bad.status_code == 401
    assert bad.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}
    assert bad.headers["www-authenticate"].startswith("Basic")
    assert bad.headers["cache-control"] == "no-store"
    unknown = token_request(srv, {"grant_type": "client_credentials"}, basic("tkc_nobody", "tk_cs_x"))
    assert unknown.status_code == 401 and unknown.json() == bad.json()  # nothing tells them apart

    auth = basic(client["client_id"], client["client_secret"])
    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        r = token_request(srv, {"grant_type": grant, "username": "alice", "password": ADMIN_PASSWORD}, auth)
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = token_request(srv, {"grant_type": "authorization_code", "code": "x"}, auth)
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    dup = httpx.post(
        f"{srv.url}/oauth2/token", content="grant_type=client_credentials&grant_type=client_credentials",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert dup.status_code == 400 and dup.json()["error"] == "invalid_request"
    as_json = httpx.post(f"{srv.url}/oauth2/token", json={"grant_type": "client_credentials"}, headers=auth)
    assert as_json.status_code == 415 and as_json.json()["error"] == "invalid_request"
    both = token_request(
        srv, {"grant_type": "client_credentials", "client_id": client["client_id"], "client_secret": "x"}, auth
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"


# --- authorization code ---------------------------------------------------------------------------


def test_authorization_code_flow_with_consent_id_token_and_userinfo(srv: Server) -> None:
    client = web_app(srv)
    code, verifier, q = code_for(srv, client, nonce="n-0S6_WzA2Mj")
    assert q["state"] == "st-123" and q["iss"] == srv.url  # state round trip, RFC 9207 iss
    r = exchange(srv, client, code, verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["refresh_token"].startswith("tk_rt_")
    assert body["scope"] == "openid profile Magento_Catalog::products"
    keys = httpx.get(f"{srv.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(keys["keys"][-1])
    kid = jwt.get_unverified_header(body["id_token"])["kid"]
    key = next(jwt.PyJWK(k) for k in keys["keys"] if k["kid"] == kid)
    id_claims = jwt.decode(body["id_token"], key, algorithms=["ES256"], audience=client["client_id"], issuer=srv.url)
    assert id_claims["nonce"] == "n-0S6_WzA2Mj" and id_claims["amr"] == ["pwd"]
    assert id_claims["sub"] == "admin:1" and abs(id_claims["auth_time"] - time.time()) < 60
    from tillkey.oauth2.oidc.id_token import at_hash

    assert id_claims["at_hash"] == at_hash(body["access_token"], "ES256")

    api = srv.client(body["access_token"])
    assert api.get("/rest/V1/products", params={"searchCriteria[pageSize]": "1"}).status_code == 200
    # alice may read orders, but this token was granted only the products scope
    assert api.get("/rest/V1/orders").status_code == 403
    info = api.get("/oauth2/userinfo")
    assert info.status_code == 200 and info.json()["sub"] == "admin:1"
    assert info.json()["preferred_username"] == "alice" and "email" not in info.json()  # no email scope

    # An ID token is not an access token.
    assert srv.client(body["id_token"]).get("/rest/V1/products").status_code == 401


def test_first_party_client_skips_consent_and_public_client_needs_no_secret(srv: Server) -> None:
    client = web_app(srv, first_party=True, public=True)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT, "scope": "openid email",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    location = authorize(srv, f"/oauth2/authorize?{httpx.QueryParams(params)}", consent=None)
    code = query(location)["code"]
    data = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": client["client_id"],
    }  # fmt: skip
    r = token_request(srv, data)
    assert r.status_code == 200, r.text
    info = srv.client(r.json()["access_token"]).get("/oauth2/userinfo").json()
    assert info["email"] == "alice@example.com"


def test_authorization_request_is_checked_before_anyone_signs_in(srv: Server) -> None:
    client = web_app(srv)
    browser = web_client(srv)
    _, challenge = pkce_pair()
    base = {
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT, "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip

    def get(**changes: str | None) -> httpx.Response:
        params = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return browser.get("/oauth2/authorize", params=params)

    # Unverified redirect URI or client: an error page, never a redirect (RFC 6749 §4.1.2.1).
    for changes in ({"redirect_uri": REDIRECT + "/other"}, {"redirect_uri": "https://app.example.test/callback?x=1"},
                    {"client_id": "tkc_unknown"}):  # fmt: skip
        r = get(**changes)
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
        r = get(**changes)
        assert r.status_code == 302, (changes, r.text)
        q = query(r.headers["location"])
        assert r.headers["location"].startswith(REDIRECT + "?")
        assert q["error"] == error and q["state"] == "xyz" and q["iss"] == srv.url
    # Nobody signed in and prompt=none: login_required, without showing a page.
    q = query(get(prompt="none").headers["location"])
    assert q["error"] == "login_required"
    # Otherwise the console sign-in page.
    r = get()
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")


def test_denied_consent_and_bad_sign_in(srv: Server) -> None:
    client = web_app(srv)
    _, challenge = pkce_pair()
    params = httpx.QueryParams({
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT, "state": "d",
        "code_challenge": challenge, "code_challenge_method": "S256",
    })  # fmt: skip
    q = query(authorize(srv, f"/oauth2/authorize?{params}", consent="deny"))
    assert q == {"error": "access_denied", "error_description": q["error_description"], "state": "d", "iss": srv.url}

    browser = web_client(srv)
    login = browser.get(browser.get(f"/oauth2/authorize?{params}").headers["location"])
    assert login.status_code == 200 and 'name="password"' in login.text
    assert "https://app.example.test" in login.headers["content-security-policy"]  # form-action for the way back
    from tests.oauth2_support import hidden_fields

    fields = hidden_fields(login.text)
    wrong = browser.post("/console/login", data={**fields, "username": "alice", "password": "wrong-password-1"})
    assert wrong.status_code == 401 and "sign-in was incorrect" in wrong.text
    forged = browser.post("/console/login", data={**fields, "csrf": "forged", "username": "alice",
                                                  "password": ADMIN_PASSWORD})  # fmt: skip
    assert forged.status_code == 401 and "form expired" in forged.text
    open_redirect = browser.post(
        "/console/login", data={**fields, "next": "//evil.example/", "username": "alice", "password": ADMIN_PASSWORD}
    )
    assert open_redirect.status_code == 303 and open_redirect.headers["location"] == "/console/"


def test_code_is_single_use_and_a_replay_revokes_its_tokens(srv: Server) -> None:
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    first = exchange(srv, client, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    api = srv.client(tokens["access_token"])
    assert api.get("/rest/V1/products", params={"searchCriteria[pageSize]": "1"}).status_code == 200

    replay = exchange(srv, client, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The side effect, not just the status: what the code produced is dead.
    assert api.get("/rest/V1/products").status_code == 401
    assert refresh(srv, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    events = srv.cli_json("audit", "search", "--event", "oauth2.code_reused", "--limit", "1")
    assert events["details"]["client_id"] == client["client_id"]


def test_code_needs_its_verifier_its_redirect_uri_and_its_client(srv: Server) -> None:
    client, other = web_app(srv), web_app(srv)
    code, verifier, _ = code_for(srv, client)
    wrong_verifier = exchange(srv, client, code, pkce_pair()[0])
    assert wrong_verifier.status_code == 400 and wrong_verifier.json()["error"] == "invalid_grant"
    code, verifier, _ = code_for(srv, client)
    assert exchange(srv, other, code, verifier).json()["error"] == "invalid_grant"  # another client's code
    code, verifier, _ = code_for(srv, client)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "x", "code_verifier": verifier}
    r = token_request(srv, data, basic(client["client_id"], client["client_secret"]))
    assert r.json()["error"] == "invalid_grant"


# --- refresh tokens -------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(srv: Server) -> None:
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    first = exchange(srv, client, code, verifier).json()
    second = refresh(srv, client, first["refresh_token"])
    assert second.status_code == 200 and second.headers["cache-control"] == "no-store"
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert srv.client(rotated["access_token"]).get("/oauth2/userinfo").status_code == 200

    # An attacker replays the spent token: refused, and the whole family dies with it.
    replay = refresh(srv, client, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(srv, client, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert srv.client(rotated["access_token"]).get("/oauth2/userinfo").status_code == 401
    assert srv.client(first["access_token"]).get("/oauth2/userinfo").status_code == 401
    event = srv.cli_json("audit", "search", "--event", "token.refresh_reused", "--limit", "1")
    assert event["outcome"] == "failure" and event["actor_id"] == 1
    assert event["details"]["client_id"] == client["client_id"] and event["details"]["access_revoked"] == 2
    assert "tk_rt_" not in str(event)


def test_refresh_scope_can_narrow_but_not_widen(srv: Server) -> None:
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()
    auth = basic(client["client_id"], client["client_secret"])
    wider = token_request(srv, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                "scope": "openid Magento_Sales::sales"}, auth)  # fmt: skip
    assert wider.json()["error"] == "invalid_scope"
    narrow = token_request(srv, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                 "scope": "openid"}, auth)  # fmt: skip
    assert narrow.status_code == 200 and narrow.json()["scope"] == "openid"


def test_two_simultaneous_refreshes_cannot_both_succeed(srv: Server) -> None:
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()
    results: list[httpx.Response] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(refresh(srv, client, tokens["refresh_token"]))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if r.status_code == 200]
    assert len(wins) <= 1, [r.text for r in results]
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
    # Whoever won holds a token of a family the losers' reuse revoked.
    for win in wins:
        assert refresh(srv, client, win.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_endpoint_ends_a_family_or_an_access_token(srv: Server) -> None:
    client = web_app(srv)
    auth = basic(client["client_id"], client["client_secret"])
    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()
    r = httpx.post(f"{srv.url}/oauth2/revoke", data={"token": tokens["access_token"]}, headers=auth)
    assert r.status_code == 200
    assert srv.client(tokens["access_token"]).get("/oauth2/userinfo").status_code == 401
    assert refresh(srv, client, tokens["refresh_token"]).status_code == 200  # the family lives on

    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()
    r = httpx.post(f"{srv.url}/oauth2/revoke", data={"token": tokens["refresh_token"],
                                                     "token_type_hint": "refresh_token"}, headers=auth)  # fmt: skip
    assert r.status_code == 200
    assert refresh(srv, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert srv.client(tokens["access_token"]).get("/oauth2/userinfo").status_code == 401
    # Unknown tokens: 200 all the same (RFC 7009 §2.2); bad client: 401.
    assert httpx.post(f"{srv.url}/oauth2/revoke", data={"token": "nonsense"}, headers=auth).status_code == 200
    bad = httpx.post(f"{srv.url}/oauth2/revoke", data={"token": "x"}, headers=basic(client["client_id"], "nope"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


# --- introspection, userinfo errors ---------------------------------------------------------------


def test_introspection_answers_resource_servers(srv: Server) -> None:
    rs = register(
        srv, "--name", "API gateway", "--type", "confidential", "--grant", "client_credentials", "--resource-server"
    )
    rs_auth = basic(rs["client_id"], rs["client_secret"])
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()

    def introspect(token: str, auth: dict[str, str] = rs_auth) -> httpx.Response:
        return httpx.post(f"{srv.url}/oauth2/introspect", data={"token": token}, headers=auth)

    info = introspect(tokens["access_token"]).json()
    assert info["active"] is True and info["client_id"] == client["client_id"] and info["sub"] == "admin:1"
    assert set(info["scope"].split()) == {"openid", "profile", "Magento_Catalog::products"}
    assert info["exp"] > time.time()
    assert introspect("garbage").json() == {"active": False}
    assert introspect(tokens["refresh_token"]).json() == {"active": False}  # another client's refresh token
    own = introspect(tokens["refresh_token"], basic(client["client_id"], client["client_secret"])).json()
    assert own["active"] is True and own["token_type"] == "refresh_token"
    unauthenticated = httpx.post(f"{srv.url}/oauth2/introspect", data={"token": tokens["access_token"]})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"


def test_userinfo_speaks_rfc6750(srv: Server) -> None:
    none = httpx.get(f"{srv.url}/oauth2/userinfo")
    assert none.status_code == 401 and none.headers["www-authenticate"] == 'Bearer realm="tillkey"'
    bad = httpx.get(f"{srv.url}/oauth2/userinfo", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert bad.json()["error"] == "invalid_token"
    cc = service_client(srv, "Magento_Catalog::products")
    token = token_request(srv, {"grant_type": "client_credentials"}, basic(cc["client_id"], cc["client_secret"]))
    no_openid = srv.client(token.json()["access_token"]).get("/oauth2/userinfo")
    assert no_openid.status_code == 403 and 'error="insufficient_scope"' in no_openid.headers["www-authenticate"]


# --- client lifecycle -----------------------------------------------------------------------------


def test_deleting_a_client_ends_its_tokens_everywhere(srv: Server) -> None:
    cc = service_client(srv, "Magento_Catalog::products")
    cc_token = token_request(srv, {"grant_type": "client_credentials"}, basic(cc["client_id"], cc["client_secret"]))
    client = web_app(srv)
    code, verifier, _ = code_for(srv, client)
    tokens = exchange(srv, client, code, verifier).json()
    products = {"searchCriteria[pageSize]": "1"}
    assert srv.client(cc_token.json()["access_token"]).get("/rest/V1/products", params=products).status_code == 200

    srv.cli("client", "delete", cc["client_id"])
    srv.cli("client", "delete", client["client_id"])  # by the CLI: the server hears through the change feed
    assert wait_until(lambda: srv.client(cc_token.json()["access_token"]).get("/rest/V1/products").status_code == 401)
    assert wait_until(lambda: srv.client(tokens["access_token"]).get("/rest/V1/products").status_code == 401)
    assert refresh(srv, client, tokens["refresh_token"]).json()["error"] == "invalid_client"
    assert srv.cli("client", "delete", client["client_id"], check=False).stderr.startswith("error:")


def test_admin_api_registers_clients_within_the_callers_grant(srv: Server) -> None:
    admin = srv.client(srv.token("admin", "alice", ADMIN_PASSWORD))
    r = admin.post("/tillkey/v1/oauth2/clients", json={
        "name": "Partner", "type": "confidential", "grant_types": ["client_credentials"],
        "scopes": ["Magento_Sales::actions_view"],
    })  # fmt: skip
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    created = r.json()
    assert created["client_secret"].startswith("tk_cs_")
    listed = admin.get("/tillkey/v1/oauth2/clients").json()
    mine = next(c for c in listed if c["client_id"] == created["client_id"])
    assert "client_secret" not in mine and mine["scopes"] == ["Magento_Sales::actions_view"]
    token = token_request(
        srv, {"grant_type": "client_credentials"}, basic(created["client_id"], created["client_secret"])
    )
    assert srv.client(token.json()["access_token"]).get("/rest/V1/orders").status_code == 200

    bad = admin.post(
        "/tillkey/v1/oauth2/clients", json={"name": "X", "type": "public", "grant_types": ["client_credentials"]}
    )
    assert bad.status_code == 400
    implicit = admin.post(
        "/tillkey/v1/oauth2/clients",
        json={"name": "X", "type": "public", "grant_types": ["implicit"], "redirect_uris": [REDIRECT]},
    )
    assert implicit.status_code == 400
    http_redirect = admin.post("/tillkey/v1/oauth2/clients", json={
        "name": "X", "type": "public", "redirect_uris": ["http://app.example.test/cb"]})  # fmt: skip
    assert http_redirect.status_code == 400 and "https" in http_redirect.json()["message"]
    assert admin.delete(f"/tillkey/v1/oauth2/clients/{created['client_id']}").status_code == 200
    assert admin.delete(f"/tillkey/v1/oauth2/clients/{created['client_id']}").status_code == 404

    carol = srv.client(srv.token("admin", "carol", ADMIN_PASSWORD))  # Catalog role only
    assert carol.get("/tillkey/v1/oauth2/clients").status_code == 403


# --- the headless storefront: refresh token in a cookie --------------------------------------------


def _cookie(response: httpx.Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    value = header.split(";")[0].split("=", 1)[1]
    return value, header


def test_magento_token_endpoints_set_a_refresh_cookie_that_rotates(srv: Server) -> None:
    login = httpx.post(f"{srv.url}/rest/V1/integration/customer/token",
                       json={"username": "roni_cost@example.com", "password": "Customer-pass-4-tests"})  # fmt: skip
    assert login.status_code == 200 and isinstance(login.json(), str)  # the bare-string body stays
    cookie, header = _cookie(login)
    assert cookie.startswith("tk_rt_")
    attrs = {a.strip().lower() for a in header.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/rest"} <= attrs

    def use(value: str) -> httpx.Response:
        return httpx.post(f"{srv.url}/rest/V1/integration/token/refresh", cookies={"tillkey_refresh": value})

    r = use(cookie)
    assert r.status_code == 200 and isinstance(r.json(), str) and r.json() != login.json()
    new_cookie, _ = _cookie(r)
    assert new_cookie != cookie
    assert srv.client(r.json()).get("/rest/V1/customers/me").json()["email"] == "roni_cost@example.com"

    stolen = use(cookie)  # the spent cookie, replayed
    assert stolen.status_code == 401 and "message" in stolen.json()
    assert use(new_cookie).status_code == 401  # the family is revoked
    assert srv.client(r.json()).get("/rest/V1/customers/me").status_code == 401
    assert httpx.post(f"{srv.url}/rest/V1/integration/token/refresh").status_code == 401

    # Logging out everywhere also ends refresh families begun before.
    login = httpx.post(f"{srv.url}/rest/V1/integration/customer/token",
                       json={"username": "roni_cost@example.com", "password": "Customer-pass-4-tests"})  # fmt: skip
    cookie, _ = _cookie(login)
    srv.client(login.json()).post("/rest/V1/integration/customer/revoke-customer-token")
    assert use(cookie).status_code == 401


def test_opaque_access_tokens_by_setting(tmp_path: Path) -> None:
    srv = start_oauth_server(tmp_path / "opaque", "sqlite", TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT="opaque")
    try:
        cc = service_client(srv, "Magento_Catalog::products")
        auth = basic(cc["client_id"], cc["client_secret"])
        token = token_request(srv, {"grant_type": "client_credentials"}, auth).json()["access_token"]
        assert token.startswith("tk_at_")
        api = srv.client(token)
        assert api.get("/rest/V1/products", params={"searchCriteria[pageSize]": "1"}).status_code == 200
        assert api.get("/rest/V1/orders").status_code == 403
        info = httpx.post(f"{srv.url}/oauth2/introspect", data={"token": token}, headers=auth).json()
        assert info["active"] and info["scope"] == "Magento_Catalog::products"
        httpx.post(f"{srv.url}/oauth2/revoke", data={"token": token}, headers=auth)
        assert api.get("/rest/V1/products").status_code == 401
    finally:
        srv.stop()
