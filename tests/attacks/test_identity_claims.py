"""Identity pre-registration (issue 12): a Medusa identity registered for someone's email before the
shop creates that customer never claims the customer; linking an identity to an existing account
takes that account's own credential; `tillkey customer revoke-tokens` kills registration tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tillkey.cli import app as cli_app
from tillkey.principal import UserType

VICTIM = "victim@example.com"
ATTACKER_PASSWORD = "Attacker-pass-4-tests"


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _register(t: InProcess, email: str, password: str) -> str:
    r = await t.client.post("/auth/customer/emailpass/register", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _store_key(t: InProcess) -> dict[str, str]:
    await t.create_admin("keeper", email="keeper@example.com")
    r = await t.client.post("/auth/user/emailpass", json={"email": "keeper@example.com", "password": ADMIN_PASSWORD})
    made = await t.client.post(
        "/admin/api-keys", json={"title": "web", "type": "publishable"}, headers=t.bearer(r.json()["token"])
    )
    assert made.status_code == 200, made.text
    return {"x-publishable-api-key": made.json()["api_key"]["token"]}


async def _attacker_gets_nothing(t: InProcess, registration: str, store: dict[str, str]) -> None:
    """Every use the attacker would try next of the pre-registered identity's token."""
    headers = t.bearer(registration)
    refreshed = await t.client.post("/auth/token/refresh", headers=headers)
    assert refreshed.status_code == 401, refreshed.text
    assert (await t.client.post("/auth/session", headers=headers)).status_code == 401
    created = await t.client.post(
        "/store/customers", json={"email": VICTIM, "first_name": "Eve"}, headers={**headers, **store}
    )
    assert created.status_code in (401, 403, 409), created.text
    assert (await t.client.get("/store/customers/me", headers={**headers, **store})).status_code == 401


