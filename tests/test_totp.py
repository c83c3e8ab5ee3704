"""Admin two-factor auth: TOTP (RFC 6238) and recovery codes, over real HTTP and the CLI
(magento.md §2.3), plus unit tests of the window and replay logic with fixed times.

Codes are computed with pyotp from the enrolled secret. A code is accepted once, so each test
anchors a step N just before activating: the activation spends N, the next login N + 1. Both stay
within the server's ±1 window even if a 30 s boundary passes in between.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from tests.conftest import ADMIN_PASSWORD, FAST_HASHING, Server, start_server
from tillkey.access.delegation import OPERATOR
from tillkey.security.totp import (
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


def _create_admin(srv: Server, username: str, role: str | None = None) -> int:
    args = ["admin", "create", "--username", username, "--email", f"{username}@example.com", "--password"]
    args.append(ADMIN_PASSWORD)
    if role:
        args += ["--role", role]
    return int(srv.cli_json(*args)["id"])


def _admin_token(srv: Server, username: str, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/rest/V1/integration/admin/token", json={"username": username, "password": password}, timeout=30
    )


def _authenticate(srv: Server, username: str, otp: Any, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/rest/V1/tfa/provider/google/authenticate",
        json={"username": username, "password": password, "otp": otp},
        timeout=30,
    )


def _code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * PERIOD)


def _now_step() -> int:
    return int(time.time() // PERIOD)


def _wrong_code(secret: str, step: int) -> str:
    """A 6-digit code that matches none of the steps the server could accept around `step`."""
    taken = {_code(secret, s) for s in range(step - 3, step + 4)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in taken)


def _enroll_and_activate(srv: Server, username: str) -> tuple[str, int, list[str]]:
    """(secret, N, recovery codes); the activation spent step N, so N + 1 is the next usable code."""
    secret = srv.cli_json("admin", "2fa", "enroll", username)["secret"]
    step = _now_step()
    codes = srv.cli_json("admin", "2fa", "activate", username, "--code", _code(secret, step))["recovery_codes"]
    return secret, step, codes


def _websites(srv: Server, token: str) -> int:
    with srv.client(token) as c:
        return c.get("/rest/V1/store/websites").status_code


def _eventually_401(srv: Server, token: str) -> None:
    deadline = time.monotonic() + 10
    while _websites(srv, token) != 401:
        assert time.monotonic() < deadline, "the token was not revoked"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with TILLKEY_ADMIN_2FA=required (the default); each test uses its own admins."""
    srv = start_server(tmp_path_factory.mktemp("tfa-required"), "sqlite", TILLKEY_ADMIN_2FA="required")
    try:
        yield srv
    finally:
        srv.stop()


# --- required mode --------------------------------------------------------------------------------


def test_required_mode_sends_an_unconfigured_admin_to_configure(required: Server) -> None:
    _create_admin(required, "uma")
    r = _admin_token(required, "uma")
    assert r.status_code == 400
    assert r.json() == CONFIGURE
    # a wrong password is still the generic 401 (the password check comes first)
    r = _admin_token(required, "uma", "Wrong-pass-123")
    assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}
    # the provider endpoint knows no provider for them
    r = _authenticate(required, "uma", "123456")
    assert r.status_code == 400 and r.json() == NOT_CONFIGURED


def test_enrolled_but_not_activated_still_has_to_configure(required: Server) -> None:
    _create_admin(required, "vera")
    required.cli_json("admin", "2fa", "enroll", "vera")
    assert _admin_token(required, "vera").json() == CONFIGURE
    assert _authenticate(required, "vera", "123456").json() == NOT_CONFIGURED
    status = required.cli_json("admin", "2fa", "status", "vera")
    assert status == {"username": "vera", "enrolled": True, "active": False, "recovery_codes_left": 0}


def test_enroll_activate_authenticate_gives_a_token_with_otp_in_amr(required: Server) -> None:
    _create_admin(required, "alice")
    secret, step, recovery = _enroll_and_activate(required, "alice")
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert all(RECOVERY_CODE.fullmatch(c) for c in recovery)

    r = _admin_token(required, "alice")
    assert r.status_code == 400
    assert r.json() == USE_PROVIDER

    r = _authenticate(required, "alice", _code(secret, step + 1))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    token = r.json()
    assert isinstance(token, str)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["utypid"] == 2 and claims["amr"] == ["pwd", "otp"]
    assert _websites(required, token) == 200
    status = required.cli_json("admin", "2fa", "status", "alice")
    assert status == {"username": "alice", "enrolled": True, "active": True, "recovery_codes_left": 10}


