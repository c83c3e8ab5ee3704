"""Admin two-factor auth: TOTP (RFC 6238) and recovery codes, over HTTP and the CLI (magento.md
§2.3), plus unit tests of the window and replay logic with fixed times.

The app runs in this process (tests/inprocess.py) and the CLI through `typer.testing.CliRunner` on
the same database. Codes are computed with pyotp from the enrolled secret at the server's clock:
activation spends step N and moves the clock on one step, so the next login uses N + 1 with no
30 s boundary to race.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, FAST_HASHING
from tests.inprocess import InProcess
from tests.polling import until
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.totp import (
    PERIOD,
    matching_step,
    new_recovery_code,
    normalize_recovery_code,
    step_at,
)

SIGN_IN_FAILED = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
)
USE_PROVIDER = {
    "message": "Please use the 2fa provider-specific endpoints to obtain a token.",
    "parameters": {"active_providers": ["google"]},
}
CONFIGURE = {
    "message": "You are required to configure personal Two-Factor Authorization in order to login. "
    "Please ask an administrator to run tillkey admin 2fa enroll.",
    "parameters": {"providers": ["google"], "active_providers": []},
}
NOT_CONFIGURED = {"message": "Provider is not configured."}
INVALID_CODE = {"message": "Invalid code."}
RECOVERY_CODE = re.compile(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}")


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI works on the in-process app's data directory and database."""
    inprocess.cli_environment(monkeypatch, tmp_path)


_cli = inprocess.cli
_cli_json = inprocess.cli_json


async def _create_admin(t: InProcess, username: str, role: str | None = None) -> int:
    return (await t.create_admin(username, role=role)).id


