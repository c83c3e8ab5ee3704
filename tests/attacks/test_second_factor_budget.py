"""One failure budget per account, across every surface and both factors (issue 12, item 3).

An attacker who has the password guesses the second factor. Before the sign-in state machine,
each surface counted those guesses under its own name (Medusa under the email, Magento and the
console under the username) and none counted toward the account's lockout, so spreading guesses
over the surfaces, or a right password between guesses, bought more of them. Now every failure,
of either factor, on any surface, spends the same budget: the throttle under the account's own
name and the account's lockout, and only a sign-in that passed every factor clears it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tillkey.access.delegation import OPERATOR

SIGN_IN_FAILED = {
    "message": "The account sign-in was incorrect or your account is disabled temporarily. "
    "Please wait and try again later."
}
INVALID_CODE = {"message": "Invalid code."}
USE_PROVIDER = "Please use the 2fa provider-specific endpoints to obtain a token."
MEDUSA_INVALID = "Invalid email or password"
CONSOLE_FAILED = "The account sign-in was incorrect"
WRONG_RECOVERY = "aaaa-bbbb-cccc"  # shaped like a recovery code, never one

# Each case keeps one of the two defences out of the way, so the other is shown to get every guess.
LOCKOUT_ONLY = {"login_throttle_max_failures": 1000, "admin_lockout_failures": 6}
THROTTLE_ONLY = {"login_throttle_max_failures": 6, "admin_lockout_failures": 1000}
DEFENCES = [pytest.param(LOCKOUT_ONLY, id="lockout"), pytest.param(THROTTLE_ONLY, id="throttle")]


def _wrong(t: InProcess, secret: str) -> str:
    right = t.totp_code(secret)
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


async def _magento_tfa(t: InProcess, otp: str, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return await t.client.post(
        "/rest/V1/tfa/provider/google/authenticate", json={"username": "alice", "password": password, "otp": otp}
    )


async def _medusa(t: InProcess, otp: str | None, password: str = ADMIN_PASSWORD) -> httpx.Response:
    body: dict[str, Any] = {"email": "alice@example.com", "password": password}
    if otp is not None:
        body["otp"] = otp
    return await t.client.post("/auth/user/emailpass", json=body)


async def _console_code(t: InProcess, otp: str) -> httpx.Response:
    """The console's code step, after a right password (which must not reset the count)."""
    first = await t.console_sign_in("alice")
    assert first.status_code == 303, first.text
    if not first.headers["location"].startswith("/console/login/otp"):
        return first  # refused at the password step (the page says why)
    return await t.console_form("/console/login/otp", "/console/login/otp", otp=otp)