def test_wrong_code_is_401_invalid_code(required: Server) -> None:
    _create_admin(required, "bob")
    secret, step, _ = _enroll_and_activate(required, "bob")
    for otp in (_wrong_code(secret, step), "12345", "1234567", "abcdef", " ", "\u0661\u0662\u0663\u0664\u0665\u0666"):
        r = _authenticate(required, "bob", otp)
        assert r.status_code == 401, otp
        assert r.json() == INVALID_CODE
    # a right code with a wrong password: the generic sign-in failure, not a hint about the code
    r = _authenticate(required, "bob", _code(secret, step + 1), password="Wrong-pass-123")
    assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}


def test_a_code_is_accepted_once(required: Server) -> None:
    _create_admin(required, "carl")
    secret, step, _ = _enroll_and_activate(required, "carl")
    # the activation code itself was spent
    assert _authenticate(required, "carl", _code(secret, step)).json() == INVALID_CODE
    code = _code(secret, step + 1)
    assert _authenticate(required, "carl", code).status_code == 200
    r = _authenticate(required, "carl", code)
    assert r.status_code == 401 and r.json() == INVALID_CODE
    # an older code inside the window is refused too: steps only move forward
    assert _authenticate(required, "carl", _code(secret, step)).json() == INVALID_CODE


def test_recovery_code_works_once(required: Server) -> None:
    _create_admin(required, "dora")
    _secret, _step, recovery = _enroll_and_activate(required, "dora")
    r = _authenticate(required, "dora", recovery[0].upper().replace("-", " "))  # typed loosely
    assert r.status_code == 200, r.text
    assert jwt.decode(r.json(), options={"verify_signature": False})["amr"] == ["pwd", "otp"]
    r = _authenticate(required, "dora", recovery[0])
    assert r.status_code == 401 and r.json() == INVALID_CODE
    assert _authenticate(required, "dora", recovery[1]).status_code == 200
    assert _authenticate(required, "dora", "aaaa-bbbb-cccc").json() == INVALID_CODE
    assert required.cli_json("admin", "2fa", "status", "dora")["recovery_codes_left"] == 8


def test_bad_bodies_are_400s(required: Server) -> None:
    url = f"{required.url}/rest/V1/tfa/provider/google/authenticate"
    r = httpx.post(url, json={"username": "alice", "password": ADMIN_PASSWORD})
    assert r.status_code == 400
    assert r.json() == {
        "message": '"%fieldName" is required. Enter and try again.',
        "parameters": {"fieldName": "otp"},
    }
    r = httpx.post(url, json={"username": "alice", "password": ADMIN_PASSWORD, "otp": 123456})
    assert r.status_code == 400 and r.json()["parameters"] == {"fieldName": "otp", "type": "string"}
    r = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"message": "Decoding error."}
    r = httpx.post(url, json=["a"])
    assert r.status_code == 400
    r = httpx.post(url, json={})
    assert r.status_code == 400 and len(r.json()["errors"]) == 3
    r = httpx.get(url)
    assert r.status_code in (404, 405)


def test_reset_by_another_admin_over_the_api_revokes_and_forgets_the_secret(required: Server) -> None:
    target = _create_admin(required, "erin")
    _create_admin(required, "frank")
    required.cli("role", "create", "CatalogOnly", "--resource", "Magento_Catalog::catalog")
    _create_admin(required, "hank", role="CatalogOnly")

    secret, step, _ = _enroll_and_activate(required, "erin")
    erin = _authenticate(required, "erin", _code(secret, step + 1)).json()
    f_secret, f_step, _ = _enroll_and_activate(required, "frank")
    frank = _authenticate(required, "frank", _code(f_secret, f_step + 1)).json()
    h_secret, h_step, _ = _enroll_and_activate(required, "hank")
    hank = _authenticate(required, "hank", _code(h_secret, h_step + 1)).json()

    with required.client(frank) as c:
        # not one's own: a stolen token must not strip its owner's second factor
        me = jwt.decode(frank, options={"verify_signature": False})["uid"]
        r = c.delete(f"/rest/V1/tillkey/tfa/{me}")
        assert r.status_code == 403
        assert c.delete("/rest/V1/tillkey/tfa/999999").status_code == 404
        for bad in ("abc", "0", "-1", str(2**63)):
            r = c.delete(f"/rest/V1/tillkey/tfa/{bad}")
            assert r.status_code == 400, (bad, r.text)
    with required.client(hank) as c:  # lacks Magento_TwoFactorAuth::tfa
        assert c.delete(f"/rest/V1/tillkey/tfa/{target}").status_code == 403
    assert httpx.delete(f"{required.url}/rest/V1/tillkey/tfa/{target}").status_code == 401

    assert _websites(required, erin) == 200
    with required.client(frank) as c:
        r = c.delete(f"/rest/V1/tillkey/tfa/{target}")
    assert r.status_code == 200 and r.json() is True
    assert _websites(required, erin) == 401  # revoked at once in this process
    assert _websites(required, frank) == 200
    # the old secret is gone: no provider until erin enrolls again
    assert _authenticate(required, "erin", _code(secret, _now_step())).json() == NOT_CONFIGURED
    assert _admin_token(required, "erin").json() == CONFIGURE
    # enrolling again gives a new secret; codes of the old one do not work with it
    new_secret, new_step, _ = _enroll_and_activate(required, "erin")
    assert new_secret != secret
    assert _authenticate(required, "erin", _code(secret, new_step + 1)).json() == INVALID_CODE
    assert _authenticate(required, "erin", _code(new_secret, new_step + 1)).status_code == 200


