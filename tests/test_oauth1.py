"""Integrations and OAuth 1.0a (magento.md §7) over real HTTP, with requests-oauthlib as the client:
manual activation, the endpoint handshake, signed REST calls, and every refusal.

The app runs in this process (tests/inprocess.py) on SQLite and PostgreSQL, the operator's CLI
through CliRunner on the same database. requests-oauthlib opens its own sockets, so where it is the
client the app also listens on a loopback port (`inprocess.listening`) and requests run in a thread.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256
from oauthlib.oauth1.rfc5849 import signature
from requests_oauthlib import OAuth1, OAuth1Session

from tests import inprocess
from tests.inprocess import BASE_URL, CUSTOMER_PASSWORD, InProcess
from tests.oauth1_support import Endpoint
from tests.polling import until
from tillkey.access.delegation import OPERATOR
from tillkey.storeapi.seed import seed

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."
BAD_SIGNATURE = {"message": "The signature is invalid. Verify and try again."}
PRODUCTS = "Magento_Catalog::products"
# The store's base URL as the handshake posts it. Integration endpoints listen on loopback here;
# the refusal of private endpoints (the default) is tested in tests/attacks/test_ssrf.py.
SETTINGS: dict[str, Any] = {
    "issuer": "http://tillkey.test",
    "integration_allow_private_endpoints": True,
    "sync_interval": 0.2,
}


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(params=inprocess.BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with inprocess.database(request.param, tmp_path) as settings:
        inprocess.cli_environment(monkeypatch, tmp_path, settings.get("database_url", ""))
        # The CLI activates too: it posts the handshake from the same settings as the app.
        monkeypatch.setenv("TILLKEY_ISSUER", SETTINGS["issuer"])
        monkeypatch.setenv("TILLKEY_INTEGRATION_ALLOW_PRIVATE_ENDPOINTS", "true")
        yield settings


@asynccontextmanager
async def store(
    tmp_path: Path, db: dict[str, Any], *, admins: bool = True, **settings: Any
) -> AsyncIterator[InProcess]:
    """The demo data and, with `admins`, alice (Administrators) and carol (role Catalog only)."""
    async with inprocess.running(tmp_path, **{**SETTINGS, **db, **settings}) as t:
        if admins:
            await t.create_admin("alice")
            await t.accounts.create_role(OPERATOR, "Catalog", ["Magento_Catalog::catalog"])
            await t.create_admin("carol", role="Catalog")
        await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


@asynccontextmanager
async def serving(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[tuple[InProcess, str]]:
    """`store`, and the loopback URL requests-oauthlib calls it at."""
    async with store(tmp_path, db, **settings) as t, inprocess.listening(t) as url:
        yield t, url


async def create(*resources: str, endpoint: str | None = None) -> dict[str, Any]:
    args = ["integration", "create", "--name", f"erp-{secrets.token_hex(4)}"]
    args += [a for r in resources for a in ("--resource", r)] if resources else ["--all"]
    if endpoint:
        args += ["--endpoint-url", endpoint]
    created: dict[str, Any] = await inprocess.cli_json(*args)
    return created


async def activate(integration: dict[str, Any]) -> dict[str, Any]:
    done: dict[str, Any] = await inprocess.cli_json("integration", "activate", integration["name"])
    return done


async def manual(*resources: str) -> tuple[dict[str, Any], dict[str, Any]]:
    integration = await create(*resources)
    return integration, await activate(integration)


def auth(integration: dict[str, Any], tokens: dict[str, Any], **kw: Any) -> OAuth1:
    kw.setdefault("signature_method", SIGNATURE_HMAC_SHA256)
    return OAuth1(
        integration["consumer_key"],
        integration["consumer_secret"],
        tokens["access_token"],
        tokens["access_token_secret"],
        **kw,
    )


async def get(url: str, a: OAuth1) -> requests.Response:
    """requests.get in a thread, the app serving meanwhile."""
    return await asyncio.to_thread(requests.get, url, auth=a, timeout=10)


async def send(prepared: requests.PreparedRequest) -> requests.Response:
    return await asyncio.to_thread(requests.Session().send, prepared)


async def get_products(url: str, a: OAuth1, expect: int = 200, path: str = "/rest/V1/products") -> requests.Response:
    """The app follows the CLI's changes through the change feed (sync interval 0.2 s here)."""

    async def check() -> list[requests.Response]:
        r = await get(url + path, a)
        assert r.status_code == expect, r.text
        return [r]  # a Response of 4xx is falsy

    [r] = await until(check, what=f"{path} answering {expect}")
    return r


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


