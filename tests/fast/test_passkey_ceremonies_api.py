"""Issue 16's passkey ceremonies over HTTP, as a client app runs them against the API
(/auth/mfa/passkeys to register, Medusa's MFA challenge to sign in), with the software
authenticator of tests/passkey_support.py (on fido2): every refusal a relying party owes, each
next to the answer that passes. tests/fast/test_passkeys.py checks the same at the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests import inprocess
from tests.inprocess import BASE_URL, CUSTOMER_PASSWORD, InProcess
from tests.passkey_support import SoftAuthenticator

EMAIL = "ada@example.com"
NOT_VERIFIED = "The passkey could not be verified."
REFUSED = "Invalid MFA challenge code"  # Medusa 2.21's message (recorded)
# Wrong answers spend the failure budget (tests/fast/test_passkey_signin.py): room for all of them.
ROOMY = {"login_throttle_max_failures": 1000, "customer_lockout_failures": 1000}


async def _login(t: InProcess) -> dict[str, Any]:
    r = await t.client.post("/auth/customer/emailpass", json={"email": EMAIL, "password": CUSTOMER_PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _registration(t: InProcess, token: str) -> dict[str, Any]:
    r = await t.client.post("/auth/mfa/passkeys/options", json={}, headers=t.bearer(token))
    assert r.status_code == 200, r.text
    started: dict[str, Any] = r.json()
    return started


async def _register(t: InProcess, token: str, started: dict[str, Any], credential: Any) -> httpx.Response:
    body = {"ceremony_id": started["ceremony_id"], "credential": credential, "name": "Phone"}
    return await t.client.post("/auth/mfa/passkeys", json=body, headers=t.bearer(token))


async def _assertion_options(t: InProcess, challenge: dict[str, Any]) -> dict[str, Any]:
    r = await t.client.post(
        f"/auth/mfa/challenges/{challenge['mfa_challenge']['id']}/passkey",
        json={},
        headers=t.bearer(challenge["token"]),
    )
    assert r.status_code == 200, r.text
    options: dict[str, Any] = r.json()
    return options


async def _verify(t: InProcess, challenge: dict[str, Any], ceremony_id: str, credential: Any) -> httpx.Response:
    return await t.client.post(
        f"/auth/mfa/challenges/{challenge['mfa_challenge']['id']}/verify",
        json={"method": "passkey", "ceremony_id": ceremony_id, "credential": credential},
        headers=t.bearer(challenge["token"]),
    )


async def _sign_in(t: InProcess, key: SoftAuthenticator, **kw: Any) -> httpx.Response:
    challenge = await _login(t)
    options = await _assertion_options(t, challenge)
    return await _verify(t, challenge, options["ceremony_id"], key.get(options["options"], **kw))


def _refused(r: httpx.Response, message: str = REFUSED) -> None:
    assert r.status_code in (400, 401) and r.json()["message"] == message, r.text


def test_every_passkey_ceremony_refusal_through_the_api(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, webauthn_user_verification="required", **ROOMY) as t:
            await t.create_customer(EMAIL)
            plain = (await _login(t))["token"]
            key = SoftAuthenticator(BASE_URL)

            # Registration: another origin, another RP id, no user verification: refused (400).
            for wrong in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"uv": False}):
                started = await _registration(t, plain)
                r = await _register(t, plain, started, key.create(started["options"], **wrong))
                assert r.status_code == 400, r.text
                _refused(r, NOT_VERIFIED)
            # The right answer is registered; the same answer again (a replayed challenge) is not.
            started = await _registration(t, plain)
            made = key.create(started["options"])
            assert (await _register(t, plain, started, made)).status_code == 201
            assert (await _register(t, plain, started, made)).status_code == 400
            cred = key.credentials[-1]

            # Sign-in: another origin, another RP id, no user verification: refused (401).
            for wrong in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"uv": False}):
                _refused(await _sign_in(t, key, credential=cred, **wrong))

            # A replayed challenge: an answer that signed in once does not sign in again, not even
            # on a fresh challenge of the same account.
            challenge = await _login(t)
            options = await _assertion_options(t, challenge)
            answer = key.get(options["options"], credential=cred, counter=10)
            r = await _verify(t, challenge, options["ceremony_id"], answer)
            assert r.status_code == 200, r.text
            _refused(await _verify(t, await _login(t), options["ceremony_id"], answer))

            # A cloned authenticator: its counter at or behind the last one seen is refused; the
            # genuine one, moving forward, signs in.
            _refused(await _sign_in(t, key, credential=cred, counter=10))
            _refused(await _sign_in(t, key, credential=cred, counter=4))
            r = await _sign_in(t, key, credential=cred, counter=11)
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            assert (await t.tk.authenticator.read(token)).auth_methods == ("pwd", "hwk", "user", "mfa")

            # The passkey is listed with its counter and removed (MFA within five minutes: this token).
            listed = (await t.client.get("/auth/mfa/passkeys", headers=t.bearer(token))).json()["passkeys"]
            assert [(p["name"], p["sign_count"]) for p in listed] == [("Phone", 11)]
            r = await t.client.request("DELETE", f"/auth/mfa/passkeys/{listed[0]['id']}", headers=t.bearer(token))
            assert r.status_code == 200 and r.json()["deleted"] is True
            assert "mfa_required" not in await _login(t)

    inprocess.run(body)