def test_reset_with_the_cli(required: Server) -> None:
    _create_admin(required, "ivy")
    secret, step, recovery = _enroll_and_activate(required, "ivy")
    token = _authenticate(required, "ivy", _code(secret, step + 1)).json()
    assert _websites(required, token) == 200
    out = required.cli("admin", "2fa", "reset", "ivy").stdout
    assert "reset" in out and "revoked" in out
    _eventually_401(required, token)  # the CLI wrote the revocation; the server follows the feed
    assert _authenticate(required, "ivy", recovery[0]).json() == NOT_CONFIGURED
    assert required.cli_json("admin", "2fa", "status", "ivy") == {
        "username": "ivy", "enrolled": False, "active": False, "recovery_codes_left": 0,
    }  # fmt: skip


def test_cli_enroll_prints_uri_and_a_terminal_qr_code(required: Server) -> None:
    _create_admin(required, "jack")
    res = required.cli("admin", "2fa", "enroll", "jack")
    assert res.returncode == 0
    match = re.search(r"otpauth://totp/Tillkey:jack\?secret=([A-Z2-7]+)&issuer=Tillkey", res.stdout)
    assert match
    assert "█" in res.stdout and "▀" in res.stdout
    # re-enrolling an inactive secret replaces it: the first secret's codes no longer activate
    first = match.group(1)
    second = required.cli_json("admin", "2fa", "enroll", "jack")
    assert second["secret"] != first and second["otpauth_uri"].startswith("otpauth://totp/Tillkey:jack?")
    assert "█" in second["qr_text"]
    step = _now_step()
    bad = required.cli("admin", "2fa", "activate", "jack", "--code", _code(first, step), check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: Invalid code."
    out = required.cli("admin", "2fa", "activate", "jack", "--code", _code(second["secret"], step)).stdout
    assert len(RECOVERY_CODE.findall(out)) == 10
    # an active secret is not replaced silently
    again = required.cli("admin", "2fa", "enroll", "jack", check=False)
    assert again.returncode == 1 and "already active" in again.stderr
    assert required.cli("admin", "2fa", "enroll", "nobody", check=False).returncode == 1
    assert required.cli("admin", "2fa", "activate", "nobody", "--code", "123456", check=False).returncode == 1


def test_customers_are_not_affected(required: Server) -> None:
    from tests.conftest import CUSTOMER_PASSWORD

    required.cli("customer", "create", "--email", "kim@example.com", "--password", CUSTOMER_PASSWORD,
                 "--first-name", "Kim", "--last-name", "K")  # fmt: skip
    r = httpx.post(
        f"{required.url}/rest/V1/integration/customer/token",
        json={"username": "kim@example.com", "password": CUSTOMER_PASSWORD},
    )
    assert r.status_code == 200


# --- throttle -------------------------------------------------------------------------------------


def test_wrong_codes_count_toward_the_throttle(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_ADMIN_2FA="required")
    _create_admin(srv, "alice")
    secret, step, recovery = _enroll_and_activate(srv, "alice")
    wrong = _wrong_code(secret, step)
    for i in range(6):
        r = _authenticate(srv, "alice", wrong)
        assert r.status_code == 401 and r.json() == INVALID_CODE, i
    # now even the right password and a right code get the generic 401
    r = _authenticate(srv, "alice", _code(secret, step + 1))
    assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}
    assert _authenticate(srv, "alice", recovery[0]).json() == {"message": SIGN_IN_FAILED}
    assert _admin_token(srv, "alice").json() == {"message": SIGN_IN_FAILED}
    srv.cli("admin", "unlock", "alice")
    assert _authenticate(srv, "alice", _code(secret, step + 1)).status_code == 200


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(sqlite_server_factory: Any) -> None:
    # Otherwise whoever knows the password could alternate a password-only login with code guesses.
    srv: Server = sqlite_server_factory(TILLKEY_ADMIN_2FA="required", TILLKEY_LOGIN_THROTTLE_MAX_FAILURES="3")
    _create_admin(srv, "alice")
    secret, step, _ = _enroll_and_activate(srv, "alice")
    wrong = _wrong_code(secret, step)
    for i in range(3):
        assert _authenticate(srv, "alice", wrong).json() == INVALID_CODE
        # the password is right each time, and the count still reaches the limit after 3 wrong codes
        assert _admin_token(srv, "alice").json() == (USE_PROVIDER if i < 2 else {"message": SIGN_IN_FAILED})
    assert _authenticate(srv, "alice", _code(secret, step + 1)).json() == {"message": SIGN_IN_FAILED}


