"""Integrations and OAuth 1.0a (magento.md §7) over real HTTP, with requests-oauthlib as the client:
manual activation, the endpoint handshake, signed REST calls, and every refusal."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256
from oauthlib.oauth1.rfc5849 import signature
from requests_oauthlib import OAuth1, OAuth1Session

from tests.conftest import ADMIN_PASSWORD, Server, start_server

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."
BAD_SIGNATURE = {"message": "The signature is invalid. Verify and try again."}
PRODUCTS = "Magento_Catalog::products"
T = TypeVar("T")


# --- helpers --------------------------------------------------------------------------------------


def eventually(check: Callable[[], T], timeout: float = 5.0) -> T:
    """The server picks CLI changes up through the change feed (sync interval 0.2 s in tests)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create(srv: Server, *resources: str, endpoint: str | None = None) -> dict[str, Any]:
    args = ["integration", "create", "--name", f"erp-{secrets.token_hex(4)}"]
    args += [a for r in resources for a in ("--resource", r)] if resources else ["--all"]
    if endpoint:
        args += ["--endpoint-url", endpoint]
    created: dict[str, Any] = srv.cli_json(*args)
    return created


def activate(srv: Server, integration: dict[str, Any]) -> dict[str, Any]:
    done: dict[str, Any] = srv.cli_json("integration", "activate", integration["name"])
    return done


def manual(srv: Server, *resources: str) -> tuple[dict[str, Any], dict[str, Any]]:
    integration = create(srv, *resources)
    return integration, activate(srv, integration)


def auth(integration: dict[str, Any], tokens: dict[str, Any], **kw: Any) -> OAuth1:
    kw.setdefault("signature_method", SIGNATURE_HMAC_SHA256)
    return OAuth1(
        integration["consumer_key"], integration["consumer_secret"], tokens["access_token"],
        tokens["access_token_secret"], **kw,
    )  # fmt: skip


def get_products(srv: Server, a: OAuth1, expect: int = 200, path: str = "/rest/V1/products") -> requests.Response:
    def check() -> requests.Response:
        r = requests.get(srv.url + path, auth=a, timeout=10)
        assert r.status_code == expect, r.text
        return r

    return eventually(check)


