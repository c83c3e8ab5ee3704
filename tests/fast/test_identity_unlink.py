"""Linked identities, listed and removed by their account (issue 14): customers over the Medusa
store API, admins on the console's My account page. Removing the last way to sign in (no
password, one identity left) is refused with a 409 that says what to do."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tests import inprocess
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.crypto.passwords import unusable_hash
from tillkey.federation.providers import NewProvider
from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import idps as repo
from tillkey.store.audit import AuditQuery

PRIVATE = {"federation_allow_private_endpoints": True}


async def provider(t: inprocess.InProcess, name: str, actor: str) -> int:
    redirect = "https://shop.example/cb" if actor == "customer" else ""
    added = await t.tk.services.identity_providers.add(
        OPERATOR,
        NewProvider(
            name=name,
            issuer=f"http://127.0.0.1:9/{name}",
            client_id="c",
            actor=actor,
            display_name=name.title(),
            redirect_uri=redirect,
        ),
    )
    return added.id


async def link(t: inprocess.InProcess, provider_id: int, user_type: UserType, user_id: int, subject: str) -> int:
    """What a completed provider sign-in stores (federation/linking.py), without the provider."""
    async with t.tk.db.transaction() as s:
        linked = await repo.link(
            s,
            provider_id=provider_id,
            subject=subject,
            user_type=int(user_type),
            user_id=user_id,
            email=f"{subject}@example.com",
            auth_identity_id=None,
            now_ms=1_700_000_000_000,
        )
    return linked.id


async def unlinked_events(t: inprocess.InProcess) -> list[dict[str, object]]:
    found = await t.tk.audit.search(AuditQuery(event_prefix=audit.IDENTITY_UNLINKED, limit=50))
    return [json.loads(r.details or "{}") | {"actor_id": r.actor_id} for r in found]


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_a_customer_lists_and_removes_identities_but_not_the_last_way_in(tmp_path: Path, backend: str) -> None:
    async def body(db: dict[str, object]) -> None:
        async with inprocess.running(tmp_path, **PRIVATE, **db) as t:
            google, apple = await provider(t, "google", "customer"), await provider(t, "apple", "customer")
            # Provisioned from a provider: no password (as POST /store/customers makes it).
            ada = await t.create_customer("ada@example.com")
            async with t.tk.db.transaction() as s:
                await accounts_repo.set_customer_password_hash(s, ada.id, unusable_hash())
            bob = await t.create_customer("bob@example.com")  # has a password
            first = await link(t, google, UserType.CUSTOMER, ada.id, "ada-g")
            second = await link(t, apple, UserType.CUSTOMER, ada.id, "ada-a")
            bobs = await link(t, google, UserType.CUSTOMER, bob.id, "bob-g")
            key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
            shop = {"x-publishable-api-key": key.token}
            as_ada = {**shop, **t.bearer(await t.token_for(UserType.CUSTOMER, ada.id))}
            as_bob = {**shop, **t.bearer(await t.token_for(UserType.CUSTOMER, bob.id))}

            listed = await t.client.get("/store/customers/me/identities", headers=as_ada)
            assert listed.status_code == 200, listed.text
            assert [(i["id"], i["provider"]) for i in listed.json()["identities"]] == [
                (f"fedid_{first}", "google"),
                (f"fedid_{second}", "apple"),
            ]
            assert listed.json()["identities"][0]["email"] == "ada-g@example.com"
            # Nobody removes another's identity: not found, the same as none.
            for other in (f"fedid_{bobs}", "fedid_999", "nonsense", f"{bobs}"):
                r = await t.client.delete(f"/store/customers/me/identities/{other}", headers=as_ada)
                assert r.status_code == 404, (other, r.text)
            r = await t.client.delete(f"/store/customers/me/identities/fedid_{first}", headers=as_ada)
            assert r.status_code == 200 and r.json()["deleted"] is True, r.text
            # The last way in for an account with no password: refused, saying why.
            r = await t.client.delete(f"/store/customers/me/identities/fedid_{second}", headers=as_ada)
            assert r.status_code == 409, r.text
            assert "last way to sign in" in r.json()["message"]
            after = await t.client.get("/store/customers/me/identities", headers=as_ada)
            assert [i["provider"] for i in after.json()["identities"]] == ["apple"]
            # With a password, the only identity may go.
            r = await t.client.delete(f"/store/customers/me/identities/fedid_{bobs}", headers=as_bob)
            assert r.status_code == 200, r.text
            assert (await t.client.get("/store/customers/me/identities", headers=as_bob)).json()["identities"] == []
            # Without a customer's credential: nothing.
            anonymous = await t.client.get("/store/customers/me/identities", headers=shop)
            assert anonymous.status_code == 401
            events = await unlinked_events(t)
            assert sorted((e["actor_id"], e["provider"]) for e in events) == [(ada.id, "google"), (bob.id, "google")]

    with inprocess.database(backend, tmp_path) as db:
        inprocess.run(lambda: body(db))


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_two_removals_at_once_leave_the_last_way_in(tmp_path: Path, backend: str) -> None:
    """Both identities of a password-less account removed at the same moment: one goes, one stays."""

    async def body(db: dict[str, object]) -> None:
        async with inprocess.running(tmp_path, **PRIVATE, **db) as t:
            google, apple = await provider(t, "google", "customer"), await provider(t, "apple", "customer")
            ada = await t.create_customer("ada@example.com")
            async with t.tk.db.transaction() as s:
                await accounts_repo.set_customer_password_hash(s, ada.id, unusable_hash())
            ids = [
                await link(t, google, UserType.CUSTOMER, ada.id, "g"),
                await link(t, apple, UserType.CUSTOMER, ada.id, "a"),
            ]
            key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
            headers = {"x-publishable-api-key": key.token, **t.bearer(await t.token_for(UserType.CUSTOMER, ada.id))}
            answers = await asyncio.gather(
                *(t.client.delete(f"/store/customers/me/identities/fedid_{i}", headers=headers) for i in ids)
            )
            assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
            async with t.tk.db.session() as s:
                assert len(await repo.identities_of(s, int(UserType.CUSTOMER), ada.id)) == 1

    with inprocess.database(backend, tmp_path) as db:
        inprocess.run(lambda: body(db))


def test_an_admin_removes_identities_on_my_account_with_confirmation(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **PRIVATE) as t:
            corp, okta = await provider(t, "corp", "admin"), await provider(t, "okta", "admin")
            root = await t.create_admin("root")
            async with t.tk.db.transaction() as s:  # provisioned from a provider: no password
                await accounts_repo.set_admin_password_hash(s, root.id, unusable_hash())
            first = await link(t, corp, UserType.ADMIN, root.id, "root-corp")
            second = await link(t, okta, UserType.ADMIN, root.id, "root-okta")
            console = await t.console_session(root.id)
            page = (await console.get("/console/account")).text
            assert f'action="/console/account/identities/{first}/remove"' in page
            assert 'data-confirm="Remove Corp from your account?"' in page
            # Without confirm=yes (no script ran): a confirmation page, nothing removed yet.
            asked = await console.post(f"/console/account/identities/{first}/remove")
            assert asked.status_code == 200 and "Remove this identity provider" in asked.text
            removed = await console.post(f"/console/account/identities/{first}/remove", {"confirm": "yes"})
            assert removed.status_code == 303, removed.text
            done = await console.get(removed.headers["location"])
            assert "The identity provider was removed." in done.text and "Corp:" not in done.text
            # The last one: refused on the account page, which says why; the identity stays.
            refused = await console.post(f"/console/account/identities/{second}/remove", {"confirm": "yes"})
            assert refused.status_code == 409, refused.text
            assert "last way to sign in" in refused.text and "Okta: root-okta@example.com" in refused.text
            # Another admin's identity is not this admin's to remove.
            other = await t.create_admin("other")
            theirs = await link(t, corp, UserType.ADMIN, other.id, "other-corp")
            r = await console.post(f"/console/account/identities/{theirs}/remove", {"confirm": "yes"})
            assert r.status_code == 404
            async with t.tk.db.session() as s:
                assert [i.id for i in await repo.identities_of(s, int(UserType.ADMIN), other.id)] == [theirs]
                assert [i.id for i in await repo.identities_of(s, int(UserType.ADMIN), root.id)] == [second]
            events = await unlinked_events(t)
            assert [(e["actor_id"], e["provider"]) for e in events] == [(root.id, "corp")]
            assert re.search(r"identity_id", json.dumps(events))

    inprocess.run(body)