# --- optional and off -----------------------------------------------------------------------------


def test_optional_mode_and_enrolment_over_the_api(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_ADMIN_2FA="optional")
    _create_admin(srv, "alice")
    _create_admin(srv, "bert")
    # without 2FA, a password is enough
    r = _admin_token(srv, "alice")
    assert r.status_code == 200
    token = r.json()
    assert jwt.decode(token, options={"verify_signature": False})["amr"] == ["pwd"]

    assert httpx.post(f"{srv.url}/rest/V1/tillkey/tfa/enroll").status_code == 401
    with srv.client(token) as c:
        r = c.post("/rest/V1/tillkey/tfa/enroll")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
        assert body["otpauth_uri"] == f"otpauth://totp/Tillkey:alice?secret={body['secret']}&issuer=Tillkey"
        assert body["qr_svg"].startswith("<svg")
        secret = body["secret"]
        step = _now_step()
        r = c.post("/rest/V1/tillkey/tfa/activate", json={"otp": _wrong_code(secret, step)})
        assert r.status_code == 400 and r.json() == INVALID_CODE
        r = c.post("/rest/V1/tillkey/tfa/activate", json={})
        assert r.status_code == 400 and r.json()["parameters"] == {"fieldName": "otp"}
        r = c.post("/rest/V1/tillkey/tfa/activate", json={"otp": _code(secret, step)})
        assert r.status_code == 200, r.text
        codes = r.json()["recovery_codes"]
        assert len(codes) == 10 and all(RECOVERY_CODE.fullmatch(x) for x in codes)
        # active now: no second enrolment and no second activation
        assert c.post("/rest/V1/tillkey/tfa/enroll").status_code == 409
        assert c.post("/rest/V1/tillkey/tfa/activate", json={"otp": _code(secret, step + 1)}).status_code == 409

    # with active 2FA the password alone is refused; bert (no 2FA) still logs in with one
    assert _admin_token(srv, "alice").json() == USE_PROVIDER
    assert _admin_token(srv, "bert").status_code == 200
    r = _authenticate(srv, "alice", _code(secret, step + 1))
    assert r.status_code == 200
    assert jwt.decode(r.json(), options={"verify_signature": False})["amr"] == ["pwd", "otp"]
    # only admins enroll themselves
    srv.cli("customer", "create", "--email", "c@example.com", "--password", "Customer-pass-99",
            "--first-name", "C", "--last-name", "D")  # fmt: skip
    ctoken = srv.token("customer", "c@example.com", "Customer-pass-99")
    with srv.client(ctoken) as c:
        assert c.post("/rest/V1/tillkey/tfa/enroll").status_code == 403


def test_off_mode_takes_passwords_alone(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_ADMIN_2FA="off")
    _create_admin(srv, "alice")
    secret, step, _ = _enroll_and_activate(srv, "alice")
    r = _admin_token(srv, "alice")
    assert r.status_code == 200
    assert _websites(srv, r.json()) == 200
    # the provider endpoint still works for an admin who has it
    assert _authenticate(srv, "alice", _code(secret, step + 1)).status_code == 200


def test_default_is_required() -> None:
    from tillkey.settings import Settings

    assert Settings.model_fields["admin_2fa"].default == "required"
    assert FAST_HASHING["TILLKEY_ADMIN_2FA"] == "off"  # only because the shared test servers need it


# --- units: RFC 6238 vectors, the window, replay -------------------------------------------------

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
    from tillkey.accounts.service import Accounts
    from tillkey.clock import Clock
    from tillkey.runtime import Tillkey
    from tillkey.security.totp import Totp
    from tillkey.settings import Settings

    async def go() -> None:
        settings = Settings(
            data_dir=tmp_path, argon2_time_cost=2, argon2_memory_kib=19456, argon2_parallelism=1,
        )  # fmt: skip
        # A fixed time, 10 s into a 30 s step (1_900_000_000 % 30 == 10): no boundary during the test.
        tk = Tillkey(settings, clock=Clock(offset=1_900_000_000 - time.time()))
        await tk.start(sync=False)
        try:
            admin = await Accounts(tk).create_admin(
                OPERATOR, username="race", email="race@example.com", password=ADMIN_PASSWORD
            )
            totp = Totp(tk)
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
            await Accounts(tk).delete_admin(OPERATOR, admin.id)
            status = await totp.status(admin.id)
            assert (status.enrolled, status.recovery_codes_left) == (False, 0)
        finally:
            await tk.stop()

    asyncio.run(go())
