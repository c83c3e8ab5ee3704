"""Customer email verification through Medusa 2.21's wire (accounts/medusa_verification.py): under
TILLKEY_CUSTOMER_EMAIL_VERIFICATION=required an unverified customer's login answers
`verification_required` with a token good for nothing but verifying; the code comes through the
outbox, single use and short-lived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess

LOGIN = "/auth/customer/emailpass"
REQUEST = "/auth/verification/request"
CONFIRM = "/auth/verification/confirm"
ME = "/rest/V1/customers/me"


def _outbox(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _login(t: InProcess, email: str) -> httpx.Response:
    return await t.client.post(LOGIN, json={"email": email, "password": CUSTOMER_PASSWORD})


async def _pending(t: InProcess, email: str) -> str:
    r = await _login(t, email)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["verification_required"] is True and "mfa_challenge" not in out
    if "verification" in out:  # (once a code was asked for: Medusa has no record before)
        assert out["verification"]["entity_id"] == email and out["verification"]["entity_type"] == "email"
        assert out["verification"]["verified_at"] is None
    token: str = out["token"]
    return token


async def _request(t: InProcess, token: str, email: str) -> httpx.Response:
    return await t.client.post(REQUEST, json={"entity_id": email, "entity_type": "email"}, headers=t.bearer(token))


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_unverified_login_then_request_confirm_and_login_works(tmp_path: Path, backend: str) -> None:
    outbox = tmp_path / "outbox.jsonl"

    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            settings: dict[str, Any] = {**db, "customer_email_verification": "required", "outbox_file": str(outbox)}
            async with inprocess.running(tmp_path, **settings) as t:
                await t.create_customer("ada@example.com")
                token = await _pending(t, "ada@example.com")
                # The pending token proves the password only: no records, no renewal, no session.
                pending = t.bearer(token)
                assert (await t.client.get(ME, headers=pending)).status_code == 401
                assert (await t.client.post("/auth/token/refresh", headers=pending)).status_code == 401
                assert (await t.client.post("/auth/session", headers=pending)).status_code == 401
                assert (await t.client.get("/auth/mfa/factors", headers=pending)).status_code == 401
                # Other surfaces refuse the unverified customer with their generic 401.
                magento = {"username": "ada@example.com", "password": CUSTOMER_PASSWORD}
                assert (await t.client.post("/rest/V1/integration/customer/token", json=magento)).status_code == 401

                r = await _request(t, token, "ada@example.com")
                assert r.status_code == 201, r.text
                assert r.json()["verification"]["entity_id"] == "ada@example.com"
                mails = _outbox(outbox)
                assert [(m["kind"], m["to"]) for m in mails] == [("email_verification", "ada@example.com")]
                code = mails[0]["code"]
                r = await t.client.post(CONFIRM, json={"code": code}, headers=pending)
                assert r.status_code == 200, r.text
                out = r.json()
                wire = (out["entity_id"], out["entity_type"], out["code_provider"])
                assert wire == ("ada@example.com", "email", "token")
                assert out["verified_at"]
                # Replayed: refused, with or without a token.
                assert (await t.client.post(CONFIRM, json={"code": code})).status_code == 400
                # The pending token's work is done.
                assert (await _request(t, token, "ada@example.com")).status_code == 401

                r = await _login(t, "ada@example.com")
                assert r.status_code == 200 and set(r.json()) == {"token"}, r.text
                assert (await t.client.get(ME, headers=t.bearer(r.json()["token"]))).status_code == 200
                assert (await t.client.post("/rest/V1/integration/customer/token", json=magento)).status_code == 200

    inprocess.run(body)


def test_wrong_expired_and_another_accounts_codes_are_refused(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"

    async def body() -> None:
        settings = {"customer_email_verification": "required", "outbox_file": str(outbox)}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_customer("ada@example.com")
            await t.create_customer("bob@example.com")
            ada, bob = await _pending(t, "ada@example.com"), await _pending(t, "bob@example.com")
            refused = {"type": "not_allowed", "message": "Verification code is invalid or already used"}
            r = await t.client.post(CONFIRM, json={"code": "tk_ev_" + "x" * 43}, headers=t.bearer(ada))
            assert r.status_code == 400 and r.json() == refused
            assert (await t.client.post(CONFIRM, json={"code": "guess"})).status_code == 400
            assert (await t.client.post(CONFIRM, json={})).status_code == 400

            assert (await _request(t, bob, "bob@example.com")).status_code == 201
            bobs = _outbox(outbox)[-1]["code"]
            # Ada's token with Bob's code: refused, and Bob's code stays good for Bob.
            r = await t.client.post(CONFIRM, json={"code": bobs}, headers=t.bearer(ada))
            assert r.status_code == 400 and r.json() == refused
            r = await t.client.post(CONFIRM, json={"code": bobs}, headers=t.bearer(bob))
            assert r.status_code == 200 and r.json()["entity_id"] == "bob@example.com"
            assert (await _login(t, "ada@example.com")).json()["verification_required"] is True

            # Expired: a code past TILLKEY_EMAIL_VERIFICATION_TTL (900 s) is refused.
            assert (await _request(t, ada, "ada@example.com")).status_code == 201
            late = _outbox(outbox)[-1]["code"]
            t.advance(901)
            ada = await _pending(t, "ada@example.com")
            r = await t.client.post(CONFIRM, json={"code": late}, headers=t.bearer(ada))
            assert r.status_code == 400 and r.json()["message"] == "Verification code has expired"
            # And a request without the pending token is refused.
            r = await t.client.post(REQUEST, json={"entity_id": "ada@example.com", "entity_type": "email"})
            assert r.status_code == 401

    inprocess.run(body)


def test_no_enumeration_and_a_bounded_number_of_mails(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"

    async def body() -> None:
        settings = {"customer_email_verification": "required", "outbox_file": str(outbox)}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_customer("ada@example.com")
            ada = await _pending(t, "ada@example.com")
            known = await _request(t, ada, "ada@example.com")
            unknown = await _request(t, ada, "stranger@example.com")
            assert known.status_code == unknown.status_code == 201
            varying = ("entity_id", "requested_at", "created_at", "updated_at")
            shape = {k: v for k, v in known.json()["verification"].items() if k not in varying}
            assert {k: v for k, v in unknown.json()["verification"].items() if k not in varying} == shape
            # Nothing is ever mailed to an address that is not the account's.
            assert [m["to"] for m in _outbox(outbox)] == ["ada@example.com"]
            # Per account within a code's lifetime: TILLKEY_PASSWORD_RESET_PER_ACCOUNT (3), then silence.
            for _ in range(4):
                assert (await _request(t, ada, "ada@example.com")).status_code == 201
            assert len(_outbox(outbox)) == 3
            # A wrong password is the same generic 401 as ever: verification is only for the owner.
            r = await t.client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong-Pass-1"})
            assert r.status_code == 401 and r.json()["message"] == "Invalid email or password"

    inprocess.run(body)


def test_off_by_default_nothing_changes(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            r = await _login(t, "ada@example.com")
            assert r.status_code == 200 and set(r.json()) == {"token"}

    inprocess.run(body)


def test_a_new_customers_first_refresh_asks_for_verification(tmp_path: Path) -> None:
    """register -> POST /store/customers -> refresh: the refresh answers as login does, and after
    confirming, the same registration token renews into the customer."""
    outbox = tmp_path / "outbox.jsonl"

    async def body() -> None:
        settings = {"customer_email_verification": "required", "outbox_file": str(outbox)}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_admin("ops")
            r = await t.client.post(
                "/auth/user/emailpass", json={"email": "ops@example.com", "password": ADMIN_PASSWORD}
            )
            admin = t.bearer(r.json()["token"])
            r = await t.client.post("/admin/api-keys", json={"title": "shop", "type": "publishable"}, headers=admin)
            pk = r.json()["api_key"]["token"]
            email = "new@example.com"
            r = await t.client.post(f"{LOGIN}/register", json={"email": email, "password": CUSTOMER_PASSWORD})
            reg = r.json()["token"]
            h = {**t.bearer(reg), "x-publishable-api-key": pk}
            r = await t.client.post("/store/customers", headers=h, json={"email": email, "first_name": "N"})
            assert r.status_code == 200, r.text
            r = await t.client.post("/auth/token/refresh", headers=t.bearer(reg))
            assert r.status_code == 200 and r.json()["verification_required"] is True, r.text
            pending = r.json()["token"]
            assert (await t.client.get(ME, headers=t.bearer(pending))).status_code == 401
            assert (await _request(t, pending, email)).status_code == 201
            r = await t.client.post(CONFIRM, json={"code": _outbox(outbox)[-1]["code"]}, headers=t.bearer(pending))
            assert r.status_code == 200, r.text
            r = await t.client.post("/auth/token/refresh", headers=t.bearer(reg))
            assert r.status_code == 200 and set(r.json()) == {"token"}, r.text
            assert (await t.client.get(ME, headers=t.bearer(r.json()["token"]))).status_code == 200

    inprocess.run(body)


def test_admins_under_admin_email_verification(tmp_path: Path) -> None:
    """TILLKEY_ADMIN_EMAIL_VERIFICATION=required (Medusa's authVerificationsPerActor "user"): the
    sign-in machine refuses an unverified admin's password sign-in on every surface, each in its own
    format: Magento's admin token its usual 401 (as a wrong password), the console a page saying the
    address is to be verified, Medusa's /auth/user/emailpass `verification_required` with a token
    for /auth/verification only. Once confirmed, all three sign in; customers are not asked."""
    outbox = tmp_path / "outbox.jsonl"

    async def body() -> None:
        settings = {"admin_email_verification": "required", "admin_2fa": "optional", "outbox_file": str(outbox)}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_admin("ops", email="ops@example.com")
            await t.create_customer("ada@example.com")
            magento = "/rest/V1/integration/admin/token"
            wrong = await t.client.post(magento, json={"username": "ops", "password": "wrong-Pass-1"})
            r = await t.client.post(magento, json={"username": "ops", "password": ADMIN_PASSWORD})
            assert r.status_code == wrong.status_code == 401 and r.json() == wrong.json()
            r = await t.console_sign_in("ops")
            assert r.status_code == 401 and "not verified yet" in r.text and not r.cookies.get("tillkey_console")
            creds = {"email": "ops@example.com", "password": ADMIN_PASSWORD}
            r = await t.client.post("/auth/user/emailpass", json=creds)
            assert r.status_code == 200 and r.json()["verification_required"] is True, r.text
            pending = r.json()["token"]
            r = await t.client.get("/admin/users/me", headers=t.bearer(pending))
            assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
            assert (await _request(t, pending, "ops@example.com")).status_code == 201
            mail = _outbox(outbox)[-1]
            assert mail["to"] == "ops@example.com" and mail["actor_type"] == "user"
            r = await t.client.post(CONFIRM, json={"code": mail["code"]}, headers=t.bearer(pending))
            assert r.status_code == 200 and r.json()["entity_id"] == "ops@example.com", r.text

            assert await t.admin_token("ops")
            assert (await t.console_sign_in("ops")).status_code == 303
            r = await t.client.post("/auth/user/emailpass", json=creds)
            assert r.status_code == 200 and set(r.json()) == {"token"}, r.text
            # Customers follow their own setting (off here).
            r = await _login(t, "ada@example.com")
            assert r.status_code == 200 and set(r.json()) == {"token"}

    inprocess.run(body)
