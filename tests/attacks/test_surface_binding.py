"""Credentials stay on their surface (issue 12, item 2), through HTTP in process.

`POST /auth/token/refresh` and `POST /auth/session` renew only what the Medusa surface issued
(`tk_surface: medusa`, checked on the verified claims): OAuth 2 access tokens (JWT and opaque, user
and client), Magento login tokens (JWT and opaque), secret API keys, refresh cookies and
registration tokens in the wrong state get Medusa's 401. A renewal carries the original sign-in
time and never outlives the sign-in's absolute lifetime; a session made from a token neither.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.oauth2.rfc6749.token_response import Grant
from tillkey.principal import UserType
from tillkey.store.oauth2 import Client

UNAUTHORIZED = {"message": "Unauthorized"}
HOUR = 3600


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _medusa_login(t: InProcess, actor: str, email: str, password: str) -> str:
    r = await t.client.post(f"/auth/{actor}/emailpass", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _store_key(t: InProcess) -> dict[str, str]:
    """A publishable key header, which every /store route needs (made by an admin of its own)."""
    await t.create_admin("keeper", email="keeper@example.com")
    admin = t.bearer(await _medusa_login(t, "user", "keeper@example.com", ADMIN_PASSWORD))
    made = await t.client.post("/admin/api-keys", json={"title": "web", "type": "publishable"}, headers=admin)
    assert made.status_code == 200, made.text
    return {"x-publishable-api-key": made.json()["api_key"]["token"]}


async def _client(t: InProcess, scopes: list[str], grants: list[str] | None = None) -> tuple[Client, str]:
    registered = await t.tk.services.clients.create(
        OPERATOR,
        name="app",
        client_type="confidential",
        redirect_uris=["https://app.example.test/callback"],
        grant_types=grants or ["authorization_code", "refresh_token"],
        scopes=scopes,
    )
    assert registered.secret is not None
    return registered.client, registered.secret


async def _oauth_user_token(t: InProcess, user_type: UserType, user_id: int, scope: tuple[str, ...]) -> dict[str, Any]:
    """What the authorization-code grant answers (it calls this very `respond`) after the user
    consented to `scope`: an access token, a refresh token and an ID token."""
    client, _secret = await _client(t, list(scope))
    grant = Grant(client, int(user_type), user_id, scope, t.tk.clock.now_int(), ("pwd",), "n-1")
    return (await t.tk.services.oauth2.respond(grant, refresh=True, id_token_too=True)).body


async def _refused_by_medusa_renewals(t: InProcess, headers: dict[str, str]) -> None:
    refreshed = await t.client.post("/auth/token/refresh", headers=headers)
    assert refreshed.status_code == 401, refreshed.text
    assert refreshed.json() == UNAUTHORIZED
    session = await t.client.post("/auth/session", headers=headers)
    assert session.status_code == 401, session.text
    assert "connect.sid" not in session.headers.get("set-cookie", "")


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_an_openid_scoped_oauth_token_is_not_renewed_into_an_admin_token_or_session(tmp_path: Path, fmt: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, oauth2_access_token_format=fmt) as t:
            alice = await t.create_admin("alice")  # Administrators: Magento_Backend::all
            issued = await _oauth_user_token(t, UserType.ADMIN, alice.id, ("openid",))
            access = t.bearer(issued["access_token"])
            await _refused_by_medusa_renewals(t, access)
            # Usable only as what its scope says: not the admin's own account, not the catalogue.
            assert (await t.client.get("/admin/users/me", headers=access)).status_code in (401, 403)
            assert (await t.client.get("/rest/V1/products", headers=access)).status_code == 403
            # The ID token and the refresh token are no bearer credentials at all.
            await _refused_by_medusa_renewals(t, t.bearer(issued["id_token"]))
            await _refused_by_medusa_renewals(t, t.bearer(issued["refresh_token"]))

    inprocess.run(body)


def test_a_customer_scoped_oauth_token_is_refused_and_narrowed_on_the_store(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            ada = await t.create_customer("ada@example.com")
            store = await _store_key(t)
            issued = await _oauth_user_token(t, UserType.CUSTOMER, ada.id, ("openid", "profile"))
            access = t.bearer(issued["access_token"])
            await _refused_by_medusa_renewals(t, access)
            assert (await t.client.get("/store/customers/me", headers={**access, **store})).status_code == 403
            assert (await t.client.get("/rest/V1/customers/me", headers=access)).status_code == 403
            # With `self` in its scope the same kind of token reads the account, and still renews nothing.
            own = await _oauth_user_token(t, UserType.CUSTOMER, ada.id, ("self",))
            me = await t.client.get("/store/customers/me", headers={**t.bearer(own["access_token"]), **store})
            assert me.status_code == 200, me.text
            await _refused_by_medusa_renewals(t, t.bearer(own["access_token"]))

    inprocess.run(body)


def test_a_client_credentials_token_from_the_token_endpoint_is_not_renewed(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            client, secret = await _client(t, ["Magento_Catalog::products"], ["client_credentials"])
            basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
            r = await t.client.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
            )
            assert r.status_code == 200, r.text
            await _refused_by_medusa_renewals(t, t.bearer(r.json()["access_token"]))

    inprocess.run(body)


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_magento_login_tokens_are_not_renewed_by_the_medusa_surface(tmp_path: Path, fmt: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, token_format=fmt) as t:
            await t.create_admin("alice")
            await t.create_customer("ada@example.com")
            for token in (await t.admin_token("alice"), await t.customer_token("ada@example.com")):
                await _refused_by_medusa_renewals(t, t.bearer(token))
                # Still good where it was issued for.
                assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code != 401

    inprocess.run(body)


def test_secret_api_keys_and_refresh_cookies_are_not_renewed(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice", email="alice@example.com")
            admin = t.bearer(await _medusa_login(t, "user", "alice@example.com", ADMIN_PASSWORD))
            made = await t.client.post("/admin/api-keys", json={"title": "sync", "type": "secret"}, headers=admin)
            assert made.status_code == 200, made.text
            key = made.json()["api_key"]["token"]
            basic = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
            await _refused_by_medusa_renewals(t, basic)
            await _refused_by_medusa_renewals(t, t.bearer(key))
            login = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
            )
            cookie = login.cookies.get("tillkey_refresh") or login.headers["set-cookie"].split(";")[0].split("=", 1)[1]
            await _refused_by_medusa_renewals(t, t.bearer(cookie))

    inprocess.run(body)


def test_a_medusa_token_renews_with_its_sign_in_time_until_the_admin_max_age(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice", email="alice@example.com")
            token = await _medusa_login(t, "user", "alice@example.com", ADMIN_PASSWORD)
            signed_in = _claims(token)
            assert signed_in["tk_surface"] == "medusa" and signed_in["auth_time"] == signed_in["iat"]
            end = signed_in["auth_time"] + t.tk.settings.admin_signin_max_age  # 8 h
            for _ in range(3):  # every 3 h, each renewal inside the 4 h token lifetime
                t.advance(3 * HOUR)
                r = await t.client.post("/auth/token/refresh", headers=t.bearer(token))
                if r.status_code != 200:
                    break
                token = r.json()["token"]
                renewed = _claims(token)
                assert renewed["auth_time"] == signed_in["auth_time"]
                assert renewed["exp"] <= end
                assert (await t.client.get("/admin/users/me", headers=t.bearer(token))).status_code == 200
            # At 9 h: past the sign-in's absolute lifetime, although the last token was renewed at 6 h.
            assert t.tk.clock.now_int() >= end
            assert r.status_code == 401, r.text
            assert (await t.client.get("/admin/users/me", headers=t.bearer(token))).status_code == 401

    inprocess.run(body)


def test_a_customer_sign_in_ends_at_its_max_age_through_tokens_and_sessions(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, customer_signin_max_age=2 * HOUR) as t:
            await t.create_customer("ada@example.com")
            t.client.headers.update(await _store_key(t))
            token = await _medusa_login(t, "customer", "ada@example.com", CUSTOMER_PASSWORD)
            auth_time = _claims(token)["auth_time"]
            t.advance(HOUR - 60)
            session = await t.client.post("/auth/session", headers=t.bearer(token))
            assert session.status_code == 200, session.text
            cookie = session.cookies.get("connect.sid")
            assert cookie
            max_age = int(session.headers["set-cookie"].lower().split("max-age=")[1].split(";")[0])
            assert max_age <= auth_time + 2 * HOUR - t.tk.clock.now_int()
            # A token renewed from the session still carries the first sign-in.
            t.client.cookies.set("connect.sid", cookie)
            renewed = await t.client.post("/auth/token/refresh", json={})  # as the js-sdk sends it
            assert renewed.status_code == 200, renewed.text
            assert _claims(renewed.json()["token"])["auth_time"] == auth_time
            assert (await t.client.get("/store/customers/me")).status_code == 200
            t.advance(HOUR + 120)  # 2 h after the sign-in: the session ends with it
            assert (await t.client.get("/store/customers/me")).status_code == 401
            assert (await t.client.post("/auth/token/refresh", json={})).status_code == 401
            t.client.cookies.clear()
            late = await t.client.post("/auth/token/refresh", headers=t.bearer(renewed.json()["token"]))
            assert late.status_code == 401

    inprocess.run(body)


def test_claims_passed_by_a_caller_cannot_mark_a_token_as_medusa(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            alice = await t.create_admin("alice")
            forged = await t.accounts.issue_token(
                UserType.ADMIN, alice.id, extra={"tk_surface": "medusa", "auth_time": 1, "actor_type": "user"}
            )
            claims = _claims(forged)
            # Every login token records its sign-in time now (step-up); the caller's is ignored.
            assert "tk_surface" not in claims and claims["auth_time"] != 1
            await _refused_by_medusa_renewals(t, t.bearer(forged))

    inprocess.run(body)


def test_forward_auth_judges_a_scoped_token_by_its_scope_and_says_so(tmp_path: Path) -> None:
    routes = [
        {"path": "/account/*", "resources": ["self"]},
        {"path": "/admin/*", "resources": ["Magento_Catalog::products"]},
        {"path": "/*", "resources": ["anonymous"]},
    ]

    async def body() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=routes) as t:
            ada = await t.create_customer("ada@example.com")
            alice = await t.create_admin("alice")

            async def judge(token: str, uri: str) -> Any:
                headers = {**t.bearer(token), "X-Original-Method": "GET", "X-Original-URI": uri}
                return await t.client.get("/tillkey/v1/forward-auth", headers=headers)

            openid_customer = (await _oauth_user_token(t, UserType.CUSTOMER, ada.id, ("openid",)))["access_token"]
            assert (await judge(openid_customer, "/account/orders")).status_code == 403
            openid_admin = (await _oauth_user_token(t, UserType.ADMIN, alice.id, ("openid",)))["access_token"]
            assert (await judge(openid_admin, "/admin/products")).status_code == 403
            # Where anyone may go, the answer names the scope, so the upstream never takes the
            # caller for the whole account.
            public = await judge(openid_admin, "/catalog")
            assert public.status_code == 200
            assert public.headers["X-Tillkey-Scopes"] == "openid"
            assert public.headers["X-Tillkey-Client-Id"]
            # The unscoped login token of the same admin passes.
            assert (await judge(await t.admin_token("alice"), "/admin/products")).status_code == 200

    inprocess.run(body)


def test_an_integration_access_token_is_not_renewed(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, integration_as_bearer=True) as t:
            await t.create_admin("alice")
            admin = t.bearer(await t.admin_token("alice"))
            made = await t.client.post(
                "/tillkey/v1/integrations",
                json={"name": "erp", "resources": ["Magento_Catalog::products"]},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            active = await t.client.post(f"/tillkey/v1/integrations/{made.json()['id']}/activate", headers=admin)
            assert active.status_code == 200, active.text
            integration = t.bearer(active.json()["access_token"])
            assert (await t.client.get("/rest/V1/products", headers=integration)).status_code == 200
            await _refused_by_medusa_renewals(t, integration)

    inprocess.run(body)
