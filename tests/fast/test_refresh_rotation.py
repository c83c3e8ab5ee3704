"""One refresh rotation (tokens/refresh.py) for the OAuth 2 refresh_token grant and the Magento
refresh cookie: reuse of a spent token revokes the family and its access tokens, and nothing
descending from one sign-in outlives TILLKEY_ADMIN_SIGNIN_MAX_AGE / TILLKEY_CUSTOMER_SIGNIN_MAX_AGE."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests import inprocess
from tests.inprocess import InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.oauth2.rfc6749.token_response import Grant
from tillkey.principal import UserType

HOUR = 3600
COOKIE = "tillkey_refresh"


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def _cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.split(";")[0]
    raise AssertionError("no refresh cookie")


async def _magento_refresh(t: InProcess, cookie: str) -> httpx.Response:
    return await t.client.post("/rest/V1/integration/token/refresh", headers={"Cookie": f"{COOKIE}={cookie}"})


def test_the_magento_refresh_cookie_rotates_until_the_admin_sign_in_max_age(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice")
            login = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "alice", "password": inprocess.ADMIN_PASSWORD}
            )
            signed_in = t.tk.clock.now_int()
            cookie = _cookie(login)
            end = signed_in + t.tk.settings.admin_signin_max_age
            for _ in range(2):
                t.advance(3 * HOUR)
                r = await _magento_refresh(t, cookie)
                assert r.status_code == 200, r.text
                assert _exp(r.json()) <= end
                cookie = _cookie(r)
            t.advance(3 * HOUR)  # 9 h after the sign-in, 3 h after the last rotation
            late = await _magento_refresh(t, cookie)
            assert late.status_code == 401, late.text

    inprocess.run(body)


def test_reusing_a_spent_refresh_cookie_revokes_the_family_and_its_access_tokens(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            login = await t.client.post(
                "/rest/V1/integration/customer/token",
                json={"username": "ada@example.com", "password": inprocess.CUSTOMER_PASSWORD},
            )
            first = _cookie(login)
            rotated = await _magento_refresh(t, first)
            assert rotated.status_code == 200
            access, second = rotated.json(), _cookie(rotated)
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(access))).status_code == 200
            assert (await _magento_refresh(t, first)).status_code == 401  # the thief, or the victim, replays
            assert (await _magento_refresh(t, second)).status_code == 401
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(access))).status_code == 401

    inprocess.run(body)


async def _oauth_family(t: InProcess, user_type: UserType, user_id: int) -> tuple[dict[str, Any], dict[str, str]]:
    registered = await t.tk.services.clients.create(
        OPERATOR,
        name="app",
        client_type="confidential",
        redirect_uris=["https://app.example.test/callback"],
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "self", "admin_self"],
    )
    client = registered.client
    scope = ("self",) if user_type == UserType.CUSTOMER else ("admin_self",)
    # What the authorization-code grant answers (it calls this very `respond`).
    grant = Grant(client, int(user_type), user_id, scope, t.tk.clock.now_int(), ("pwd",))
    body = (await t.tk.services.oauth2.respond(grant, refresh=True)).body
    basic = base64.b64encode(f"{client.client_id}:{registered.secret}".encode()).decode()
    return body, {"Authorization": f"Basic {basic}"}


async def _oauth_refresh(t: InProcess, token: str, auth: dict[str, str]) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return await t.client.post("/oauth2/token", data=data, headers=auth)


def test_the_oauth_refresh_grant_shares_the_rotation_reuse_and_the_sign_in_max_age(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            alice = await t.create_admin("alice")
            issued, auth = await _oauth_family(t, UserType.ADMIN, alice.id)
            end = t.tk.clock.now_int() + t.tk.settings.admin_signin_max_age
            t.advance(4 * HOUR)
            r = await _oauth_refresh(t, issued["refresh_token"], auth)
            assert r.status_code == 200, r.text
            assert _exp(r.json()["access_token"]) <= end
            t.advance(4 * HOUR + 60)  # past 8 h: the family ends with the sign-in
            late = await _oauth_refresh(t, r.json()["refresh_token"], auth)
            assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
            # Reuse of the spent first token: invalid_grant, and the family is revoked.
            replay = await _oauth_refresh(t, issued["refresh_token"], auth)
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    inprocess.run(body)


def test_oauth_refresh_token_reuse_revokes_the_successor_and_its_access_token(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, customer_signin_max_age=2 * HOUR) as t:
            ada = await t.create_customer("ada@example.com")
            issued, auth = await _oauth_family(t, UserType.CUSTOMER, ada.id)
            r = await _oauth_refresh(t, issued["refresh_token"], auth)
            assert r.status_code == 200, r.text
            fresh = r.json()
            me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(fresh["access_token"]))
            assert me.status_code == 200, me.text
            assert (await _oauth_refresh(t, issued["refresh_token"], auth)).status_code == 400
            assert (await _oauth_refresh(t, fresh["refresh_token"], auth)).status_code == 400
            gone = await t.client.get("/rest/V1/customers/me", headers=t.bearer(fresh["access_token"]))
            assert gone.status_code == 401
            # The family is dead for good; a new sign-in (2 h later) starts a new one.
            t.advance(2 * HOUR)
            again, auth = await _oauth_family(t, UserType.CUSTOMER, ada.id)
            assert (await _oauth_refresh(t, again["refresh_token"], auth)).status_code == 200

    inprocess.run(body)