async def _locked_everywhere(t: InProcess, secret: str) -> None:
    """The right password and a right code are refused on every surface, with each one's generic answer."""
    r = await _magento_tfa(t, t.totp_code(secret))
    assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
    r = await _medusa(t, t.totp_code(secret))
    assert r.status_code == 401 and r.json()["message"] == MEDUSA_INVALID
    r = await t.client.post("/rest/V1/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD})
    assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
    r = await t.console_sign_in("alice")
    assert r.status_code == 401 and CONSOLE_FAILED in r.text


async def _alice(t: InProcess) -> tuple[int, str, list[str]]:
    admin = await t.create_admin("alice")
    secret, recovery = await t.enable_totp(admin.id)
    return admin.id, secret, recovery


@pytest.mark.parametrize("defence", DEFENCES)
def test_code_guesses_spread_over_magento_medusa_and_the_console_lock_the_account(
    tmp_path: Path, defence: dict[str, int]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", **defence) as t:
            admin_id, secret, _ = await _alice(t)
            for _ in range(2):  # 2 + 2 + 2 = 6 guesses, no surface reaching 6 alone
                r = await _magento_tfa(t, _wrong(t, secret))
                assert r.status_code == 401 and r.json() == INVALID_CODE
                r = await _medusa(t, _wrong(t, secret))
                assert r.status_code == 401 and r.json()["message"] == MEDUSA_INVALID
                r = await _console_code(t, _wrong(t, secret))
                assert r.status_code == 401 and "The code is wrong or expired." in r.text
            await _locked_everywhere(t, secret)
            if defence is LOCKOUT_ONLY:
                await t.create_admin("auditor")
                r = await t.client.get(
                    "/tillkey/v1/audit",
                    params={"event": "account.locked"},
                    headers=t.bearer(await t.admin_token("auditor")),
                )
                assert [(e["actor_type"], e["actor_id"]) for e in r.json()["events"]] == [(2, admin_id)], r.text
            # The lock runs out; then the right code signs in, and clears the count.
            t.advance(max(t.tk.settings.admin_lockout_seconds, t.tk.settings.login_throttle_lock_seconds) + 1)
            # (Medusa's login: a token minted after advance() is not read back, which PyJWT would
            # judge by the wall clock.)
            r = await _medusa(t, t.totp_code(secret))
            assert r.status_code == 200, r.text

    inprocess.run(body)


@pytest.mark.parametrize("defence", DEFENCES)
def test_a_right_password_between_guesses_never_resets_the_count(tmp_path: Path, defence: dict[str, int]) -> None:
    # Otherwise whoever has the password alternates a password-only sign-in with code guesses.
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", **defence) as t:
            _, secret, _ = await _alice(t)
            for _ in range(3):
                assert (await _medusa(t, _wrong(t, secret))).status_code == 401
                # The right password alone, on each surface: a second factor is still due.
                r = await t.client.post(
                    "/rest/V1/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
                )
                assert r.status_code == 400 and r.json()["message"] == USE_PROVIDER
                # Medusa 2.21: a challenge and a pending token that opens nothing else.
                r = await _medusa(t, None)
                assert r.status_code == 200 and r.json()["mfa_required"] is True
                me = await t.client.get("/admin/users/me", headers=t.bearer(r.json()["token"]))
                assert me.status_code == 401
                r = await t.console_sign_in("alice")
                assert r.headers["location"].startswith("/console/login/otp")
                assert (await _magento_tfa(t, _wrong(t, secret))).json() == INVALID_CODE
            await _locked_everywhere(t, secret)

    inprocess.run(body)


@pytest.mark.parametrize("defence", DEFENCES)
def test_recovery_code_guesses_count_and_a_locked_account_burns_no_real_code(
    tmp_path: Path, defence: dict[str, int]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", **defence) as t:
            _, secret, recovery = await _alice(t)
            for _ in range(3):
                assert (await _magento_tfa(t, WRONG_RECOVERY)).json() == INVALID_CODE
                assert (await _medusa(t, WRONG_RECOVERY)).status_code == 401
            r = await _magento_tfa(t, recovery[0])
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
            await _locked_everywhere(t, secret)
            # Refused before the code was looked at: the recovery code is still good afterwards.
            t.advance(max(t.tk.settings.admin_lockout_seconds, t.tk.settings.login_throttle_lock_seconds) + 1)
            assert (await _medusa(t, recovery[0])).status_code == 200

    inprocess.run(body)


def test_wrong_first_codes_at_forced_enrolment_count_too(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="required", **LOCKOUT_ONLY) as t:
            await t.create_admin("alice")
            for i in range(6):
                r = await t.console_sign_in("alice")
                assert r.headers["location"].startswith("/console/login/enrol"), (i, r.text)
                r = await t.console_form("/console/login/enrol", "/console/login/enrol", otp="000000")
                assert r.status_code == 401 and "The code is wrong or expired" in r.text
            # The password is right, and still refused: not "configure two-factor auth" any more.
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED

    inprocess.run(body)


def test_a_pending_console_sign_in_gets_no_more_guesses_once_the_account_locks_elsewhere(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", **LOCKOUT_ONLY) as t:
            _, secret, _ = await _alice(t)
            assert (await t.console_sign_in("alice")).headers["location"].startswith("/console/login/otp")
            for _ in range(6):
                assert (await _medusa(t, _wrong(t, secret))).status_code == 401
            r = await t.console_form("/console/login/otp", "/console/login/otp", otp=t.totp_code(secret))
            assert r.status_code == 401 and CONSOLE_FAILED in r.text  # the pending sign-in ended
            follow = await t.client.get("/console/login/otp")
            assert follow.status_code == 303 and follow.headers["location"].startswith("/console/login")

    inprocess.run(body)


def test_wrong_passwords_by_username_and_by_email_share_the_accounts_throttle(tmp_path: Path) -> None:
    # Medusa names an admin by email, Magento by username: one account, one budget.
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="off", **THROTTLE_ONLY) as t:
            await t.create_admin("alice")
            for _ in range(3):
                r = await t.client.post(
                    "/rest/V1/integration/admin/token", json={"username": "alice", "password": "wrong-password"}
                )
                assert r.status_code == 401
                assert (await _medusa(t, None, password="wrong-password")).status_code == 401
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
            assert (await _medusa(t, None)).status_code == 401
            # A name nobody has keeps its own count: alice's lock does not spill onto it.
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "ghost", "password": "wrong-password"}
            )
            assert r.status_code == 401

    inprocess.run(body)


def test_customers_spend_one_budget_over_magento_and_medusa(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"login_throttle_max_failures": 1000, "customer_lockout_failures": 4}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_customer("c@example.com")
            for _ in range(2):
                r = await t.client.post(
                    "/rest/V1/integration/customer/token", json={"username": "C@example.com", "password": "wrong-pw"}
                )
                assert r.status_code == 401
                r = await t.client.post("/auth/customer/emailpass", json={"email": "c@example.com", "password": "x"})
                assert r.status_code == 401
            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "c@example.com", "password": CUSTOMER_PASSWORD}
            )
            assert r.status_code == 401 and r.json()["message"] == MEDUSA_INVALID
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": "c@example.com", "password": CUSTOMER_PASSWORD}
            )
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED

    inprocess.run(body)