async def audit_refusals() -> list[dict[str, Any]]:
    out = (await inprocess.cli("audit", "search", "--event", "oauth1.refused", "--limit", "200", "--json")).stdout
    return [json.loads(line) for line in out.splitlines()]


# --- it works -------------------------------------------------------------------------------------


def test_manual_activation_then_signed_get_products_with_requests_oauthlib(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            assert len(integration["consumer_key"]) == 32 and len(integration["consumer_secret"]) == 32
            assert len(tokens["access_token"]) == 32 and len(tokens["access_token_secret"]) == 32
            assert tokens["access_token"].isalnum() and tokens["access_token"] == tokens["access_token"].lower()
            r = await get_products(url, auth(integration, tokens))
            assert r.headers["content-type"] == "application/json; charset=utf-8"
            assert {p["sku"] for p in r.json()["items"]} >= {"24-MB01", "24-WG02"}
            # The store-code prefixes are signed as the client addressed them.
            for prefix in ("/rest/all/V1", "/rest/default/V1"):
                one = await get_products(url, auth(integration, tokens), path=f"{prefix}/products/24-MB01")
                assert one.json()["sku"] == "24-MB01"

    inprocess.run(body)


def test_secret_is_shown_once_and_never_listed(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with store(tmp_path, db):
            integration, tokens = await manual(PRODUCTS)
            listed = (await inprocess.cli_json("integration", "list"))["integrations"]
            mine = next(i for i in listed if i["name"] == integration["name"])
            assert mine["status"] == "active" and mine["has_access_token"] is True
            assert mine["resources"] == [PRODUCTS]
            text = json.dumps(listed)
            for secret in (integration["consumer_secret"], tokens["access_token"], tokens["access_token_secret"]):
                assert secret not in text

    inprocess.run(body)


def test_endpoint_handshake_with_requests_oauthlib(tmp_path: Path, db: dict[str, Any], endpoint: Endpoint) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (t, url):
            integration = await create(PRODUCTS, endpoint=endpoint.url)
            # Activation through the admin API this time (an admin holding Magento_Integration::integrations).
            alice = t.bearer(await t.admin_token("alice"))
            r = await t.client.post(f"/tillkey/v1/integrations/{integration['id']}/activate", headers=alice)
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
            request_token = await asyncio.to_thread(oauth.fetch_request_token, url + "/oauth/token/request")
            assert len(request_token["oauth_token"]) == 32 and len(request_token["oauth_token_secret"]) == 32
            access = await asyncio.to_thread(
                oauth.fetch_access_token, url + "/oauth/token/access", verifier=posted["oauth_verifier"]
            )
            assert set(access) == {"oauth_token", "oauth_token_secret"}
            assert access["oauth_token"] != request_token["oauth_token"]
            r = await asyncio.to_thread(oauth.get, url + "/rest/V1/products/24-MB01")
            assert r.status_code == 200 and r.json()["sku"] == "24-MB01"
            listed = (await t.client.get("/tillkey/v1/integrations", headers=alice)).json()["integrations"]
            assert next(i for i in listed if i["id"] == integration["id"])["status"] == "active"
            # The request token was spent by the exchange.
            again = OAuth1Session(
                integration["consumer_key"],
                integration["consumer_secret"],
                request_token["oauth_token"],
                request_token["oauth_token_secret"],
                verifier=posted["oauth_verifier"],
                signature_method=SIGNATURE_HMAC_SHA256,
            )
            r = await asyncio.to_thread(again.post, url + "/oauth/token/access")
            assert r.status_code == 401
            assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
            assert dict(parse_qsl(r.text)) == {"oauth_problem": BAD_SIGNATURE["message"]}

    inprocess.run(body)


def test_admin_api_creates_with_resources_and_needs_the_integrations_resource(
    tmp_path: Path, db: dict[str, Any]
) -> None:
    async def body() -> None:
        async with store(tmp_path, db) as t:
            alice = t.bearer(await t.admin_token("alice"))

            async def post(path: str, json: dict[str, Any]) -> httpx.Response:
                return await t.client.post(path, json=json, headers=alice)

            name = f"api-{secrets.token_hex(4)}"
            r = await post("/tillkey/v1/integrations", {"name": name, "resources": [PRODUCTS]})
            assert r.status_code == 201, r.text
            created = r.json()
            assert created["name"] == name and len(created["consumer_secret"]) == 32
            assert created["resources"] == [PRODUCTS]
            assert (await post("/tillkey/v1/integrations", {"name": name, "all": True})).status_code == 409
            bad = await post("/tillkey/v1/integrations", {"name": "x", "resources": ["Nope::nothing"]})
            assert bad.status_code == 400 and "Nope::nothing" in bad.json()["message"]
            both = await post("/tillkey/v1/integrations", {"name": "y", "resources": [PRODUCTS], "all": True})
            assert both.status_code == 400
            carol = t.bearer(await t.admin_token("carol"))  # role Catalog only
            assert (await t.client.get("/tillkey/v1/integrations", headers=carol)).status_code == 403
            assert (await t.client.get("/tillkey/v1/integrations")).status_code == 401
            assert (await post("/tillkey/v1/integrations/999999/activate", {})).status_code == 404

    inprocess.run(body)


# --- refusals ---------------------------------------------------------------------------------------


def test_bad_signature_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            forged = dict(integration, consumer_secret="x" * 32)
            r = await get(f"{url}/rest/V1/products", auth(forged, tokens))
            assert r.status_code == 401
            assert r.json() == BAD_SIGNATURE
            assert "www-authenticate" not in r.headers  # Magento sends none
            # A signature for another path does not fit this one.
            signed = requests.Request("GET", f"{url}/rest/V1/orders", auth=auth(integration, tokens)).prepare()
            signed.url = f"{url}/rest/V1/products"
            assert (await send(signed)).status_code == 401
            refusals = await audit_refusals()
            reasons = [r["details"]["reason"] for r in refusals if r["actor_id"] == integration["id"]]
            assert "bad signature" in reasons
            dump = json.dumps(refusals)
            assert integration["consumer_secret"] not in dump and tokens["access_token"] not in dump

    inprocess.run(body)


def test_wrong_consumer_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            a, _ = await manual(PRODUCTS)
            b, b_tokens = await manual(PRODUCTS)
            await get_products(url, auth(b, b_tokens))
            # A's consumer credentials with B's access token (and B's token secret): still refused.
            r = await get(f"{url}/rest/V1/products", auth(a, b_tokens))
            assert r.status_code == 401 and r.json() == BAD_SIGNATURE
            unknown = dict(a, consumer_key="0" * 32)
            r = await get(f"{url}/rest/V1/products", auth(unknown, b_tokens))
            assert r.status_code == 401 and r.json() == BAD_SIGNATURE
            short = dict(a, consumer_key="abc")
            r = await get(f"{url}/rest/V1/products", auth(short, b_tokens))
            assert r.status_code == 401 and r.json() == {"message": "Consumer key is not the correct length"}

    inprocess.run(body)


def test_reused_nonce_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            signed = requests.Request("GET", f"{url}/rest/V1/products", auth=auth(integration, tokens)).prepare()
            session = requests.Session()
            assert (await asyncio.to_thread(session.send, signed)).status_code == 200
            replay = await asyncio.to_thread(session.send, signed)
            assert replay.status_code == 401
            assert replay.json() == {
                "message": "The nonce is already being used by the consumer with ID %1",
                "parameters": [str(integration["id"])],
            }

    inprocess.run(body)


def test_timestamp_too_far_ahead_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            now = int(t.clock.now())  # the server's clock
            ahead = auth(integration, tokens, timestamp=str(now + 900))
            r = await get(f"{url}/rest/V1/products", ahead)
            assert r.status_code == 401 and r.json() == {"message": "An error occurred validating the nonce"}
            near = auth(integration, tokens, timestamp=str(now + 300))
            assert (await get(f"{url}/rest/V1/products", near)).status_code == 200

    inprocess.run(body)


def test_stale_token_after_reauthorization_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, old = await manual(PRODUCTS)
            await get_products(url, auth(integration, old))
            new = await activate(integration)
            assert new["access_token"] != old["access_token"]
            await get_products(url, auth(integration, old), expect=401)
            await get_products(url, auth(integration, new))

    inprocess.run(body)


def test_revoked_integration_token_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            await inprocess.cli("integration", "revoke", integration["name"])
            r = await get_products(url, auth(integration, tokens), expect=401)
            assert r.json() == BAD_SIGNATURE
            listed = (await inprocess.cli_json("integration", "list"))["integrations"]
            assert next(i for i in listed if i["id"] == integration["id"])["has_access_token"] is False

    inprocess.run(body)


def test_inactive_integration_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            await inprocess.cli("integration", "deactivate", integration["name"])
            r = await get_products(url, auth(integration, tokens), expect=401)
            # Magento: the call of an inactive integration is a guest's, refused by the access check.
            assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": PRODUCTS}}
            # Activation again issues a new token; the old one stays dead.
            new = await activate(integration)
            await get_products(url, auth(integration, new))
            await get_products(url, auth(integration, tokens), expect=401)
            assert any(
                r["details"]["reason"] == "inactive integration"
                for r in await audit_refusals()
                if r["actor_id"] == integration["id"]
            )

    inprocess.run(body)


def test_deleted_integration_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            await inprocess.cli("integration", "delete", integration["name"])
            assert (await get_products(url, auth(integration, tokens), expect=401)).json() == BAD_SIGNATURE

    inprocess.run(body)


def test_integration_grant_is_enforced(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            r = await get(f"{url}/rest/V1/orders", auth(integration, tokens))
            assert r.status_code == 403
            assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "Magento_Sales::actions_view"}}
            # `--all` grants everything, as a role with Magento_Backend::all.
            everything, all_tokens = await manual()
            await get_products(url, auth(everything, all_tokens), path="/rest/V1/orders")

    inprocess.run(body)


def test_hmac_sha1_is_refused_unless_allowed(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            sha1 = auth(integration, tokens, signature_method=SIGNATURE_HMAC_SHA1)
            r = await get(f"{url}/rest/V1/products", sha1)
            assert r.status_code == 400
            assert r.json() == {"message": "Signature method %1 is not supported", "parameters": ["HMAC-SHA1"]}

    inprocess.run(body)


def test_hmac_sha1_works_when_the_setting_allows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with serving(tmp_path, {}, oauth1_allow_hmac_sha1=True) as (_t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens, signature_method=SIGNATURE_HMAC_SHA1))

    inprocess.run(body)


def _sign_by_hand(
    method: str,
    url: str,
    params: list[tuple[str, str]],
    integration: dict[str, Any],
    tokens: dict[str, Any],
    order: Callable[[list[tuple[str, str]]], list[tuple[str, str]]],
    now: float,
) -> str:
    """An Authorization header whose signature covers `params` in the given order (oauthlib's
    pieces for the encoding and the HMAC; the order is the test's)."""
    oauth = [
        ("oauth_consumer_key", integration["consumer_key"]),
        ("oauth_nonce", secrets.token_hex(8)),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", str(int(now))),
        ("oauth_token", tokens["access_token"]),
        ("oauth_version", "1.0"),
    ]
    pairs = order([(signature.utils.escape(k), signature.utils.escape(v)) for k, v in [*params, *oauth]])
    base = signature.signature_base_string(method, url, "&".join(f"{k}={v}" for k, v in pairs))
    client = SimpleNamespace(
        client_secret=integration["consumer_secret"], resource_owner_secret=tokens["access_token_secret"]
    )
    sig = signature.sign_hmac_sha256_with_client(base, client)
    fields = [*oauth, ("oauth_signature", sig)]
    return "OAuth " + ", ".join(f'{k}="{signature.utils.escape(v)}"' for k, v in fields)


def test_magento_natural_order_and_rfc_byte_order_are_both_accepted(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with store(tmp_path, db) as t:
            integration, tokens = await manual(PRODUCTS)
            url = f"{BASE_URL}/rest/V1/products"
            query = [("searchCriteria[pageSize]", "2"), ("f10", "a"), ("f9", "b")]
            now = t.clock.now()
            # Byte order puts f10 before f9; PHP's strnatcmp (Laminas, Magento) puts f9 before f10.
            natural = _sign_by_hand("GET", url, query, integration, tokens, lambda p: sorted(p, key=_nat), now)
            byte_order = _sign_by_hand("GET", url, query, integration, tokens, sorted, now)
            neither = _sign_by_hand("GET", url, query, integration, tokens, lambda p: sorted(p, reverse=True), now)

            async def signed_get(header: str) -> httpx.Response:
                return await t.client.get(url, params=query, headers={"Authorization": header})

            # The app learns the new token through the change feed: wait for it (a fresh nonce each try).
            async def known() -> bool:
                header = _sign_by_hand("GET", url, query, integration, tokens, sorted, t.clock.now())
                return (await signed_get(header)).status_code == 200

            await until(known, what="the new integration token known to the app")
            for header, status in ((natural, 200), (byte_order, 200), (neither, 401)):
                r = await signed_get(header)
                assert r.status_code == status, r.text

    inprocess.run(body)


def _nat(pair: tuple[str, str]) -> tuple[Any, ...]:
    # Enough natural order for this test's names: f9 < f10, and the others by bytes.
    k = pair[0]
    return (k[0], int(k[1:])) if k[0] == "f" and k[1:].isdigit() else (k, 0)


def test_form_body_is_signed_and_json_body_is_not(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, base):
            integration, tokens = await manual(PRODUCTS)
            await get_products(base, auth(integration, tokens))
            # A route integrations may not use: 403 means the signature was accepted, 401 that it was not.
            url = f"{base}/rest/V1/integration/customer/revoke-customer-token"
            signed = requests.Request("POST", url, data={"customer": "7"}, auth=auth(integration, tokens)).prepare()
            content_type = signed.headers["Content-Type"]
            assert content_type in (b"application/x-www-form-urlencoded", "application/x-www-form-urlencoded")
            assert (await send(signed)).status_code == 403
            tampered = requests.Request("POST", url, data={"customer": "8"}, auth=auth(integration, tokens)).prepare()
            tampered.body = "customer=9"
            tampered.headers["Content-Length"] = str(len(tampered.body))
            assert (await send(tampered)).status_code == 401
            # JSON bodies are outside the signature (Magento signs only header, form body and query).
            signed_json = requests.Request("POST", url, json={"customer": 7}, auth=auth(integration, tokens)).prepare()
            signed_json.body = b'{"customer": 8}'
            assert (await send(signed_json)).status_code == 403

    inprocess.run(body)


def test_token_endpoint_errors_are_form_encoded_oauth_problems(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (t, base):
            integration = await create(PRODUCTS)
            url = f"{base}/oauth/token/request"
            # No handshake in progress (never activated with an endpoint): Magento's expired consumer.
            session = OAuth1Session(
                integration["consumer_key"], integration["consumer_secret"], signature_method=SIGNATURE_HMAC_SHA256
            )
            r = await asyncio.to_thread(session.post, url)
            assert r.status_code == 401
            assert dict(parse_qsl(r.text)) == {"oauth_problem": "Consumer key has expired"}
            stranger = OAuth1Session("z" * 32, "y" * 32, signature_method=SIGNATURE_HMAC_SHA256)
            r = await asyncio.to_thread(stranger.post, url)
            assert r.status_code == 401 and dict(parse_qsl(r.text)) == {"oauth_problem": BAD_SIGNATURE["message"]}
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            path = "/oauth/token/request"
            unsigned = urlencode({"oauth_consumer_key": integration["consumer_key"]})
            h = await t.client.post(path, content=unsigned, headers=form)
            assert h.status_code == 400
            assert dict(parse_qsl(h.text)) == {
                "oauth_problem": ", ".join(
                    f'"{p}" is required. Enter and try again.'
                    for p in ("oauth_signature", "oauth_signature_method", "oauth_nonce", "oauth_timestamp")
                )
            }
            h = await t.client.post("/oauth/token/access", headers={"Authorization": "OAuth garbage"})
            assert h.status_code == 400 and "oauth_problem" in dict(parse_qsl(h.text))
            # Errors raised outside the handlers (wrong method, body too large) are form-encoded too.
            h = await t.client.get(path)
            assert h.status_code == 405 and h.headers["content-type"].startswith("application/x-www-form-urlencoded")
            assert "oauth_problem" in dict(parse_qsl(h.text))
            h = await t.client.post(path, content=b"a=" + b"x" * 2_000_000, headers=form)
            assert h.status_code == 413 and "oauth_problem" in dict(parse_qsl(h.text))

    inprocess.run(body)


def test_wrong_verifier_is_refused(tmp_path: Path, db: dict[str, Any], endpoint: Endpoint) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (_t, url):
            integration = await create(PRODUCTS, endpoint=endpoint.url)
            await activate(integration)
            [posted] = endpoint.posts
            oauth = OAuth1Session(
                integration["consumer_key"], integration["consumer_secret"], signature_method="HMAC-SHA256"
            )
            await asyncio.to_thread(oauth.fetch_request_token, url + "/oauth/token/request")
            r = await asyncio.to_thread(oauth.post, url + "/oauth/token/access", data={"oauth_verifier": "0" * 32})
            assert r.status_code == 401 and dict(parse_qsl(r.text)) == {"oauth_problem": "Verifier is invalid"}
            assert await asyncio.to_thread(
                oauth.fetch_access_token, url + "/oauth/token/access", verifier=posted["oauth_verifier"]
            )

    inprocess.run(body)


def test_unreachable_endpoint_is_a_clear_cli_error(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with store(tmp_path, db):
            integration = await create(PRODUCTS, endpoint="http://127.0.0.1:9/nothing-listens-here")
            res = await inprocess.cli("integration", "activate", integration["name"], check=False)
            assert res.exit_code == 1
            assert res.stderr.startswith("error: The activation could not be delivered to the integration's endpoint.")

    inprocess.run(body)


def test_integration_token_as_bearer_is_off_by_default(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with serving(tmp_path, db) as (t, url):
            integration, tokens = await manual(PRODUCTS)
            await get_products(url, auth(integration, tokens))
            r = await t.client.get("/rest/V1/products", headers=t.bearer(tokens["access_token"]))
            assert r.status_code == 401
            assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": PRODUCTS}}

    inprocess.run(body)


# --- integration tokens as Bearer (TILLKEY_INTEGRATION_AS_BEARER=true) ---------------------------


def test_integration_token_as_bearer_when_enabled(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with store(tmp_path, db, admins=False, integration_as_bearer=True) as t:
            integration, tokens = await manual(PRODUCTS)
            bearer = t.bearer(tokens["access_token"])

            async def works() -> bool:
                r = await t.client.get("/rest/all/V1/products/24-MB01", headers=bearer)
                assert r.status_code == 200, r.text
                return True

            await until(works, what="the integration token accepted as a bearer token")
            assert (await t.client.get("/rest/V1/orders", headers=bearer)).status_code == 403
            # The token secret is no bearer token, and an unknown token of the same shape is a guest.
            for wrong in (tokens["access_token_secret"], "a" * 32):
                assert (await t.client.get("/rest/V1/products", headers=t.bearer(wrong))).status_code == 401
            await inprocess.cli("integration", "revoke", integration["name"])

            async def revoked() -> bool:
                return (await t.client.get("/rest/V1/products", headers=bearer)).status_code == 401

            await until(revoked, what="the revoked token refused")

    inprocess.run(body)


def test_admin_jwts_still_work_beside_integration_bearer(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with store(tmp_path, db, admins=False, integration_as_bearer=True) as t:
            await inprocess.cli(
                "admin",
                "create",
                "--username",
                f"a{secrets.token_hex(3)}",
                "--email",
                "x@example.com",
                "--password",
                inprocess.ADMIN_PASSWORD,
            )
            listed = (await inprocess.cli_json("admin", "list"))["admins"]
            token = await t.admin_token(listed[-1]["username"])
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code == 200

    inprocess.run(body)
