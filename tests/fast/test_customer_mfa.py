"""Customer MFA (TOTP and recovery codes) through Medusa 2.21's MFA wire and the Magento token
endpoint: the same sign-in machine, failure budget and lockout as admins (accounts/medusa_mfa.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tests import inprocess
from tests.conftest import redis_env
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tillkey.accounts.totp import PERIOD

ME = "/rest/V1/customers/me"


async def _login(t: InProcess, email: str, actor: str = "customer", password: str = CUSTOMER_PASSWORD) -> Any:
    r = await t.client.post(f"/auth/{actor}/emailpass", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def _enrol(t: InProcess, token: str) -> tuple[str, str, list[str]]:
    """Through the wire: start, verify with a first code, then recovery codes. (secret, factor id, codes)"""
    r = await t.client.post("/auth/mfa/factors", json={"provider": "totp"}, headers=t.bearer(token))
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["mfa_factor"]["status"] == "pending" and started["otpauth_url"].startswith("otpauth://totp/")
    factor_id = started["mfa_factor"]["id"]
    secret = started["secret"]
    r = await t.client.post(
        f"/auth/mfa/factors/{factor_id}/verify", json={"code": t.totp_code(secret)}, headers=t.bearer(token)
    )
    assert r.status_code == 200 and r.json()["mfa_factor"]["status"] == "enabled", r.text
    t.advance(PERIOD)
    r = await t.client.post("/auth/mfa/recovery-codes", json={}, headers=t.bearer(token))
    assert r.status_code == 200, r.text
    listed = (await t.client.get("/auth/mfa/factors", headers=t.bearer(token))).json()["mfa_factors"]
    assert [(f["id"], f["status"], f["provider"]) for f in listed] == [(factor_id, "enabled", "totp")]
    return secret, factor_id, r.json()["recovery_codes"]


async def _verify(t: InProcess, challenge: dict[str, Any], code: str, method: str = "totp") -> httpx.Response:
    return await t.client.post(
        f"/auth/mfa/challenges/{challenge['mfa_challenge']['id']}/verify",
        json={"method": method, "code": code},
        headers=t.bearer(challenge["token"]),
    )


def _wrong(t: InProcess, secret: str) -> str:
    right = pyotp.TOTP(secret).at(t.clock.now())
    return "000000" if right != "000000" else "111111"


def test_a_customer_enrols_and_signs_in_with_the_mfa_challenge(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()  # the replay below must fall in the same TOTP step, however slow the machine
            await t.create_customer("ada@example.com")
            plain = (await _login(t, "ada@example.com"))["token"]
            secret, factor_id, codes = await _enrol(t, plain)
            assert len(codes) == 10

            challenge = await _login(t, "ada@example.com")
            assert challenge["mfa_required"] is True
            assert set(challenge["mfa_challenge"]["methods"]) == {"totp", "recovery_code"}
            # The pending token proves the password only: no records, no session; its refresh is
            # another challenge (Medusa 2.21's answer), with another pending token.
            pending = t.bearer(challenge["token"])
            # Medusa's routes say why (as Medusa 2.21 does); Magento's answer their usual 401.
            r = await t.client.get("/admin/users/me", headers=pending)
            assert r.status_code == 401
            assert r.json() == {"message": "MFA verification is required to complete this request"}
            r = await t.client.get(ME, headers=pending)
            assert r.status_code == 401 and r.json()["message"] == "The consumer isn't authorized to access %resources."
            r = await t.client.post("/auth/token/refresh", headers=pending)
            assert r.status_code == 200 and r.json()["mfa_required"] is True, r.text
            assert r.json()["mfa_challenge"]["id"] != challenge["mfa_challenge"]["id"]
            assert (await t.client.get(ME, headers=t.bearer(r.json()["token"]))).status_code == 401
            assert (await t.client.post("/auth/session", headers=pending)).status_code == 401

            r = await _verify(t, challenge, _wrong(t, secret))
            assert r.status_code == 400 and r.json()["message"] == "Invalid MFA challenge code"
            r = await _verify(t, challenge, t.totp_code(secret))
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            claims = await t.tk.authenticator.read(token)
            assert claims.auth_methods == ("pwd", "otp")
            assert (await t.client.get(ME, headers=t.bearer(token))).json()["email"] == "ada@example.com"
            # The challenge is single use, and the same TOTP step never counts twice.
            r = await _verify(t, challenge, t.totp_code(secret))
            assert r.status_code == 400 and r.json()["message"] == "MFA challenge has already been completed"
            again = await _login(t, "ada@example.com")
            assert (await _verify(t, again, t.totp_code(secret))).status_code == 400
            # A recovery code works once.
            assert (await _verify(t, again, codes[0], "recovery_code")).status_code == 200
            third = await _login(t, "ada@example.com")
            assert (await _verify(t, third, codes[0], "recovery_code")).status_code == 400
            # Refresh keeps the factors and the sign-in time.
            r = await t.client.post("/auth/token/refresh", headers=t.bearer(token))
            renewed = await t.tk.authenticator.read(r.json()["token"])
            assert renewed.auth_methods == ("pwd", "otp") and renewed.auth_time == claims.auth_time
            assert factor_id.startswith("authmfa_")

    inprocess.run(body)


def test_nobody_completes_another_persons_challenge(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            await t.create_customer("eve@example.com")
            ada_secret, ada_factor, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            eve_plain = (await _login(t, "eve@example.com"))["token"]
            eve_secret, _f, _c = await _enrol(t, eve_plain)
            r = await t.client.post(
                f"/auth/mfa/factors/{ada_factor}/verify", json={"code": "123456"}, headers=t.bearer(eve_plain)
            )
            assert r.status_code == 404
            t.advance(PERIOD)
            ada = await _login(t, "ada@example.com")
            eve = await _login(t, "eve@example.com")
            # Eve's own token with Ada's challenge id, even with Ada's right code: refused.
            stolen_id = {"token": eve["token"], "mfa_challenge": ada["mfa_challenge"]}
            r = await _verify(t, stolen_id, t.totp_code(ada_secret))
            assert r.status_code == 404
            # Without a token, or with a full token instead of the pending one: refused.
            r = await t.client.post(
                f"/auth/mfa/challenges/{ada['mfa_challenge']['id']}/verify", json={"method": "totp", "code": "123456"}
            )
            assert r.status_code == 401
            # Ada's own is still intact (nothing of it was spent).
            assert (await _verify(t, ada, t.totp_code(ada_secret))).status_code == 200
            assert (await _verify(t, eve, t.totp_code(eve_secret))).status_code == 200
            # Factor ids are the caller's own: another's is not found.
            eve_full = (await _verify(t, await _login(t, "eve@example.com"), "x" * 6)).status_code
            assert eve_full == 400  # not a code at all: a wrong one

    inprocess.run(body)


def test_wrong_codes_spend_the_customer_budget_and_lock_the_account(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"login_throttle_max_failures": 1000, "customer_lockout_failures": 3}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_customer("ada@example.com")
            secret, _f, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            for _ in range(3):
                challenge = await _login(t, "ada@example.com")
                assert (await _verify(t, challenge, _wrong(t, secret))).status_code == 400
            # Locked: the right code, and the right password, are refused alike.
            r = await t.client.post("/auth/customer/emailpass", json={"email": "ada@example.com", "password": "x"})
            assert r.status_code == 401
            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "ada@example.com", "password": CUSTOMER_PASSWORD}
            )
            assert r.status_code == 401
            # And on the Magento surface, the same account's one budget.
            r = await t.client.post(
                "/rest/V1/integration/customer/token",
                json={"username": "ada@example.com", "password": CUSTOMER_PASSWORD, "otp": t.totp_code(secret)},
            )
            assert r.status_code == 401

    inprocess.run(body)


def test_the_magento_customer_token_takes_the_code_as_otp(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            secret, _f, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            creds = {"username": "ada@example.com", "password": CUSTOMER_PASSWORD}
            r = await t.client.post("/rest/V1/integration/customer/token", json=creds)
            assert r.status_code == 400 and '"otp"' in r.json()["message"]
            r = await t.client.post("/rest/V1/integration/customer/token", json={**creds, "otp": t.totp_code(secret)})
            assert r.status_code == 200, r.text
            assert (await t.tk.authenticator.read(r.json())).auth_methods == ("pwd", "otp")

    inprocess.run(body)


def test_disabling_a_factor_needs_a_recent_mfa_sign_in_and_admins_cannot(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            await t.create_customer("ada@example.com")
            plain = (await _login(t, "ada@example.com"))["token"]
            secret, factor_id, _c = await _enrol(t, plain)
            r = await t.client.request("DELETE", f"/auth/mfa/factors/{factor_id}", json={}, headers=t.bearer(plain))
            assert r.status_code == 401
            assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
            assert r.json()["type"] == "unauthorized"
            token = (await _verify(t, await _login(t, "ada@example.com"), t.totp_code(secret))).json()["token"]
            r = await t.client.request("DELETE", "/auth/mfa/factors/authmfa_3_999", json={}, headers=t.bearer(token))
            assert r.status_code == 404
            t.advance(301)
            r = await t.client.request("DELETE", f"/auth/mfa/factors/{factor_id}", json={}, headers=t.bearer(token))
            assert r.status_code == 401
            t.advance(PERIOD)
            token = (await _verify(t, await _login(t, "ada@example.com"), t.totp_code(secret))).json()["token"]
            r = await t.client.request("DELETE", f"/auth/mfa/factors/{factor_id}", json={}, headers=t.bearer(token))
            assert r.status_code == 200 and r.json()["mfa_factor"]["status"] == "disabled"
            assert isinstance((await _login(t, "ada@example.com"))["token"], str)
            assert "mfa_required" not in await _login(t, "ada@example.com")

            # An admin's own factor is reset by another admin, never removed by its owner.
            await t.create_admin("alice", email="alice@example.com")
            admin_plain = (await _login(t, "alice@example.com", "user", ADMIN_PASSWORD))["token"]
            admin_secret, admin_factor, _c = await _enrol(t, admin_plain)
            t.advance(PERIOD)
            challenge = await _login(t, "alice@example.com", "user", ADMIN_PASSWORD)
            admin_token = (await _verify(t, challenge, t.totp_code(admin_secret))).json()["token"]
            r = await t.client.request(
                "DELETE", f"/auth/mfa/factors/{admin_factor}", json={}, headers=t.bearer(admin_token)
            )
            assert r.status_code == 400 and r.json()["type"] == "not_allowed"

    inprocess.run(body)


def test_a_cookie_session_keeps_the_sign_in_it_was_made_from(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            secret, factor_id, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            token = (await _verify(t, await _login(t, "ada@example.com"), t.totp_code(secret))).json()["token"]
            r = await t.client.post("/auth/session", headers=t.bearer(token))
            assert r.status_code == 200, r.text
            cookie = {"Cookie": f"connect.sid={r.cookies['connect.sid']}"}
            session = t.browser()
            # Step-up reads the session's amr and auth_time: MFA within 5 minutes passes, later not.
            t.advance(301)
            r = await session.request("DELETE", f"/auth/mfa/factors/{factor_id}", json={}, headers=cookie)
            assert r.status_code == 401 and "insufficient_user_authentication" in r.headers["www-authenticate"]
            t.advance(-301)
            r = await session.request("DELETE", f"/auth/mfa/factors/{factor_id}", json={}, headers=cookie)
            assert r.status_code == 200, r.text
            await session.aclose()

    inprocess.run(body)


@pytest.mark.parametrize("mode", ["required", "off"])
def test_the_customer_2fa_setting(tmp_path: Path, mode: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, customer_2fa=mode) as t:
            await t.create_customer("ada@example.com")
            plain = (await _login(t, "ada@example.com"))["token"]
            if mode == "off":
                r = await t.client.post("/auth/mfa/factors", json={"provider": "totp"}, headers=t.bearer(plain))
                assert r.status_code == 400 and r.json()["type"] == "not_allowed"
                assert (await t.client.get(ME, headers=t.bearer(plain))).status_code == 200
                return
            # Required: a password-only token can do nothing but set a factor up.
            r = await t.client.get(ME, headers=t.bearer(plain))
            assert r.status_code == 401
            assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
            secret, _f, _c = await _enrol(t, plain)
            token = (await _verify(t, await _login(t, "ada@example.com"), t.totp_code(secret))).json()["token"]
            assert (await t.client.get(ME, headers=t.bearer(token))).status_code == 200

    inprocess.run(body)


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_challenge_takes_five_wrong_codes_then_nothing(tmp_path: Path, store: str) -> None:
    """Medusa 2.21's per-challenge limit (mfa.challenge_max_attempts, 5), counted where every
    process sees it when Redis is configured: the 5th wrong code and every answer after it, the
    right code too, get "too many failed attempts"; a new login's challenge starts afresh."""

    async def body() -> None:
        settings: dict[str, Any] = {"login_throttle_max_failures": 1000, "customer_lockout_failures": 1000}
        if store == "redis":
            redis = redis_env()
            settings.update(redis_url=redis["TILLKEY_REDIS_URL"], redis_key_prefix=redis["TILLKEY_REDIS_KEY_PREFIX"])
        async with inprocess.running(tmp_path, **settings) as t:
            t.freeze()
            await t.create_customer("ada@example.com")
            secret, _f, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            t.advance(PERIOD)
            challenge = await _login(t, "ada@example.com")
            assert challenge["mfa_challenge"]["max_attempts"] == 5
            answers = [(await _verify(t, challenge, _wrong(t, secret))).json()["message"] for _ in range(5)]
            assert answers == ["Invalid MFA challenge code"] * 4 + ["MFA challenge has too many failed attempts"]
            r = await _verify(t, challenge, t.totp_code(secret))
            assert r.status_code == 400 and r.json()["message"] == "MFA challenge has too many failed attempts"
            fresh = await _login(t, "ada@example.com")
            assert (await _verify(t, fresh, t.totp_code(secret))).status_code == 200
            assert t.tk.ratelimiter.redis_failures == 0  # (counted in Redis, not in the fallback)

    inprocess.run(body)


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_wrong_answers_sent_at_once_check_at_most_five_codes(tmp_path: Path, store: str) -> None:
    """Ten wrong answers to one challenge sent at the same moment: each takes its turn before its
    code is checked (an atomic increment, in memory or in Redis), so no more than five codes are
    ever checked. The rest answer "too many failed attempts" unchecked, and so does the right code
    afterwards; the account's lockout (6 here) is not reached, so a new login still gets in."""

    async def body() -> None:
        settings: dict[str, Any] = {"login_throttle_max_failures": 1000, "customer_lockout_failures": 6}
        settings["rate_limit_login_username"] = ""
        if store == "redis":
            redis = redis_env()
            settings.update(redis_url=redis["TILLKEY_REDIS_URL"], redis_key_prefix=redis["TILLKEY_REDIS_KEY_PREFIX"])
        async with inprocess.running(tmp_path, **settings) as t:
            t.freeze()
            await t.create_customer("ada@example.com")
            secret, _f, _c = await _enrol(t, (await _login(t, "ada@example.com"))["token"])
            t.advance(PERIOD)
            challenge = await _login(t, "ada@example.com")
            wrong = _wrong(t, secret)
            answers = await asyncio.gather(*(_verify(t, challenge, wrong) for _ in range(10)))
            assert {r.status_code for r in answers} == {400}
            messages = [r.json()["message"] for r in answers]
            invalid = messages.count("Invalid MFA challenge code")
            assert invalid <= 5
            assert messages.count("MFA challenge has too many failed attempts") == 10 - invalid
            r = await _verify(t, challenge, t.totp_code(secret))
            assert r.status_code == 400 and r.json()["message"] == "MFA challenge has too many failed attempts"
            # Had all ten been checked, the account would be locked (6) and this login refused.
            fresh = await _login(t, "ada@example.com")
            assert (await _verify(t, fresh, t.totp_code(secret))).status_code == 200
            assert t.tk.ratelimiter.redis_failures == 0

    inprocess.run(body)


