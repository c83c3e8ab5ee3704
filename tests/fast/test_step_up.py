"""Step-up for critical calls (RFC 9470, access/stepup.py): cancelling an order needs a multi-factor
sign-in within five minutes by default; anything less gets 401 insufficient_user_authentication
with the acr_values and max_age to sign in again with, and machines get 403."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.console.sign_in_session import DEV_COOKIE
from tillkey.principal import UserType
from tillkey.storeapi.seed import seed

CANCEL = "Magento_Sales::cancel"
CHALLENGE = (
    'Bearer realm="tillkey", error="insufficient_user_authentication", '
    'error_description="a multi-factor sign-in within the last 300 seconds is required", '
    'acr_values="mfa", max_age="300"'
)
FORMATS = ["jwt", "opaque"]


async def _orders(t: InProcess) -> list[int]:
    created = await seed(t.tk)
    return [int(o["entity_id"]) for o in created["orders"]]


async def _mfa_login(t: InProcess, secret: str, username: str = "alice") -> httpx.Response:
    r = await t.client.post(
        "/rest/V1/tfa/provider/google/authenticate",
        json={"username": username, "password": ADMIN_PASSWORD, "otp": t.totp_code(secret)},
    )
    assert r.status_code == 200, r.text
    return r


async def _cancel(t: InProcess, order_id: int, headers: dict[str, str]) -> httpx.Response:
    return await t.client.post(f"/rest/V1/orders/{order_id}/cancel", headers=headers)


def _assert_challenge(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == CHALLENGE
    # Magento's error shape, the message saying what is needed.
    assert r.json()["message"] == "a multi-factor sign-in within the last 300 seconds is required."


@pytest.mark.parametrize("token_format", FORMATS)
def test_cancelling_an_order_needs_a_recent_second_factor(tmp_path: Path, token_format: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", token_format=token_format) as t:
            first, second = (await _orders(t))[:2]
            alice = await t.create_admin("alice", resources=[CANCEL, "Magento_Sales::actions_view"])
            secret, _codes = await t.enable_totp(alice.id)

            password_only = await t.token_for(UserType.ADMIN, alice.id)
            _assert_challenge(await _cancel(t, first, t.bearer(password_only)))
            # Reading orders needs no step-up: the same token still works there.
            assert (await t.client.get(f"/rest/V1/orders/{first}", headers=t.bearer(password_only))).status_code == 200

            token = (await _mfa_login(t, secret)).json()
            r = await _cancel(t, first, t.bearer(token))
            assert r.status_code == 200 and r.json() is True
            order = (await t.client.get(f"/rest/V1/orders/{first}", headers=t.bearer(token))).json()
            assert order["state"] == order["status"] == "canceled"
            # Magento's answer for an order that cannot be cancelled (any more), and for none at all.
            assert (await _cancel(t, first, t.bearer(token))).json() is False
            assert (await _cancel(t, 999999, t.bearer(token))).status_code == 404

            # The same token, older than max_age, is challenged again; a fresh MFA sign-in passes.
            t.advance(301)
            _assert_challenge(await _cancel(t, second, t.bearer(token)))
            t.advance(30)  # the next TOTP step: the last one was spent
            fresh = (await _mfa_login(t, secret)).json()
            assert (await _cancel(t, second, t.bearer(fresh))).json() is True

    inprocess.run(body)


def test_a_refreshed_token_keeps_the_original_sign_in_time(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            first, second = (await _orders(t))[:2]
            alice = await t.create_admin("alice", resources=[CANCEL])
            secret, _codes = await t.enable_totp(alice.id)
            before = t.tk.clock.now_int()
            login = await _mfa_login(t, secret)
            signed_in = (await t.tk.authenticator.read(login.json())).auth_time
            assert signed_in is not None and before <= signed_in <= t.tk.clock.now_int()
            cookie = login.cookies.get("tillkey_refresh") or _cookie(login)

            t.advance(200)
            r = await t.client.post(
                "/rest/V1/integration/token/refresh", headers={"Cookie": f"tillkey_refresh={cookie}"}
            )
            assert r.status_code == 200, r.text
            renewed = r.json()
            claims = await t.tk.authenticator.read(renewed)
            assert claims.auth_time == signed_in and claims.auth_methods == ("pwd", "otp")
            assert (await _cancel(t, first, t.bearer(renewed))).json() is True
            # Past max_age from the sign-in (not from the refresh): challenged.
            t.advance(150)
            _assert_challenge(await _cancel(t, second, t.bearer(renewed)))

    inprocess.run(body)


def _cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "tillkey_refresh":
            return rest.split(";")[0]
    raise AssertionError("no refresh cookie")


@pytest.mark.parametrize(
    ("settings", "status"),
    [({}, 403), ({"step_up": {CANCEL: {"machines": "allow"}}}, 200)],
    ids=["machines-denied-by-default", "machines-allowed-by-setting"],
)
def test_machines_cannot_step_up(tmp_path: Path, settings: dict[str, Any], status: int) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **settings) as t:
            first = (await _orders(t))[0]
            alice = await t.create_admin("alice", resources=[CANCEL])
            key = await t.secret_key(alice.id, [CANCEL])
            r = await _cancel(t, first, t.basic(key))
            assert r.status_code == status, r.text
            if status == 403:
                assert "www-authenticate" not in r.headers
                assert r.json()["parameters"] == {"kind": "API key"}

    inprocess.run(body)


def test_the_requirement_is_a_setting(tmp_path: Path) -> None:
    async def body() -> None:
        # Off: the grant alone suffices.
        async with inprocess.running(tmp_path / "off", step_up={}) as t:
            first = (await _orders(t))[0]
            alice = await t.create_admin("alice", resources=[CANCEL])
            token = await t.token_for(UserType.ADMIN, alice.id)
            assert (await _cancel(t, first, t.bearer(token))).json() is True
        # On a parent node it covers the subtree, and one factor within a minute can be asked for.
        rule = {"Magento_Sales::sales": {"acr": "1fa", "max_age": 60}}
        async with inprocess.running(tmp_path / "parent", step_up=rule) as t:
            first = (await _orders(t))[0]
            alice = await t.create_admin("alice", resources=["Magento_Sales::actions_view"])
            token = await t.token_for(UserType.ADMIN, alice.id)
            assert (await t.client.get(f"/rest/V1/orders/{first}", headers=t.bearer(token))).status_code == 200
            t.advance(61)
            r = await t.client.get(f"/rest/V1/orders/{first}", headers=t.bearer(token))
            assert r.status_code == 401
            assert 'acr_values="1fa", max_age="60"' in r.headers["www-authenticate"]

    inprocess.run(body)


def test_an_unknown_resource_in_the_setting_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Magento_Nope::x"):
        inprocess.run(lambda: _start(tmp_path, {"Magento_Nope::x": {}}))


async def _start(tmp_path: Path, rules: dict[str, Any]) -> None:
    async with inprocess.running(tmp_path, step_up=rules):
        pass


# --- OAuth 2 authorize: acr_values and max_age (RFC 9470 §4, OIDC Core §3.1.2.1) ------------------

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
CALLBACK = "https://app.example/cb"


async def _client(t: InProcess) -> str:
    created = await t.tk.services.clients.create(
        OPERATOR,
        name="app",
        client_type="public",
        redirect_uris=[CALLBACK],
        grant_types=["authorization_code"],
        scopes=["openid", CANCEL],
        first_party=True,
    )
    return created.client.client_id


def _query(client_id: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": f"openid {CANCEL}",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **extra,
    }


async def _sign_in(t: InProcess, to_login: httpx.Response, secret: str | None) -> str:
    """Through the console's sign-in pages from authorize's redirect; where they send us next."""
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/console/login")
    r = await t.console_form(to_login.headers["location"], "/console/login", username="alice", password=ADMIN_PASSWORD)
    if secret is not None:
        r = await t.console_form(r.headers["location"], "/console/login/otp", otp=t.totp_code(secret))
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


async def _tokens(t: InProcess, client_id: str, redirect: httpx.Response) -> dict[str, Any]:
    assert redirect.status_code == 302 and redirect.headers["location"].startswith(CALLBACK), redirect.headers
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    r = await t.client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
            "client_id": client_id,
        },
    )
    assert r.status_code == 200, r.text
    return {
        name: jwt.decode(r.json()[name], options={"verify_signature": False}) for name in ("access_token", "id_token")
    }


def test_authorize_honours_acr_values_and_max_age(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            alice = await t.create_admin("alice", resources=[CANCEL])
            secret, _codes = await t.enable_totp(alice.id)
            client_id = await _client(t)

            # A password-only session is not enough for acr_values=mfa: that session ends, and the
            # fresh sign-in asks for the second factor; then on, without the parameters.
            session = await t.console_session(alice.id)
            cookie = {"Cookie": f"{DEV_COOKIE}={session.cookie}"}
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, acr_values="mfa"), headers=cookie)
            assert "acr_values" not in r.headers["location"]
            assert (await session.get("/console/")).status_code in (303, 401)
            t.client.cookies.clear()
            next_url = await _sign_in(t, r, secret)
            claims = await _tokens(t, client_id, await t.client.get(next_url))
            for token in claims.values():
                assert token["acr"] == "mfa" and token["amr"] == ["pwd", "otp"]
            signed_in = claims["id_token"]["auth_time"]
            assert claims["access_token"]["auth_time"] == signed_in

            # The same session meets acr_values=mfa at once, and a max_age it is within.
            t.advance(100)
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, acr_values="mfa", max_age="120"))
            assert (await _tokens(t, client_id, r))["access_token"]["auth_time"] == signed_in
            # Older than max_age: prompt=none is told login_required; otherwise a fresh sign-in.
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, max_age="60", prompt="none"))
            assert r.status_code == 302 and "error=login_required" in r.headers["location"]
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, max_age="60"))
            t.advance(30)
            next_url = await _sign_in(t, r, secret)
            fresh = await _tokens(t, client_id, await t.client.get(next_url))
            assert fresh["access_token"]["auth_time"] >= signed_in + 130
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, max_age="ten"))
            assert r.status_code == 302 and "error=invalid_request" in r.headers["location"]

    inprocess.run(body)


def test_acr_values_cannot_loop_a_person_without_a_second_factor(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            await t.create_admin("alice", resources=[CANCEL])
            client_id = await _client(t)
            r = await t.client.get("/oauth2/authorize", params=_query(client_id, acr_values="mfa"))
            next_url = await _sign_in(t, r, None)
            claims = await _tokens(t, client_id, await t.client.get(next_url))
            # The token says what the sign-in reached; the resource server's step-up judges it.
            assert claims["access_token"]["acr"] == "1fa"

    inprocess.run(body)
