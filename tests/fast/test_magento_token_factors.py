"""Magento's REST token endpoints and the factors of a sign-in (issue 16): the tokens they issue
record how (`amr`) and when (`auth_time`) their holder signed in, for step-up (RFC 9470); and an
admin who must use a passkey (TILLKEY_ADMIN_PASSKEY_REQUIRED), which these endpoints cannot check,
is refused with Magento's 401 and a message saying where to sign in instead, never given a token."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, BASE_URL, CUSTOMER_PASSWORD, InProcess
from tests.passkey_support import SoftAuthenticator
from tillkey.accounts.passkeys import Owner
from tillkey.accounts.signin.machine import SIGN_IN_FAILED
from tillkey.accounts.totp import PERIOD
from tillkey.principal import UserType
from tillkey.surfaces.magento import PASSKEY_REQUIRED

ADMIN_TOKEN = "/rest/V1/integration/admin/token"
CUSTOMER_TOKEN = "/rest/V1/integration/customer/token"
GOOGLE = "/rest/V1/tfa/provider/google/authenticate"


async def _factors(t: InProcess, token: str) -> tuple[tuple[str, ...], int | None]:
    """What the server reads from the token (either format): its amr and auth_time."""
    claims = await t.tk.authenticator.read(token)
    return claims.auth_methods, claims.auth_time


async def _token(t: InProcess, path: str, body: dict[str, str]) -> str:
    r = await t.client.post(path, json=body)
    assert r.status_code == 200, r.text
    return str(r.json())


@pytest.mark.parametrize("token_format", ["jwt", "opaque"])
def test_magento_tokens_record_how_and_when_their_holder_signed_in(tmp_path: Path, token_format: str) -> None:
    async def body() -> None:
        async with inprocess.running(
            tmp_path, admin_2fa="optional", customer_2fa="optional", token_format=token_format
        ) as t:
            t.freeze()
            await t.create_admin("clerk", resources=["Magento_Catalog::products"])
            alice = await t.create_admin("alice", resources=["Magento_Catalog::products"])
            secret, _codes = await t.enable_totp(alice.id)
            ada = await t.create_customer("ada@example.com")
            await t.create_customer("bob@example.com")
            customer_totp = t.tk.services.totp_for(UserType.CUSTOMER)
            enrolment = await customer_totp.enroll(ada.id)
            await customer_totp.activate(ada.id, t.totp_code(enrolment.secret))
            t.advance(PERIOD)
            now = t.clock.now_int()

            clerk = await _token(t, ADMIN_TOKEN, {"username": "clerk", "password": ADMIN_PASSWORD})
            assert await _factors(t, clerk) == (("pwd",), now)
            otp = t.totp_code(secret)
            alice_token = await _token(t, GOOGLE, {"username": "alice", "password": ADMIN_PASSWORD, "otp": otp})
            assert await _factors(t, alice_token) == (("pwd", "otp"), now)
            bob = await _token(t, CUSTOMER_TOKEN, {"username": "bob@example.com", "password": CUSTOMER_PASSWORD})
            assert await _factors(t, bob) == (("pwd",), now)
            with_code = {"username": "ada@example.com", "password": CUSTOMER_PASSWORD}
            with_code["otp"] = t.totp_code(enrolment.secret)
            ada_token = await _token(t, CUSTOMER_TOKEN, with_code)
            assert await _factors(t, ada_token) == (("pwd", "otp"), now)

            if token_format == "jwt":  # in the token itself, for any resource server to read
                claims = jwt.decode(alice_token, options={"verify_signature": False})
                assert claims["amr"] == ["pwd", "otp"] and claims["auth_time"] == now
                claims = jwt.decode(bob, options={"verify_signature": False})
                assert claims["amr"] == ["pwd"] and claims["auth_time"] == now

    inprocess.run(body)


def _refused_for_a_passkey(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == {"message": PASSKEY_REQUIRED}
    assert "/console/login" in PASSKEY_REQUIRED and "/oauth2/authorize" in PASSKEY_REQUIRED
    assert "set-cookie" not in r.headers  # no refresh cookie either


def test_an_admin_who_must_use_a_passkey_is_sent_to_the_console(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"admin_2fa": "optional", "admin_passkey_required": "full_access"}
        async with inprocess.running(tmp_path, **settings) as t:
            root = await t.create_admin("root")  # Administrators: Magento_Backend::all
            await t.create_admin("clerk", resources=["Magento_Catalog::products"])
            secret, _codes = await t.enable_totp(root.id)
            password = {"username": "root", "password": ADMIN_PASSWORD}

            # Password alone, and password with a TOTP code: neither is a passkey.
            _refused_for_a_passkey(await t.client.post(ADMIN_TOKEN, json=password))
            _refused_for_a_passkey(await t.client.post(GOOGLE, json={**password, "otp": t.totp_code(secret)}))
            # With a passkey set up, the same: these endpoints have no way to ask for it.
            key, owner = SoftAuthenticator(BASE_URL), Owner(UserType.ADMIN, root.id)
            ceremony = await t.tk.services.passkeys.registration_options(owner, "setup")
            await t.tk.services.passkeys.register(owner, "setup", ceremony.id, key.create(ceremony.options), "Key")
            _refused_for_a_passkey(await t.client.post(ADMIN_TOKEN, json=password))

            # A wrong password says nothing about passkeys (no hint that the account exists or what it needs).
            r = await t.client.post(ADMIN_TOKEN, json={"username": "root", "password": "wrong-password-1"})
            assert r.status_code == 401 and r.json() == {"message": SIGN_IN_FAILED}
            # An admin without full access is not concerned ("full_access"): a token as before.
            assert await _token(t, ADMIN_TOKEN, {"username": "clerk", "password": ADMIN_PASSWORD})

    inprocess.run(body)
