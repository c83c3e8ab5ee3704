"""A customer links an identity provider to its account (issue 14 item 5), against the real
oidc-provider of tests/test_federation_oidc.py: signed in (its bearer token), it starts the flow
with link intent, and the provider's callback, relayed with the same customer's token, links the
(provider, subject) to that customer. An email match alone never links (the refusal says how)."""

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
    STOREFRONT_CALLBACK,
    OpenIDProvider,
    openid_provider,
    sign_in_at_provider,
)
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.federation.linking import LINK_FIRST, LINK_NOT_SIGN_IN, LINKED_ELSEWHERE, NOT_A_LINK
from tillkey.federation.providers import NewProvider
from tillkey.store.audit import AuditQuery

pytestmark = pytest.mark.interop

ACCOUNTS = {
    "eve": {"claims": {"email": "victim@shop.example", "email_verified": True}},
    "grace": {"claims": {"email": "grace@shop.example", "email_verified": True}},
    "ada": {"claims": {"email": "ada@shop.example", "email_verified": True}},
}
LINK = "/store/customers/me/identities/corp"


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    with openid_provider(ACCOUNTS, [STOREFRONT_CALLBACK], tmp_path_factory.mktemp("op")) as started:
        yield started


async def _setup(t: inprocess.InProcess, op: OpenIDProvider) -> dict[str, str]:
    fields: dict[str, Any] = {
        "name": "corp",
        "issuer": op.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "actor": "customer",
        "redirect_uri": STOREFRONT_CALLBACK,
        "provisioning": "jit",
    }
    await t.tk.services.identity_providers.add(OPERATOR, NewProvider(**fields))
    key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
    return {"x-publishable-api-key": key.token}


async def _as(t: inprocess.InProcess, shop: dict[str, str], email: str) -> dict[str, str]:
    await t.create_customer(email)
    return {**shop, **t.bearer(await t.customer_token(email))}  # its password: it proved itself


async def _link_query(t: inprocess.InProcess, headers: dict[str, str], account: str) -> dict[str, str]:
    r = await t.client.post(LINK, json={}, headers=headers)
    assert r.status_code == 200, r.text
    return await sign_in_at_provider(r.json()["location"], account, STOREFRONT_CALLBACK)


async def _sign_in_query(t: inprocess.InProcess, account: str) -> dict[str, str]:
    r = await t.client.post("/auth/customer/corp", json={})
    assert r.status_code == 200, r.text
    return await sign_in_at_provider(r.json()["location"], account, STOREFRONT_CALLBACK)


async def _refusals(t: inprocess.InProcess) -> list[str]:
    found = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, limit=100))
    return [str(json.loads(e.details or "{}").get("reason", "")) for e in found]


def _running(tmp_path: Path) -> Any:
    return inprocess.running(tmp_path, federation_allow_private_endpoints=True)


def test_a_signed_in_customer_links_the_provider_its_email_matched(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            shop = await _setup(t, op)
            victim = await _as(t, shop, "victim@shop.example")
            # The email matches, so the first sign-in is refused, and told how to link.
            r = await t.client.get("/auth/customer/corp/callback", params=await _sign_in_query(t, "eve"))
            assert r.status_code == 401 and r.json()["message"] == LINK_FIRST
            assert "sign in" in LINK_FIRST.lower() and "link" in LINK_FIRST

            query = await _link_query(t, victim, "eve")
            r = await t.client.post(f"{LINK}/callback", params=query, headers=victim)
            assert r.status_code == 200, r.text
            [identity] = r.json()["identities"]
            assert identity["provider"] == "corp" and identity["email"] == "victim@shop.example"
            linked = await t.tk.audit.search(AuditQuery(event=audit.IDENTITY_LINKED, limit=10))
            assert [json.loads(e.details or "{}")["via"] for e in linked] == ["signed-in account"]
            listed = await t.client.get("/store/customers/me/identities", headers=victim)
            assert [i["id"] for i in listed.json()["identities"]] == [identity["id"]]

            # From now on the provider signs in to that customer.
            r = await t.client.get("/auth/customer/corp/callback", params=await _sign_in_query(t, "eve"))
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            me = await t.client.get("/store/customers/me", headers={**shop, **t.bearer(token)})
            assert me.json()["customer"]["email"] == "victim@shop.example"
            assert jwt.decode(token, options={"verify_signature": False})["idp"] == "corp"

    inprocess.run(body)


def test_a_link_is_bound_to_the_customer_that_started_it(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with _running(tmp_path) as t:
            shop = await _setup(t, op)
            alice = await _as(t, shop, "alice@shop.example")
            bob = await _as(t, shop, "bob@shop.example")

            # Alice's link flow, finished by Bob's callback: refused, and the flow is spent.
            query = await _link_query(t, alice, "grace")
            r = await t.client.post(f"{LINK}/callback", params=query, headers=bob)
            assert r.status_code == 401, r.text
            assert any("finished by customer" in reason for reason in await _refusals(t))
            r = await t.client.post(f"{LINK}/callback", params=query, headers=alice)
            assert r.status_code == 401, r.text  # replayed
            for who in (alice, bob):
                assert (await t.client.get("/store/customers/me/identities", headers=who)).json()["identities"] == []

            # A plain sign-in's state cannot be turned into a link, nor a link's into a sign-in.
            r = await t.client.post(f"{LINK}/callback", json=await _sign_in_query(t, "grace"), headers=alice)
            assert r.status_code == 401 and r.json()["message"] == NOT_A_LINK
            r = await t.client.get("/auth/customer/corp/callback", params=await _link_query(t, alice, "grace"))
            assert r.status_code == 401 and r.json()["message"] == LINK_NOT_SIGN_IN
            magento = "/rest/V1/tillkey/federation/customer/corp/token"
            r = await t.client.post(magento, json=await _link_query(t, alice, "grace"))
            assert r.status_code == 401 and r.json()["message"] == LINK_NOT_SIGN_IN

            # Linked to Alice, the subject is never moved to Bob.
            r = await t.client.post(f"{LINK}/callback", params=await _link_query(t, alice, "grace"), headers=alice)
            assert r.status_code == 200, r.text
            r = await t.client.post(f"{LINK}/callback", params=await _link_query(t, bob, "grace"), headers=bob)
            assert r.status_code == 409 and r.json()["message"] == LINKED_ELSEWHERE
            # Linking it again to Alice changes nothing.
            r = await t.client.post(f"{LINK}/callback", params=await _link_query(t, alice, "grace"), headers=alice)
            assert r.status_code == 200 and len(r.json()["identities"]) == 1

            # No customer, no link: without a token, or with the actorless token of a registration.
            assert (await t.client.post(LINK, json={}, headers=shop)).status_code == 401
            r = await t.client.get("/auth/customer/corp/callback", params=await _sign_in_query(t, "ada"))
            registration = {**shop, **t.bearer(r.json()["token"])}
            r = await t.client.post(LINK, json={}, headers=registration)
            assert r.status_code == 401, r.text
            r = await t.client.post(f"{LINK}/callback", json={"code": "c", "state": "s"}, headers=registration)
            assert r.status_code == 401, r.text

    inprocess.run(body)