@pytest.mark.parametrize("victim_signs_in_on", ["medusa", "magento"])
def test_a_pre_registered_identity_never_becomes_the_customer_the_shop_creates(
    tmp_path: Path, victim_signs_in_on: str
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            store = await _store_key(t)
            registration = await _register(t, VICTIM, ATTACKER_PASSWORD)
            victim = await t.create_customer(VICTIM)  # the shop (CLI, import, console) creates her
            await _attacker_gets_nothing(t, registration, store)
            # She signs in with her own password: the pending identity changes hands, and the
            # attacker's registration token dies with it.
            if victim_signs_in_on == "medusa":
                mine = {"email": VICTIM, "password": CUSTOMER_PASSWORD}
                r = await t.client.post("/auth/customer/emailpass", json=mine)
                assert r.status_code == 200, r.text
                own = r.json()["token"]
            else:
                own = await t.customer_token(VICTIM)
            await _attacker_gets_nothing(t, registration, store)
            me = await t.client.get("/store/customers/me", headers={**t.bearer(own), **store})
            assert me.status_code == 200 and me.json()["customer"]["email"] == VICTIM
            # The attacker's password signs nobody in, and the email cannot be registered again.
            theirs = {"email": VICTIM, "password": ATTACKER_PASSWORD}
            wrong = await t.client.post("/auth/customer/emailpass", json=theirs)
            assert wrong.status_code == 401
            again = await t.client.post(
                "/auth/customer/emailpass/register", json={"email": VICTIM, "password": ATTACKER_PASSWORD}
            )
            assert again.status_code == 401
            assert victim.id

    inprocess.run(body)


def test_the_pending_identity_cannot_claim_the_customer_after_she_signed_in_on_medusa(tmp_path: Path) -> None:
    """The refresh of her own token (an identity relink without a password) revokes it too."""

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            store = await _store_key(t)
            await t.create_customer(VICTIM)
            # Registration refuses an email an account holds, whatever its case.
            taken = await t.client.post(
                "/auth/customer/emailpass/register", json={"email": VICTIM.upper(), "password": ATTACKER_PASSWORD}
            )
            assert taken.status_code == 401
            own = (
                await t.client.post("/auth/customer/emailpass", json={"email": VICTIM, "password": CUSTOMER_PASSWORD})
            ).json()["token"]
            renewed = await t.client.post("/auth/token/refresh", headers=t.bearer(own))
            assert renewed.status_code == 200
            claims = _claims(renewed.json()["token"])
            assert claims["actor_type"] == "customer" and claims["actor_id"].startswith("cus_")
            assert (await t.client.get("/store/customers/me", headers={**t.bearer(own), **store})).status_code == 200

    inprocess.run(body)


def test_register_create_refresh_still_gives_the_new_customer_its_token(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            store = await _store_key(t)
            registration = await _register(t, "new@example.com", CUSTOMER_PASSWORD)
            assert _claims(registration)["actor_id"] == ""
            # Registering again with the same password, before the customer exists (Medusa's behaviour).
            assert await _register(t, "new@example.com", CUSTOMER_PASSWORD)
            # A session from a pending registration is allowed, as Medusa does.
            assert (await t.client.post("/auth/session", headers=t.bearer(registration))).status_code == 200
            t.client.cookies.clear()
            created = await t.client.post(
                "/store/customers",
                json={"email": "new@example.com", "first_name": "N"},
                headers={**t.bearer(registration), **store},
            )
            assert created.status_code == 200, created.text
            customer_id = created.json()["customer"]["id"]
            refreshed = await t.client.post("/auth/token/refresh", headers=t.bearer(registration))
            assert refreshed.status_code == 200, refreshed.text
            token = refreshed.json()["token"]
            assert _claims(token)["actor_id"] == customer_id
            assert _claims(token)["auth_time"] == _claims(registration)["auth_time"]
            me = await t.client.get("/store/customers/me", headers={**t.bearer(token), **store})
            assert me.status_code == 200 and me.json()["customer"]["id"] == customer_id
            # A claimed registration makes no session: it is refreshed into the customer's token.
            assert (await t.client.post("/auth/session", headers=t.bearer(registration))).status_code == 401

    inprocess.run(body)


def _cli(monkeypatch: pytest.MonkeyPatch, t: InProcess, *args: str) -> str:
    monkeypatch.setenv("TILLKEY_DATA_DIR", str(t.tk.settings.data_dir))
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_customer_revoke_tokens_kills_registration_tokens_of_the_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            pending = await _register(t, VICTIM, ATTACKER_PASSWORD)
            claimed = await _register(t, "new@example.com", CUSTOMER_PASSWORD)
            store = await _store_key(t)
            created = await t.client.post("/store/customers", json={}, headers={**t.bearer(claimed), **store})
            assert created.status_code == 200, created.text
            customer_token = await t.customer_token("new@example.com")
            # Before any customer exists for the email, as after one was created from the registration.
            await asyncio.to_thread(_cli, monkeypatch, t, "customer", "revoke-tokens", VICTIM)
            await asyncio.to_thread(_cli, monkeypatch, t, "customer", "revoke-tokens", "new@example.com")
            await t.tk.poll_changes()
            for token in (pending, claimed, customer_token):
                r = await t.client.post("/auth/token/refresh", headers=t.bearer(token))
                assert r.status_code == 401, r.text
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(customer_token))).status_code == 401

    inprocess.run(body)


def test_deactivating_a_customer_also_ends_the_registration_that_created_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            store = await _store_key(t)
            registration = await _register(t, "new@example.com", CUSTOMER_PASSWORD)
            created = await t.client.post("/store/customers", json={}, headers={**t.bearer(registration), **store})
            customer_id = int(created.json()["customer"]["id"].removeprefix("cus_"))
            await t.accounts.set_customer_active(customer_id, False)
            assert (await t.client.post("/auth/token/refresh", headers=t.bearer(registration))).status_code == 401
            await t.accounts.set_customer_active(customer_id, True)
            # Signing in again works; the old registration stays dead.
            assert await t.customer_token("new@example.com")
            assert (await t.client.post("/auth/token/refresh", headers=t.bearer(registration))).status_code == 401
            assert UserType.GUEST  # registration tokens are guest tokens of the identity

    inprocess.run(body)
