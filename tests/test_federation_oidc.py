"""Sign-in with an external OpenID provider (issue 14), against a real one nobody here wrote:
panva's oidc-provider from npm (tests/js/oidc-op) on loopback. Tillkey runs in-process; the test
is the browser (follows the provider's redirects, signs in on its login page) and the storefront
(relays the callback to /auth/customer/{provider}/callback, as @medusajs/js-sdk's auth.callback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.federation_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONSOLE_CALLBACK,
    STOREFRONT_CALLBACK,
    OpenIDProvider,
    openid_provider,
    sign_in_at_provider,
)
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.federation.linking import EMAIL_UNVERIFIED, LINK_FIRST
from tillkey.federation.providers import NewProvider
from tillkey.store.audit import AuditQuery

pytestmark = pytest.mark.interop

ACCOUNTS = {
    "ada": {"claims": {"email": "ada@shop.example", "email_verified": True, "name": "Ada"}},
    "grace": {"claims": {"email": "grace@shop.example", "email_verified": True}},
    "mallory": {"claims": {"email": "victim@shop.example", "email_verified": False}},
    "eve": {"claims": {"email": "victim@shop.example", "email_verified": True}},
    "trusted": {"claims": {"email": "staff@corp.example", "email_verified": True}},
}


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    with openid_provider(ACCOUNTS, [STOREFRONT_CALLBACK, CONSOLE_CALLBACK], tmp_path_factory.mktemp("op")) as started:
        yield started


async def _add(t: inprocess.InProcess, op: OpenIDProvider, name: str = "corp", **extra: Any) -> None:
    fields: dict[str, Any] = {
        "name": name,
        "issuer": op.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "actor": "customer",
        "redirect_uri": STOREFRONT_CALLBACK,
        "provisioning": "jit",
        **extra,
    }
    await t.tk.services.identity_providers.add(OPERATOR, NewProvider(**fields))


async def _callback_query(t: inprocess.InProcess, account: str, provider: str = "corp") -> dict[str, str]:
    r = await t.client.post(f"/auth/customer/{provider}", json={})
    assert r.status_code == 200, r.text
    return await sign_in_at_provider(r.json()["location"], account, STOREFRONT_CALLBACK)


def _running(tmp_path: Path) -> Any:
    return inprocess.running(tmp_path, federation_allow_private_endpoints=True)


def _claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_customer_signs_in_registers_and_comes_back(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            await _add(t, op, display_name="Corp SSO")
            listed = (await t.client.get("/auth/customer/providers")).json()["providers"]
            assert {"id": "corp", "identifier": "corp", "display_name": "Corp SSO", "flow": "redirect"} in listed

            query = await _callback_query(t, "ada")
            assert query["iss"] == op.issuer  # RFC 9207: the provider names itself
            r = await t.client.get("/auth/customer/corp/callback", params=query)
            assert r.status_code == 200, r.text
            registration = r.json()["token"]
            claims = _claims(registration)
            assert claims["actor_id"] == "" and claims["auth_provider"] == "corp" and claims["idp"] == "corp"
            assert "fed" in claims["amr"]

            # Medusa's next step: the storefront creates the customer with the actorless token.
            key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
            shop = {"x-publishable-api-key": key.token}
            headers = {**t.bearer(registration), **shop}
            r = await t.client.post("/store/customers", json={"first_name": "Ada"}, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["customer"]["email"] == "ada@shop.example"
            r = await t.client.post("/auth/token/refresh", headers=t.bearer(registration))
            me = await t.client.get("/store/customers/me", headers={**t.bearer(r.json()["token"]), **shop})
            assert me.status_code == 200 and me.json()["customer"]["email"] == "ada@shop.example"

            # The next sign-in lands on that customer directly, through the sign-in state machine.
            query = await _callback_query(t, "ada")
            r = await t.client.get("/auth/customer/corp/callback", params=query)
            assert r.status_code == 200, r.text
            claims = _claims(r.json()["token"])
            assert claims["actor_id"].startswith("cus_") and claims["idp"] == "corp" and "fed" in claims["amr"]
            me = await t.client.get("/store/customers/me", headers={**t.bearer(r.json()["token"]), **shop})
            assert me.json()["customer"]["email"] == "ada@shop.example"

            events = await _events(t)
            assert audit.IDENTITY_PROVISIONED in events and audit.LOGIN_EXTERNAL in events

    inprocess.run(body)


def test_a_replayed_callback_and_a_forged_state_are_refused(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            await _add(t, op)
            query = await _callback_query(t, "grace")
            forged = await t.client.get("/auth/customer/corp/callback", params={**query, "state": "forged"})
            assert forged.status_code == 401 and forged.json()["type"] == "unauthorized"
            assert (await t.client.get("/auth/customer/corp/callback", params=query)).status_code == 200
            replay = await t.client.get("/auth/customer/corp/callback", params=query)
            assert replay.status_code == 401, replay.text
            failures = await _refusals(t)
            assert any("state" in reason for reason in failures)

    inprocess.run(body)


def test_mix_up_an_iss_of_another_provider_is_refused(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            await _add(t, op)
            query = await _callback_query(t, "grace")
            r = await t.client.get("/auth/customer/corp/callback", params={**query, "iss": "https://evil.example"})
            assert r.status_code == 401, r.text
            assert any("mix-up" in reason for reason in await _refusals(t))

    inprocess.run(body)


def test_an_email_never_takes_over_an_existing_account(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            await t.create_customer("victim@shop.example")
            await _add(t, op)
            # Unverified: never trusted, never provisioned from.
            r = await t.client.get("/auth/customer/corp/callback", params=await _callback_query(t, "mallory"))
            assert r.status_code == 401 and r.json()["message"] == EMAIL_UNVERIFIED
            # Verified, but the account exists already: sign in to it and link from there.
            r = await t.client.get("/auth/customer/corp/callback", params=await _callback_query(t, "eve"))
            assert r.status_code == 401 and r.json()["message"] == LINK_FIRST

    inprocess.run(body)


def test_a_provider_trusted_for_a_domain_links_its_verified_emails(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            existing = await t.create_customer("staff@corp.example")
            await _add(t, op, provisioning="existing", allowed_domains=["corp.example"], trust_email_domains=True)
            r = await t.client.get("/auth/customer/corp/callback", params=await _callback_query(t, "trusted"))
            assert r.status_code == 200, r.text
            assert _claims(r.json()["token"])["actor_id"] == f"cus_{existing.id}"
            assert audit.IDENTITY_LINKED in await _events(t)
            # Outside the allowed domain: refused before any account is looked at.
            r = await t.client.get("/auth/customer/corp/callback", params=await _callback_query(t, "grace"))
            assert r.status_code == 401

    inprocess.run(body)


def test_a_disabled_or_unknown_provider_is_refused(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            await _add(t, op)
            query = await _callback_query(t, "grace")
            await t.tk.services.identity_providers.set_enabled("corp", False)
            r = await t.client.get("/auth/customer/corp/callback", params=query)
            assert r.status_code == 401 and "corp" in r.json()["message"]
            r = await t.client.post("/auth/customer/nosuch", json={})
            assert r.status_code == 401

    inprocess.run(body)


async def _events(t: inprocess.InProcess) -> list[str]:
    return [e.event for e in await t.tk.audit.search(AuditQuery(limit=500))]


async def _refusals(t: inprocess.InProcess) -> list[str]:
    found = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, limit=100))
    return [str(json.loads(e.details or "{}").get("reason", "")) for e in found]


def test_a_magento_storefront_signs_a_customer_in_by_redirect(tmp_path: Path, op: OpenIDProvider) -> None:
    """The Magento-style redirect flow: location, the provider, the storefront's callback page posts
    code and state, and gets a customer token (a bare JSON string) and the refresh cookie. The
    first sign-in creates the customer from the verified email; the next lands on it."""

    async def body() -> None:
        async with _running(tmp_path) as t:
            await _add(t, op)
            start = "/rest/V1/tillkey/federation/customer/corp"
            customers: list[int] = []
            for _ in range(2):
                r = await t.client.post(start, json={})
                assert r.status_code == 200, r.text
                query = await sign_in_at_provider(r.json()["location"], "grace", STOREFRONT_CALLBACK)
                r = await t.client.post(f"{start}/token", json=query)
                assert r.status_code == 200 and isinstance(r.json(), str), r.text
                assert r.cookies.get("tillkey_refresh")
                me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(r.json()))
                assert me.status_code == 200 and me.json()["email"] == "grace@shop.example", me.text
                customers.append(me.json()["id"])
            assert customers[0] == customers[1]  # created once, then signed in to
            # The refresh cookie trades for a new customer token, as after a password sign-in.
            cookie = {"Cookie": f"tillkey_refresh={r.cookies['tillkey_refresh']}"}
            refreshed = await t.client.post("/rest/V1/integration/token/refresh", headers=cookie)
            assert refreshed.status_code == 200 and isinstance(refreshed.json(), str), refreshed.text
            # The same code and state again, an unknown provider, a malformed body: 401, 401, 400.
            again = await t.client.post(f"{start}/token", json=query)
            assert again.status_code == 401 and "message" in again.json()
            assert (await t.client.post(f"{start}x/token", json=query)).status_code == 401
            assert (await t.client.post(f"{start}/token", json={"code": 1, "state": "s"})).status_code == 400
            # An unverified email provisions nothing.
            r = await t.client.post(start, json={})
            query = await sign_in_at_provider(r.json()["location"], "mallory", STOREFRONT_CALLBACK)
            refused = await t.client.post(f"{start}/token", json=query)
            assert refused.status_code == 401 and EMAIL_UNVERIFIED in refused.text

    inprocess.run(body)