def test_re_enabling_an_enabled_factor_checks_the_code(tmp_path: Path) -> None:
    """Medusa checks the code even for a factor already on: a wrong one (or a recovery code) is
    "Invalid TOTP code", a current one answers the factor unchanged, and a code used once is not
    taken again."""

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            await t.create_customer("ada@example.com")
            token = (await _login(t, "ada@example.com"))["token"]
            secret, factor_id, codes = await _enrol(t, token)
            t.advance(PERIOD)
            path = f"/auth/mfa/factors/{factor_id}/verify"
            for bad in (_wrong(t, secret), codes[0], "abc"):
                r = await t.client.post(path, json={"code": bad}, headers=t.bearer(token))
                assert r.status_code == 400, r.text
                assert r.json() == {"type": "not_allowed", "message": "Invalid TOTP code"}
            code = t.totp_code(secret)
            r = await t.client.post(path, json={"code": code}, headers=t.bearer(token))
            assert r.status_code == 200 and r.json()["mfa_factor"]["status"] == "enabled", r.text
            r = await t.client.post(path, json={"code": code}, headers=t.bearer(token))
            assert r.status_code == 400 and r.json()["message"] == "Invalid TOTP code"  # replayed
            # Five codes per 5 minutes (a challenge's count), then 429 unchecked, the right one too.
            t.advance(PERIOD)
            r = await t.client.post(path, json={"code": t.totp_code(secret)}, headers=t.bearer(token))
            assert r.status_code == 429 and r.json()["type"] == "too_many_requests"
            # The recovery code tried above was not spent: it still completes a challenge.
            t.advance(PERIOD)
            challenge = await _login(t, "ada@example.com")
            assert (await _verify(t, challenge, codes[0], "recovery_code")).status_code == 200

    inprocess.run(body)