class Endpoint:
    """The integration's side of the handshake: records what Tillkey posts to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                owner.posts.append({**dict(parse_qsl(body)), "_content_type": self.headers.get("content-type", "")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tillkey/handshake"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


def audit_refusals(srv: Server) -> list[dict[str, Any]]:
    out = srv.cli("audit", "search", "--event", "oauth1.refused", "--limit", "200", "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


# --- it works -------------------------------------------------------------------------------------


def test_manual_activation_then_signed_get_products_with_requests_oauthlib(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    assert len(integration["consumer_key"]) == 32 and len(integration["consumer_secret"]) == 32
    assert len(tokens["access_token"]) == 32 and len(tokens["access_token_secret"]) == 32
    assert tokens["access_token"].isalnum() and tokens["access_token"] == tokens["access_token"].lower()
    r = get_products(server, auth(integration, tokens))
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert {p["sku"] for p in r.json()["items"]} >= {"24-MB01", "24-WG02"}
    # The store-code prefixes are signed as the client addressed them.
    for prefix in ("/rest/all/V1", "/rest/default/V1"):
        assert get_products(server, auth(integration, tokens), path=f"{prefix}/products/24-MB01").json()["sku"] == (
            "24-MB01"
        )


def test_secret_is_shown_once_and_never_listed(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    listed = server.cli_json("integration", "list")["integrations"]
    mine = next(i for i in listed if i["name"] == integration["name"])
    assert mine["status"] == "active" and mine["has_access_token"] is True
    assert mine["resources"] == [PRODUCTS]
    text = json.dumps(listed)
    for secret in (integration["consumer_secret"], tokens["access_token"], tokens["access_token_secret"]):
        assert secret not in text


def test_endpoint_handshake_with_requests_oauthlib(server: Server, endpoint: Endpoint) -> None:
    integration = create(server, PRODUCTS, endpoint=endpoint.url)
    # Activation through the admin API this time (an admin holding Magento_Integration::integrations).
    admin = server.client(server.token("admin", "alice", ADMIN_PASSWORD))
    r = admin.post(f"/tillkey/v1/integrations/{integration['id']}/activate")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "handshake_started"
    assert "access_token" not in r.json()
    [posted] = endpoint.posts
    assert posted["_content_type"] == "application/x-www-form-urlencoded"
    assert posted["oauth_consumer_key"] == integration["consumer_key"]
    assert posted["oauth_consumer_secret"] == integration["consumer_secret"]
    assert posted["store_base_url"] == "http://tillkey.test/"
    assert len(posted["oauth_verifier"]) == 32

    # What an integration does with what it received (requests-oauthlib, unchanged).
    oauth = OAuth1Session(
        posted["oauth_consumer_key"], posted["oauth_consumer_secret"], signature_method=SIGNATURE_HMAC_SHA256
    )
    request_token = oauth.fetch_request_token(server.url + "/oauth/token/request")
    assert len(request_token["oauth_token"]) == 32 and len(request_token["oauth_token_secret"]) == 32
    access = oauth.fetch_access_token(server.url + "/oauth/token/access", verifier=posted["oauth_verifier"])
    assert set(access) == {"oauth_token", "oauth_token_secret"}
    assert access["oauth_token"] != request_token["oauth_token"]
    r = oauth.get(server.url + "/rest/V1/products/24-MB01")
    assert r.status_code == 200 and r.json()["sku"] == "24-MB01"
    listed = admin.get("/tillkey/v1/integrations").json()["integrations"]
    assert next(i for i in listed if i["id"] == integration["id"])["status"] == "active"
    # The request token was spent by the exchange.
    again = OAuth1Session(
        integration["consumer_key"], integration["consumer_secret"], request_token["oauth_token"],
        request_token["oauth_token_secret"], verifier=posted["oauth_verifier"], signature_method=SIGNATURE_HMAC_SHA256,
    )  # fmt: skip
    r = again.post(server.url + "/oauth/token/access")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert dict(parse_qsl(r.text)) == {"oauth_problem": BAD_SIGNATURE["message"]}


def test_admin_api_creates_with_resources_and_needs_the_integrations_resource(server: Server) -> None:
    alice = server.client(server.token("admin", "alice", ADMIN_PASSWORD))
    name = f"api-{secrets.token_hex(4)}"
    r = alice.post("/tillkey/v1/integrations", json={"name": name, "resources": [PRODUCTS]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == name and len(body["consumer_secret"]) == 32 and body["resources"] == [PRODUCTS]
    assert alice.post("/tillkey/v1/integrations", json={"name": name, "all": True}).status_code == 409
    bad = alice.post("/tillkey/v1/integrations", json={"name": "x", "resources": ["Nope::nothing"]})
    assert bad.status_code == 400 and "Nope::nothing" in bad.json()["message"]
    both = alice.post("/tillkey/v1/integrations", json={"name": "y", "resources": [PRODUCTS], "all": True})
    assert both.status_code == 400
    carol = server.client(server.token("admin", "carol", ADMIN_PASSWORD))  # role Catalog only
    assert carol.get("/tillkey/v1/integrations").status_code == 403
    assert httpx.get(f"{server.url}/tillkey/v1/integrations").status_code == 401
    assert alice.post("/tillkey/v1/integrations/999999/activate").status_code == 404


# --- refusals ---------------------------------------------------------------------------------------


def test_bad_signature_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    forged = dict(integration, consumer_secret="x" * 32)
    r = requests.get(f"{server.url}/rest/V1/products", auth=auth(forged, tokens), timeout=10)
    assert r.status_code == 401
    assert r.json() == BAD_SIGNATURE
    assert "www-authenticate" not in r.headers  # Magento sends none
    # A signature for another path does not fit this one.
    signed = requests.Request("GET", f"{server.url}/rest/V1/orders", auth=auth(integration, tokens)).prepare()
    signed.url = f"{server.url}/rest/V1/products"
    assert requests.Session().send(signed).status_code == 401
    reasons = [r["details"]["reason"] for r in audit_refusals(server) if r["actor_id"] == integration["id"]]
    assert "bad signature" in reasons
    dump = json.dumps(audit_refusals(server))
    assert integration["consumer_secret"] not in dump and tokens["access_token"] not in dump


def test_wrong_consumer_is_refused(server: Server) -> None:
    a, _ = manual(server, PRODUCTS)
    b, b_tokens = manual(server, PRODUCTS)
    get_products(server, auth(b, b_tokens))
    # A's consumer credentials with B's access token (and B's token secret): still refused.
    r = requests.get(f"{server.url}/rest/V1/products", auth=auth(a, b_tokens), timeout=10)
    assert r.status_code == 401 and r.json() == BAD_SIGNATURE
    unknown = dict(a, consumer_key="0" * 32)
    r = requests.get(f"{server.url}/rest/V1/products", auth=auth(unknown, b_tokens), timeout=10)
    assert r.status_code == 401 and r.json() == BAD_SIGNATURE
    short = dict(a, consumer_key="abc")
    r = requests.get(f"{server.url}/rest/V1/products", auth=auth(short, b_tokens), timeout=10)
    assert r.status_code == 401 and r.json() == {"message": "Consumer key is not the correct length"}


def test_reused_nonce_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    signed = requests.Request("GET", f"{server.url}/rest/V1/products", auth=auth(integration, tokens)).prepare()
    session = requests.Session()
    assert session.send(signed).status_code == 200
    replay = session.send(signed)
    assert replay.status_code == 401
    assert replay.json() == {
        "message": "The nonce is already being used by the consumer with ID %1",
        "parameters": [str(integration["id"])],
    }


def test_timestamp_too_far_ahead_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    ahead = auth(integration, tokens, timestamp=str(int(time.time()) + 900))
    r = requests.get(f"{server.url}/rest/V1/products", auth=ahead, timeout=10)
    assert r.status_code == 401 and r.json() == {"message": "An error occurred validating the nonce"}
    near = auth(integration, tokens, timestamp=str(int(time.time()) + 300))
    assert requests.get(f"{server.url}/rest/V1/products", auth=near, timeout=10).status_code == 200


def test_stale_token_after_reauthorization_is_refused(server: Server) -> None:
    integration, old = manual(server, PRODUCTS)
    get_products(server, auth(integration, old))
    new = activate(server, integration)
    assert new["access_token"] != old["access_token"]
    get_products(server, auth(integration, old), expect=401)
    get_products(server, auth(integration, new))


def test_revoked_integration_token_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    server.cli("integration", "revoke", integration["name"])
    r = get_products(server, auth(integration, tokens), expect=401)
    assert r.json() == BAD_SIGNATURE
    listed = server.cli_json("integration", "list")["integrations"]
    assert next(i for i in listed if i["id"] == integration["id"])["has_access_token"] is False


def test_inactive_integration_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    server.cli("integration", "deactivate", integration["name"])
    r = get_products(server, auth(integration, tokens), expect=401)
    # Magento: the call of an inactive integration is a guest's, refused by the access check.
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": PRODUCTS}}
    # Activation again issues a new token; the old one stays dead.
    new = activate(server, integration)
    get_products(server, auth(integration, new))
    get_products(server, auth(integration, tokens), expect=401)
    assert any(
        r["details"]["reason"] == "inactive integration"
        for r in audit_refusals(server)
        if r["actor_id"] == integration["id"]
    )


def test_deleted_integration_is_refused(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    server.cli("integration", "delete", integration["name"])
    assert get_products(server, auth(integration, tokens), expect=401).json() == BAD_SIGNATURE


def test_integration_grant_is_enforced(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    r = requests.get(f"{server.url}/rest/V1/orders", auth=auth(integration, tokens), timeout=10)
    assert r.status_code == 403
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Sales::actions_view"}}
    # `--all` grants everything, as a role with Magento_Backend::all.
    everything, all_tokens = manual(server)
    get_products(server, auth(everything, all_tokens), path="/rest/V1/orders")


def test_hmac_sha1_is_refused_unless_allowed(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    sha1 = auth(integration, tokens, signature_method=SIGNATURE_HMAC_SHA1)
    r = requests.get(f"{server.url}/rest/V1/products", auth=sha1, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"message": "Signature method %1 is not supported", "parameters": ["HMAC-SHA1"]}


def test_hmac_sha1_works_when_the_setting_allows_it(sqlite_server_factory: Any) -> None:
    srv = sqlite_server_factory(TILLKEY_OAUTH1_ALLOW_HMAC_SHA1="true")
    srv.cli("demo", "seed", "--customer-password", "Customer-pass-4-tests")
    integration, tokens = manual(srv, PRODUCTS)
    get_products(srv, auth(integration, tokens, signature_method=SIGNATURE_HMAC_SHA1))


def _sign_by_hand(
    method: str, url: str, params: list[tuple[str, str]], integration: dict[str, Any], tokens: dict[str, Any],
    order: Callable[[list[tuple[str, str]]], list[tuple[str, str]]],
) -> str:  # fmt: skip
    """An Authorization header whose signature covers `params` in the given order (oauthlib's
    pieces for the encoding and the HMAC; the order is the test's)."""
    oauth = [
        ("oauth_consumer_key", integration["consumer_key"]), ("oauth_nonce", secrets.token_hex(8)),
        ("oauth_signature_method", "HMAC-SHA256"), ("oauth_timestamp", str(int(time.time()))),
        ("oauth_token", tokens["access_token"]), ("oauth_version", "1.0"),
    ]  # fmt: skip
    pairs = order([(signature.utils.escape(k), signature.utils.escape(v)) for k, v in [*params, *oauth]])
    base = signature.signature_base_string(method, url, "&".join(f"{k}={v}" for k, v in pairs))
    client = SimpleNamespace(
        client_secret=integration["consumer_secret"], resource_owner_secret=tokens["access_token_secret"]
    )
    sig = signature.sign_hmac_sha256_with_client(base, client)
    fields = [*oauth, ("oauth_signature", sig)]
    return "OAuth " + ", ".join(f'{k}="{signature.utils.escape(v)}"' for k, v in fields)


def test_magento_natural_order_and_rfc_byte_order_are_both_accepted(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    url = f"{server.url}/rest/V1/products"
    query = [("searchCriteria[pageSize]", "2"), ("f10", "a"), ("f9", "b")]
    # Byte order puts f10 before f9; PHP's strnatcmp (Laminas, Magento) puts f9 before f10.
    natural = _sign_by_hand("GET", url, query, integration, tokens, lambda p: sorted(p, key=_nat))
    byte_order = _sign_by_hand("GET", url, query, integration, tokens, sorted)
    neither = _sign_by_hand("GET", url, query, integration, tokens, lambda p: sorted(p, reverse=True))
    for header, status in ((natural, 200), (byte_order, 200), (neither, 401)):
        r = httpx.get(url, params=query, headers={"Authorization": header})
        assert r.status_code == status, r.text


def _nat(pair: tuple[str, str]) -> tuple[Any, ...]:
    # Enough natural order for this test's names: f9 < f10, and the others by bytes.
    k = pair[0]
    return (k[0], int(k[1:])) if k[0] == "f" and k[1:].isdigit() else (k, 0)


def test_form_body_is_signed_and_json_body_is_not(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    # A route integrations may not use: 403 means the signature was accepted, 401 that it was not.
    url = f"{server.url}/rest/V1/integration/customer/revoke-customer-token"
    signed = requests.Request("POST", url, data={"customer": "7"}, auth=auth(integration, tokens)).prepare()
    assert signed.headers["Content-Type"] in (b"application/x-www-form-urlencoded", "application/x-www-form-urlencoded")
    assert requests.Session().send(signed).status_code == 403
    tampered = requests.Request("POST", url, data={"customer": "8"}, auth=auth(integration, tokens)).prepare()
    tampered.body = "customer=9"
    tampered.headers["Content-Length"] = str(len(tampered.body))
    assert requests.Session().send(tampered).status_code == 401
    # JSON bodies are outside the signature (Magento signs only header, form body and query).
    signed_json = requests.Request("POST", url, json={"customer": 7}, auth=auth(integration, tokens)).prepare()
    signed_json.body = b'{"customer": 8}'
    assert requests.Session().send(signed_json).status_code == 403


def test_token_endpoint_errors_are_form_encoded_oauth_problems(server: Server) -> None:
    integration = create(server, PRODUCTS)
    url = f"{server.url}/oauth/token/request"
    # No handshake in progress (never activated with an endpoint): Magento's expired consumer.
    r = OAuth1Session(
        integration["consumer_key"], integration["consumer_secret"], signature_method=SIGNATURE_HMAC_SHA256
    ).post(url)
    assert r.status_code == 401
    assert dict(parse_qsl(r.text)) == {"oauth_problem": "Consumer key has expired"}
    r = OAuth1Session("z" * 32, "y" * 32, signature_method=SIGNATURE_HMAC_SHA256).post(url)
    assert r.status_code == 401 and dict(parse_qsl(r.text)) == {"oauth_problem": BAD_SIGNATURE["message"]}
    r = httpx.post(url, content=urlencode({"oauth_consumer_key": integration["consumer_key"]}),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 400
    assert dict(parse_qsl(r.text)) == {"oauth_problem": ", ".join(
        f'"{p}" is required. Enter and try again.'
        for p in ("oauth_signature", "oauth_signature_method", "oauth_nonce", "oauth_timestamp")
    )}  # fmt: skip
    r = httpx.post(f"{server.url}/oauth/token/access", headers={"Authorization": "OAuth garbage"})
    assert r.status_code == 400 and "oauth_problem" in dict(parse_qsl(r.text))
    # Errors raised outside the handlers (wrong method, body too large) are form-encoded too.
    r = httpx.get(url)
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert "oauth_problem" in dict(parse_qsl(r.text))
    r = httpx.post(url, content=b"a=" + b"x" * 2_000_000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "oauth_problem" in dict(parse_qsl(r.text))


def test_wrong_verifier_is_refused(server: Server, endpoint: Endpoint) -> None:
    integration = create(server, PRODUCTS, endpoint=endpoint.url)
    activate(server, integration)
    [posted] = endpoint.posts
    oauth = OAuth1Session(integration["consumer_key"], integration["consumer_secret"], signature_method="HMAC-SHA256")
    oauth.fetch_request_token(server.url + "/oauth/token/request")
    r = oauth.post(server.url + "/oauth/token/access", data={"oauth_verifier": "0" * 32})
    assert r.status_code == 401 and dict(parse_qsl(r.text)) == {"oauth_problem": "Verifier is invalid"}
    assert oauth.fetch_access_token(server.url + "/oauth/token/access", verifier=posted["oauth_verifier"])


def test_unreachable_endpoint_is_a_clear_cli_error(server: Server) -> None:
    integration = create(server, PRODUCTS, endpoint="http://127.0.0.1:9/nothing-listens-here")
    res = server.cli("integration", "activate", integration["name"], check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: The activation could not be delivered to the integration's endpoint.")


def test_integration_token_as_bearer_is_off_by_default(server: Server) -> None:
    integration, tokens = manual(server, PRODUCTS)
    get_products(server, auth(integration, tokens))
    r = httpx.get(f"{server.url}/rest/V1/products", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": PRODUCTS}}


# --- integration tokens as Bearer (TILLKEY_INTEGRATION_AS_BEARER=true) ---------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bearer_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp(f"bearer-{request.param}"), request.param, TILLKEY_INTEGRATION_AS_BEARER="true"
    )
    try:
        srv.cli("demo", "seed", "--customer-password", "Customer-pass-4-tests")
        yield srv
    finally:
        srv.stop()
        srv.database.drop()


def test_integration_token_as_bearer_when_enabled(bearer_server: Server) -> None:
    integration, tokens = manual(bearer_server, PRODUCTS)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    def works() -> None:
        r = httpx.get(f"{bearer_server.url}/rest/all/V1/products/24-MB01", headers=bearer)
        assert r.status_code == 200, r.text

    eventually(works)
    assert httpx.get(f"{bearer_server.url}/rest/V1/orders", headers=bearer).status_code == 403
    # The token secret is no bearer token, and an unknown token of the same shape is a guest.
    for wrong in (tokens["access_token_secret"], "a" * 32):
        r = httpx.get(f"{bearer_server.url}/rest/V1/products", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401
    bearer_server.cli("integration", "revoke", integration["name"])

    def revoked() -> None:
        assert httpx.get(f"{bearer_server.url}/rest/V1/products", headers=bearer).status_code == 401

    eventually(revoked)


def test_admin_jwts_still_work_beside_integration_bearer(bearer_server: Server) -> None:
    bearer_server.cli(
        "admin", "create", "--username", f"a{secrets.token_hex(3)}", "--email", "x@example.com",
        "--password", ADMIN_PASSWORD,
    )  # fmt: skip
    listed = bearer_server.cli_json("admin", "list")["admins"]
    token = bearer_server.token("admin", listed[-1]["username"], ADMIN_PASSWORD)
    assert bearer_server.client(token).get("/rest/V1/store/websites").status_code == 200