def test_an_authorize_sign_in_spends_the_same_budget_and_a_pending_one_gets_no_code(tmp_path: Path) -> None:
    # /oauth2/authorize signs people in through the console's steps, so through the state machine.
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", **LOCKOUT_ONLY) as t:
            _, secret, _ = await _alice(t)
            client = await t.tk.services.clients.create(
                OPERATOR,
                name="app",
                client_type="public",
                redirect_uris=["https://app.example/cb"],
                grant_types=["authorization_code"],
                scopes=["openid"],
                first_party=True,
            )
            query = {
                "response_type": "code",
                "client_id": client.client.client_id,
                "redirect_uri": "https://app.example/cb",
                "scope": "openid",
                "state": "s",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }
            to_login = await t.client.get("/oauth2/authorize", params=query)
            assert to_login.status_code == 303
            r = await t.console_form(
                to_login.headers["location"], "/console/login", username="alice", password=ADMIN_PASSWORD
            )
            otp_page = r.headers["location"]
            assert otp_page.startswith("/console/login/otp")
            # The password alone is no sign-in: authorize sends the browser back to sign in.
            again = await t.client.get("/oauth2/authorize", params=query)
            assert again.status_code == 303 and again.headers["location"].startswith("/console/login")
            for _ in range(3):
                r = await t.console_form(otp_page, "/console/login/otp", otp=_wrong(t, secret))
                assert r.status_code == 401
                assert (await _magento_tfa(t, _wrong(t, secret))).json() == INVALID_CODE
            r = await t.console_form(otp_page, "/console/login/otp", otp=t.totp_code(secret))
            assert r.status_code == 401 and CONSOLE_FAILED in r.text
            again = await t.client.get("/oauth2/authorize", params=query)
            assert again.status_code == 303 and again.headers["location"].startswith("/console/login")

    inprocess.run(body)
