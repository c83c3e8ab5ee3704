"""Console sign-in (/console/login, then /console/login/otp when two-factor auth applies, or
/console/login/enrol when it is required and not set up), the session /oauth2/authorize signs
users in with: TOTP step, forced enrolment, amr in the ID token, strict CSP, and a console session
never opens the API. The app runs in this process (tests/inprocess.py): codes come from the
server's injected clock, and the OAuth client is registered with the CLI on the same database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, InProcess
from tests.oauth2_support import REDIRECT, basic, hidden_fields, pkce_pair, query


@asynccontextmanager
async def admins(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[tuple[InProcess, int]]:
    """alice (Administrators; her id comes along) and carol (role Catalog), as the OAuth tests'
    server holds them."""
    async with inprocess.running(tmp_path, **db, **settings) as t:
        alice = await t.create_admin("alice")
        await t.create_admin("carol", role=await t.create_role(["Magento_Catalog::catalog"], "Catalog"))
        yield t, alice.id


async def _first_party_client() -> dict[str, Any]:
    client: dict[str, Any] = await inprocess.cli_json(
        "client",
        "create",
        "--name",
        "Console app",
        "--type",
        "confidential",
        "--redirect-uri",
        REDIRECT,
        "--grant",
        "authorization_code",
        "--scope",
        "openid",
        "--first-party",
    )
    return client


def _authorize_url(client_id: str, challenge: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"/oauth2/authorize?{httpx.QueryParams(params)}"


async def _exchange(t: InProcess, client: dict[str, Any], code: str, verifier: str) -> dict[str, Any]:
    r = await t.client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers=basic(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def test_sign_in_with_second_factor_then_code_with_amr(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with admins(tmp_path, db, admin_2fa="required") as (t, alice):
            # Activation spends this step's code and moves the clock on: the sign-in uses the next.
            secret, _ = await t.enable_totp(alice)
            client = await _first_party_client()
            verifier, challenge = pkce_pair()
            async with t.browser() as browser:
                to_login = await browser.get(_authorize_url(client["client_id"], challenge))
                page = await browser.get(to_login.headers["location"])
                csp = page.headers["content-security-policy"]
                assert "script-src" not in csp and "default-src 'none'" in csp and "<script" not in page.text
                r = await browser.post(
                    "/console/login", data={**hidden_fields(page.text), "username": "alice", "password": ADMIN_PASSWORD}
                )
                assert r.status_code == 303 and r.headers["location"].startswith("/console/login/otp")

                # Password alone: no code yet, and the half-finished session opens nothing.
                half = await browser.get(_authorize_url(client["client_id"], challenge))
                assert half.status_code == 303 and half.headers["location"].startswith("/console/login")

                otp_page = await browser.get(r.headers["location"])
                assert 'name="otp"' in otp_page.text
                fields = hidden_fields(otp_page.text)
                wrong = await browser.post("/console/login/otp", data={**fields, "otp": "000000"})
                assert wrong.status_code == 401 and "wrong or expired" in wrong.text
                done = await browser.post("/console/login/otp", data={**fields, "otp": t.totp_code(secret)})
                assert done.status_code == 303 and done.headers["location"].startswith("/oauth2/authorize")
                back = await browser.get(done.headers["location"])
            assert back.status_code == 302, back.text
            tokens = await _exchange(t, client, query(back.headers["location"])["code"], verifier)
            claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
            assert claims["amr"] == ["pwd", "otp"] and claims["nonce"] == "n1"

    inprocess.run(body)


def test_required_second_factor_not_set_up_enrols_then_continues_the_authorization(
    tmp_path: Path, db: dict[str, Any]
) -> None:
    async def body() -> None:
        async with admins(tmp_path, db, admin_2fa="required") as (t, _):
            client = await _first_party_client()
            verifier, challenge = pkce_pair()
            async with t.browser() as browser:
                to_login = await browser.get(_authorize_url(client["client_id"], challenge))
                page = await browser.get(to_login.headers["location"])
                r = await browser.post(
                    "/console/login", data={**hidden_fields(page.text), "username": "carol", "password": ADMIN_PASSWORD}
                )
                assert r.status_code == 303
                assert r.headers["location"].startswith("/console/login/enrol?next=%2Foauth2%2Fauthorize")
                # Mid-enrolment the authorization request gets no code: back to the sign-in.
                half = await browser.get(_authorize_url(client["client_id"], challenge))
                assert half.status_code == 303 and half.headers["location"].startswith("/console/login")
                enrol_page = await browser.get(r.headers["location"])
                secret = re.search(r'class="tfa-secret">([A-Z2-7]+)</code>', enrol_page.text)
                assert enrol_page.status_code == 200 and secret is not None
                fields = hidden_fields(enrol_page.text)
                assert fields["next"].startswith("/oauth2/authorize?")
                done = await browser.post("/console/login/enrol", data={**fields, "otp": t.totp_code(secret.group(1))})
                assert done.status_code == 200 and "Continue" in done.text
                onward = re.search(r'<a class="button" href="([^"]+)">Continue</a>', done.text)
                assert onward is not None and unescape(onward.group(1)) == fields["next"]
                back = await browser.get(unescape(onward.group(1)))
            assert back.status_code == 302, back.text
            q = query(back.headers["location"])
            assert q["state"] == "s1"
            tokens = await _exchange(t, client, q["code"], verifier)
            claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
            assert claims["amr"] == ["pwd", "otp"]

    inprocess.run(body)


def test_a_console_session_is_not_an_api_credential(tmp_path: Path) -> None:
    async def body() -> None:
        async with admins(tmp_path, {}, admin_2fa="off") as (t, _), t.browser() as browser:
            page = await browser.get("/console/login")
            done = await browser.post(
                "/console/login", data={**hidden_fields(page.text), "username": "alice", "password": ADMIN_PASSWORD}
            )
            assert done.status_code == 303
            # Plain HTTP on loopback is development: no __Host- prefix (it needs Secure), SameSite=Strict.
            captured: dict[str, str] = {}
            for header in done.headers.get_list("set-cookie"):
                name, _, rest = header.partition("=")
                captured[name] = rest.split(";")[0]
            cookie = captured["tillkey_console"]
            assert cookie.startswith("tk_ss_")
            assert (await browser.get("/console/")).status_code == 200
            # The same value as Medusa's session cookie: refused by the API (a client with no cookies of its own).
            async with t.browser() as api:
                r = await api.get("/admin/users/me", headers={"Cookie": f"connect.sid={cookie}"})
                assert r.status_code == 401
                r = await api.get("/rest/V1/store/websites", headers={"Cookie": f"connect.sid={cookie}"})
                assert r.status_code == 401
            # Logout (a form with the session's CSRF token) ends it.
            home = await browser.get("/console/")
            assert (await browser.post("/console/logout", data=hidden_fields(home.text))).status_code == 303
            assert (await browser.get("/console/")).status_code == 303

    inprocess.run(body)