async def _admin_token(t: InProcess, username: str, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return await t.client.post("/rest/V1/integration/admin/token", json={"username": username, "password": password})


async def _authenticate(t: InProcess, username: str, otp: Any, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return await t.client.post(
        "/rest/V1/tfa/provider/google/authenticate",
        json={"username": username, "password": password, "otp": otp},
    )


def _code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * PERIOD)


def _now_step(t: InProcess | None = None) -> int:
    """The current step by the server's clock (`t`), or by the wall clock the CLI uses."""
    return step_at(t.clock.now() if t is not None else time.time())


def _wrong_code(secret: str, step: int) -> str:
    """A 6-digit code that matches none of the steps the server could accept around `step`."""
    taken = {_code(secret, s) for s in range(step - 3, step + 4)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in taken)


async def _enroll_and_activate(t: InProcess, admin_id: int) -> tuple[str, int, list[str]]:
    """(secret, N, recovery codes); the activation spent step N and the clock is now at N + 1."""
    step = _now_step(t)
    secret, codes = await t.enable_totp(admin_id)
    assert _now_step(t) == step + 1
    return secret, step, codes


async def _websites(t: InProcess, token: str) -> int:
    return (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code


def required(tmp_path: Path, **settings: Any) -> Any:
    """An app with admin_2fa=required (the default); the tests of other modes pass their own."""
    return inprocess.running(tmp_path, **{"admin_2fa": "required", **settings})


# --- required mode --------------------------------------------------------------------------------


def test_required_mode_sends_an_unconfigured_admin_to_configure(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            await _create_admin(t, "uma")
            r = await _admin_token(t, "uma")
            assert r.status_code == 400
            assert r.json() == CONFIGURE
            # a wrong password is still the generic 401 (the password check comes first)
            r = await _admin_token(t, "uma", "Wrong-pass-123")
            assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}
            # the provider endpoint knows no provider for them
            r = await _authenticate(t, "uma", "123456")
            assert r.status_code == 400 and r.json() == NOT_CONFIGURED

    inprocess.run(body)


def test_enrolled_but_not_activated_still_has_to_configure(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            await _create_admin(t, "vera")
            await _cli_json("admin", "2fa", "enroll", "vera")
            assert (await _admin_token(t, "vera")).json() == CONFIGURE
            assert (await _authenticate(t, "vera", "123456")).json() == NOT_CONFIGURED
            status = await _cli_json("admin", "2fa", "status", "vera")
            assert status == {"username": "vera", "enrolled": True, "active": False, "recovery_codes_left": 0}

    inprocess.run(body)


def test_enroll_activate_authenticate_gives_a_token_with_otp_in_amr(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            alice = await _create_admin(t, "alice")
            secret, step, recovery = await _enroll_and_activate(t, alice)
            assert len(recovery) == 10 and len(set(recovery)) == 10
            assert all(RECOVERY_CODE.fullmatch(c) for c in recovery)

            r = await _admin_token(t, "alice")
            assert r.status_code == 400
            assert r.json() == USE_PROVIDER

            r = await _authenticate(t, "alice", _code(secret, step + 1))
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json; charset=utf-8"
            assert r.headers["cache-control"] == "no-store"
            token = r.json()
            assert isinstance(token, str)
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["utypid"] == 2 and claims["amr"] == ["pwd", "otp"]
            assert await _websites(t, token) == 200
            status = await _cli_json("admin", "2fa", "status", "alice")
            assert status == {"username": "alice", "enrolled": True, "active": True, "recovery_codes_left": 10}

    inprocess.run(body)


def test_wrong_code_is_401_invalid_code(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            bob = await _create_admin(t, "bob")
            secret, step, _ = await _enroll_and_activate(t, bob)
            wrong = (
                _wrong_code(secret, step),
                "12345",
                "1234567",
                "abcdef",
                " ",
                "\u0661\u0662\u0663\u0664\u0665\u0666",
            )
            for otp in wrong:
                r = await _authenticate(t, "bob", otp)
                assert r.status_code == 401, otp
                assert r.json() == INVALID_CODE
            # a right code with a wrong password: the generic sign-in failure, not a hint about the code
            r = await _authenticate(t, "bob", _code(secret, step + 1), password="Wrong-pass-123")
            assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}

    inprocess.run(body)


def test_a_code_is_accepted_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            carl = await _create_admin(t, "carl")
            secret, step, _ = await _enroll_and_activate(t, carl)
            # the activation code itself was spent
            assert (await _authenticate(t, "carl", _code(secret, step))).json() == INVALID_CODE
            code = _code(secret, step + 1)
            assert (await _authenticate(t, "carl", code)).status_code == 200
            r = await _authenticate(t, "carl", code)
            assert r.status_code == 401 and r.json() == INVALID_CODE
            # an older code inside the window is refused too: steps only move forward
            assert (await _authenticate(t, "carl", _code(secret, step))).json() == INVALID_CODE

    inprocess.run(body)


def test_recovery_code_works_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            dora = await _create_admin(t, "dora")
            _secret, _step, recovery = await _enroll_and_activate(t, dora)
            r = await _authenticate(t, "dora", recovery[0].upper().replace("-", " "))  # typed loosely
            assert r.status_code == 200, r.text
            assert jwt.decode(r.json(), options={"verify_signature": False})["amr"] == ["pwd", "otp"]
            r = await _authenticate(t, "dora", recovery[0])
            assert r.status_code == 401 and r.json() == INVALID_CODE
            assert (await _authenticate(t, "dora", recovery[1])).status_code == 200
            assert (await _authenticate(t, "dora", "aaaa-bbbb-cccc")).json() == INVALID_CODE
            assert (await _cli_json("admin", "2fa", "status", "dora"))["recovery_codes_left"] == 8

    inprocess.run(body)


def test_bad_bodies_are_400s(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            url = "/rest/V1/tfa/provider/google/authenticate"
            r = await t.client.post(url, json={"username": "alice", "password": ADMIN_PASSWORD})
            assert r.status_code == 400
            assert r.json() == {
                "message": '"%fieldName" is required. Enter and try again.',
                "parameters": {"fieldName": "otp"},
            }
            r = await t.client.post(url, json={"username": "alice", "password": ADMIN_PASSWORD, "otp": 123456})
            assert r.status_code == 400 and r.json()["parameters"] == {"fieldName": "otp", "type": "string"}
            r = await t.client.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json() == {"message": "Decoding error."}
            r = await t.client.post(url, json=["a"])
            assert r.status_code == 400
            r = await t.client.post(url, json={})
            assert r.status_code == 400 and len(r.json()["errors"]) == 3
            r = await t.client.get(url)
            assert r.status_code in (404, 405)

    inprocess.run(body)


def test_reset_by_another_admin_over_the_api_revokes_and_forgets_the_secret(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            target = await _create_admin(t, "erin")
            frank_id = await _create_admin(t, "frank")
            await _cli("role", "create", "CatalogOnly", "--resource", "Magento_Catalog::catalog")
            hank_id = await _create_admin(t, "hank", role="CatalogOnly")

            secret, step, _ = await _enroll_and_activate(t, target)
            erin = (await _authenticate(t, "erin", _code(secret, step + 1))).json()
            f_secret, f_step, _ = await _enroll_and_activate(t, frank_id)
            frank = (await _authenticate(t, "frank", _code(f_secret, f_step + 1))).json()
            h_secret, h_step, _ = await _enroll_and_activate(t, hank_id)
            hank = (await _authenticate(t, "hank", _code(h_secret, h_step + 1))).json()

            # not one's own: a stolen token must not strip its owner's second factor
            me = jwt.decode(frank, options={"verify_signature": False})["uid"]
            r = await t.client.delete(f"/rest/V1/tillkey/tfa/{me}", headers=t.bearer(frank))
            assert r.status_code == 403
            assert (await t.client.delete("/rest/V1/tillkey/tfa/999999", headers=t.bearer(frank))).status_code == 404
            for bad in ("abc", "0", "-1", str(2**63)):
                r = await t.client.delete(f"/rest/V1/tillkey/tfa/{bad}", headers=t.bearer(frank))
                assert r.status_code == 400, (bad, r.text)
            # hank lacks Magento_TwoFactorAuth::tfa
            assert (await t.client.delete(f"/rest/V1/tillkey/tfa/{target}", headers=t.bearer(hank))).status_code == 403
            assert (await t.client.delete(f"/rest/V1/tillkey/tfa/{target}")).status_code == 401

            assert await _websites(t, erin) == 200
            r = await t.client.delete(f"/rest/V1/tillkey/tfa/{target}", headers=t.bearer(frank))
            assert r.status_code == 200 and r.json() is True
            assert await _websites(t, erin) == 401  # revoked at once in this process
            assert await _websites(t, frank) == 200
            # the old secret is gone: no provider until erin enrolls again
            assert (await _authenticate(t, "erin", _code(secret, _now_step(t)))).json() == NOT_CONFIGURED
            assert (await _admin_token(t, "erin")).json() == CONFIGURE
            # enrolling again gives a new secret; codes of the old one do not work with it
            new_secret, new_step, _ = await _enroll_and_activate(t, target)
            assert new_secret != secret
            assert (await _authenticate(t, "erin", _code(secret, new_step + 1))).json() == INVALID_CODE
            assert (await _authenticate(t, "erin", _code(new_secret, new_step + 1))).status_code == 200

    inprocess.run(body)


def test_reset_with_the_cli(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            await _create_admin(t, "ivy")
            # Enrolled with the CLI by the wall clock, as the revocation the CLI writes below is: the
            # app's clock must not run ahead of the CLI's, or the token would postdate the revocation.
            secret = (await _cli_json("admin", "2fa", "enroll", "ivy"))["secret"]
            step = _now_step()
            activated = await _cli_json("admin", "2fa", "activate", "ivy", "--code", _code(secret, step))
            recovery = activated["recovery_codes"]
            token = (await _authenticate(t, "ivy", _code(secret, step + 1))).json()
            assert await _websites(t, token) == 200
            out = (await _cli("admin", "2fa", "reset", "ivy")).stdout
            assert "reset" in out and "revoked" in out

            # the CLI wrote the revocation to the database; the running app follows the change feed
            async def revoked() -> bool:
                return await _websites(t, token) == 401

            await until(revoked, what="the token revoked")
            assert (await _authenticate(t, "ivy", recovery[0])).json() == NOT_CONFIGURED
            assert await _cli_json("admin", "2fa", "status", "ivy") == {
                "username": "ivy",
                "enrolled": False,
                "active": False,
                "recovery_codes_left": 0,
            }

    inprocess.run(body)


def test_cli_enroll_prints_uri_and_a_terminal_qr_code(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            await _create_admin(t, "jack")
            res = await _cli("admin", "2fa", "enroll", "jack")
            assert res.exit_code == 0
            match = re.search(r"otpauth://totp/Tillkey:jack\?secret=([A-Z2-7]+)&issuer=Tillkey", res.stdout)
            assert match
            assert "█" in res.stdout and "▀" in res.stdout
            # re-enrolling an inactive secret replaces it: the first secret's codes no longer activate
            first = match.group(1)
            second = await _cli_json("admin", "2fa", "enroll", "jack")
            assert second["secret"] != first and second["otpauth_uri"].startswith("otpauth://totp/Tillkey:jack?")
            assert "█" in second["qr_text"]
            step = _now_step()  # the CLI checks codes by the wall clock
            bad = await _cli("admin", "2fa", "activate", "jack", "--code", _code(first, step), check=False)
            assert bad.exit_code == 1 and bad.stderr.strip() == "error: Invalid code."
            out = (await _cli("admin", "2fa", "activate", "jack", "--code", _code(second["secret"], step))).stdout
            assert len(RECOVERY_CODE.findall(out)) == 10
            # an active secret is not replaced silently
            again = await _cli("admin", "2fa", "enroll", "jack", check=False)
            assert again.exit_code == 1 and "already active" in again.stderr
            assert (await _cli("admin", "2fa", "enroll", "nobody", check=False)).exit_code == 1
            nobody = await _cli("admin", "2fa", "activate", "nobody", "--code", "123456", check=False)
            assert nobody.exit_code == 1

    inprocess.run(body)


def test_customers_are_not_affected(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            await t.create_customer("kim@example.com")
            assert await t.customer_token("kim@example.com")

    inprocess.run(body)


# --- throttle -------------------------------------------------------------------------------------


def test_wrong_codes_count_toward_the_throttle(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path) as t:
            alice = await _create_admin(t, "alice")
            secret, step, recovery = await _enroll_and_activate(t, alice)
            wrong = _wrong_code(secret, step)
            for i in range(6):
                r = await _authenticate(t, "alice", wrong)
                assert r.status_code == 401 and r.json() == INVALID_CODE, i
            # now even the right password and a right code get the generic 401
            r = await _authenticate(t, "alice", _code(secret, step + 1))
            assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}
            assert (await _authenticate(t, "alice", recovery[0])).json() == {"message": SIGN_IN_FAILED}
            assert (await _admin_token(t, "alice")).json() == {"message": SIGN_IN_FAILED}
            await _cli("admin", "unlock", "alice")
            assert (await _authenticate(t, "alice", _code(secret, step + 1))).status_code == 200

    inprocess.run(body)


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(tmp_path: Path) -> None:
    # Otherwise whoever knows the password could alternate a password-only login with code guesses.
    async def body() -> None:
        async with required(tmp_path, login_throttle_max_failures=3) as t:
            alice = await _create_admin(t, "alice")
            secret, step, _ = await _enroll_and_activate(t, alice)
            wrong = _wrong_code(secret, step)
            for i in range(3):
                assert (await _authenticate(t, "alice", wrong)).json() == INVALID_CODE
                # the password is right each time, and the count still reaches the limit after 3 wrong codes
                expected = USE_PROVIDER if i < 2 else {"message": SIGN_IN_FAILED}
                assert (await _admin_token(t, "alice")).json() == expected
            assert (await _authenticate(t, "alice", _code(secret, step + 1))).json() == {"message": SIGN_IN_FAILED}

    inprocess.run(body)


# --- optional and off -----------------------------------------------------------------------------


def test_optional_mode_and_enrolment_over_the_api(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path, admin_2fa="optional") as t:
            await _create_admin(t, "alice")
            await _create_admin(t, "bert")
            # without 2FA, a password is enough
            r = await _admin_token(t, "alice")
            assert r.status_code == 200
            token = r.json()
            assert jwt.decode(token, options={"verify_signature": False})["amr"] == ["pwd"]

            assert (await t.client.post("/rest/V1/tillkey/tfa/enroll")).status_code == 401
            auth = t.bearer(token)
            r = await t.client.post("/rest/V1/tillkey/tfa/enroll", headers=auth)
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            got = r.json()
            assert set(got) == {"secret", "otpauth_uri", "qr_svg"}
            assert got["otpauth_uri"] == f"otpauth://totp/Tillkey:alice?secret={got['secret']}&issuer=Tillkey"
            assert got["qr_svg"].startswith("<svg")
            secret = got["secret"]
            step = _now_step(t)
            r = await t.client.post(
                "/rest/V1/tillkey/tfa/activate", json={"otp": _wrong_code(secret, step)}, headers=auth
            )
            assert r.status_code == 400 and r.json() == INVALID_CODE
            r = await t.client.post("/rest/V1/tillkey/tfa/activate", json={}, headers=auth)
            assert r.status_code == 400 and r.json()["parameters"] == {"fieldName": "otp"}
            r = await t.client.post("/rest/V1/tillkey/tfa/activate", json={"otp": _code(secret, step)}, headers=auth)
            assert r.status_code == 200, r.text
            codes = r.json()["recovery_codes"]
            assert len(codes) == 10 and all(RECOVERY_CODE.fullmatch(x) for x in codes)
            # active now: no second enrolment and no second activation
            assert (await t.client.post("/rest/V1/tillkey/tfa/enroll", headers=auth)).status_code == 409
            again = {"otp": _code(secret, step + 1)}
            assert (await t.client.post("/rest/V1/tillkey/tfa/activate", json=again, headers=auth)).status_code == 409

            # with active 2FA the password alone is refused; bert (no 2FA) still logs in with one
            t.advance(PERIOD)
            assert (await _admin_token(t, "alice")).json() == USE_PROVIDER
            assert (await _admin_token(t, "bert")).status_code == 200
            r = await _authenticate(t, "alice", _code(secret, step + 1))
            assert r.status_code == 200
            assert jwt.decode(r.json(), options={"verify_signature": False})["amr"] == ["pwd", "otp"]
            # only admins enroll themselves
            await t.create_customer("c@example.com", password="Customer-pass-99")
            ctoken = await t.customer_token("c@example.com", "Customer-pass-99")
            assert (await t.client.post("/rest/V1/tillkey/tfa/enroll", headers=t.bearer(ctoken))).status_code == 403

    inprocess.run(body)


def test_off_mode_takes_passwords_alone(tmp_path: Path) -> None:
    async def body() -> None:
        async with required(tmp_path, admin_2fa="off") as t:
            alice = await _create_admin(t, "alice")
            secret, step, _ = await _enroll_and_activate(t, alice)
            r = await _admin_token(t, "alice")
            assert r.status_code == 200
            assert await _websites(t, r.json()) == 200
            # the provider endpoint still works for an admin who has it
            assert (await _authenticate(t, "alice", _code(secret, step + 1))).status_code == 200

    inprocess.run(body)


def test_default_is_required() -> None:
    from tillkey.settings import Settings

    assert Settings.model_fields["admin_2fa"].default == "required"
    assert FAST_HASHING["TILLKEY_ADMIN_2FA"] == "off"  # only because the shared test servers need it
    assert inprocess.FAST_SETTINGS["admin_2fa"] == "off"


RFC6238_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC6238_SHA1_6_DIGITS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]


@pytest.mark.parametrize(("unix_time", "code"), RFC6238_SHA1_6_DIGITS)
def test_rfc6238_appendix_b_vectors(unix_time: int, code: str) -> None:
    assert pyotp.TOTP(RFC6238_SECRET).at(unix_time) == code
    # and our check accepts it at that time, reporting its step
    assert matching_step(RFC6238_SECRET, code, unix_time, last_step=-1) == step_at(unix_time)


def test_window_is_one_step_either_side() -> None:
    now = 1_111_111_111.0
    step = step_at(now)
    for offset in (-1, 0, 1):
        code = _code(RFC6238_SECRET, step + offset)
        assert matching_step(RFC6238_SECRET, code, now, last_step=0) == step + offset
    for offset in (-3, -2, 2, 3):
        assert matching_step(RFC6238_SECRET, _code(RFC6238_SECRET, step + offset), now, last_step=0) is None


def test_replay_and_older_steps_are_refused() -> None:
    now = 1_234_567_890.0
    step = step_at(now)
    code = _code(RFC6238_SECRET, step)
    assert matching_step(RFC6238_SECRET, code, now, last_step=step - 1) == step
    assert matching_step(RFC6238_SECRET, code, now, last_step=step) is None  # the same code again
    assert matching_step(RFC6238_SECRET, _code(RFC6238_SECRET, step - 1), now, last_step=step) is None
    assert matching_step(RFC6238_SECRET, _code(RFC6238_SECRET, step + 1), now, last_step=step) == step + 1


FULLWIDTH_287082 = "\uff12\uff18\uff17\uff10\uff18\uff12"  # digits to str.isdigit(), not to a TOTP check


@pytest.mark.parametrize("code", ["", "28708", "2870820", "28708a", " 287082", FULLWIDTH_287082, "287082\n"])
def test_malformed_codes_never_match(code: str) -> None:
    assert matching_step(RFC6238_SECRET, code, 59, last_step=-1) is None


def test_recovery_codes_format_and_normalization() -> None:
    codes = {new_recovery_code() for _ in range(200)}
    assert len(codes) == 200 and all(RECOVERY_CODE.fullmatch(c) for c in codes)
    assert normalize_recovery_code(" ABCD-efgh-2345 ") == "abcdefgh2345"
    assert normalize_recovery_code("abcd efgh 2345") == "abcdefgh2345"
    for bad in ("abcd-efgh-234", "abcd-efgh-23456", "abcd-efgh-2341", "abcd-efgh-234!", "ábcd-efgh-2345"):
        assert normalize_recovery_code(bad) is None


def test_the_same_code_twice_at_once_passes_once(tmp_path: Path) -> None:
    """Two requests racing with one valid code: the conditional update lets exactly one through."""
    from tillkey.clock import Clock
    from tillkey.runtime import Tillkey
    from tillkey.settings import Settings

    async def go() -> None:
        settings = Settings(
            data_dir=tmp_path,
            argon2_time_cost=2,
            argon2_memory_kib=19456,
            argon2_parallelism=1,
        )
        # A fixed time, 10 s into a 30 s step (1_900_000_000 % 30 == 10): no boundary during the test.
        tk = Tillkey(settings, clock=Clock(offset=1_900_000_000 - time.time()))
        await tk.start(sync=False)
        try:
            admin = await tk.services.accounts.create_admin(
                OPERATOR, username="race", email="race@example.com", password=ADMIN_PASSWORD
            )
            totp = tk.services.totp
            secret = (await totp.enroll(admin.id)).secret
            step = step_at(tk.clock.now())
            codes = await totp.activate(admin.id, _code(secret, step - 1))
            results = await asyncio.gather(*(totp.verify(admin.id, _code(secret, step)) for _ in range(8)))
            assert sorted(results) == [False] * 7 + [True]
            results = await asyncio.gather(*(totp.verify(admin.id, codes[0]) for _ in range(8)))
            assert sorted(results) == [False] * 7 + [True]
            assert await totp.verify(admin.id, _code(secret, step + 1))
            assert not await totp.verify(admin.id, _code(secret, step + 1))
            assert (await totp.status(admin.id)).recovery_codes_left == 9
            # deleting the admin takes the secret and the codes along (ON DELETE CASCADE)
            await tk.services.accounts.delete_admin(OPERATOR, admin.id)
            status = await totp.status(admin.id)
            assert (status.enrolled, status.recovery_codes_left) == (False, 0)
        finally:
            await tk.stop()

    asyncio.run(go())
