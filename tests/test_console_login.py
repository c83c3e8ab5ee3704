"""Console sign-in (/console/login, then /console/login/otp when two-factor auth applies, or
/console/login/enrol when it is required and not set up), the session /oauth2/authorize signs
users in with: TOTP step, forced enrolment, amr in the ID token, strict CSP, and a console session
never opens the API."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import jwt
import pyotp
import pytest

from tests.conftest import ADMIN_PASSWORD, Server
from tests.oauth2_support import REDIRECT, basic, hidden_fields, pkce_pair, query, register, start_oauth_server
from tests.oauth2_support import web_client as browser_for
from tillkey.security.totp import PERIOD


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = start_oauth_server(tmp_path / "srv", request.param, TILLKEY_ADMIN_2FA="required")
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


def _authorize_url(client_id: str, challenge: str) -> str:
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "openid",
        "state": "s1", "nonce": "n1", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    return f"/oauth2/authorize?{httpx.QueryParams(params)}"


def test_sign_in_with_second_factor_then_code_with_amr(srv: Server) -> None:
    secret = srv.cli_json("admin", "2fa", "enroll", "alice")["secret"]
    step = int(time.time() // PERIOD)
    srv.cli_json("admin", "2fa", "activate", "alice", "--code", pyotp.TOTP(secret).at(step * PERIOD))
    client = register(
        srv, "--name", "Console app", "--type", "confidential", "--redirect-uri", REDIRECT,
        "--grant", "authorization_code", "--scope", "openid", "--first-party",
    )  # fmt: skip
    verifier, challenge = pkce_pair()
    browser = browser_for(srv)
    to_login = browser.get(_authorize_url(client["client_id"], challenge))
    page = browser.get(to_login.headers["location"])
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "<script" not in page.text
    r = browser.post(
        "/console/login", data={**hidden_fields(page.text), "username": "alice", "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login/otp")

    # Password alone: no code yet, and the half-finished session opens nothing.
    half = browser.get(_authorize_url(client["client_id"], challenge))
    assert half.status_code == 303 and half.headers["location"].startswith("/console/login")

    otp_page = browser.get(r.headers["location"])
    assert 'name="otp"' in otp_page.text
    fields = hidden_fields(otp_page.text)
    wrong = browser.post("/console/login/otp", data={**fields, "otp": "000000"})
    assert wrong.status_code == 401 and "wrong or expired" in wrong.text
    code = pyotp.TOTP(secret).at((step + 1) * PERIOD)
    done = browser.post("/console/login/otp", data={**fields, "otp": code})
    assert done.status_code == 303 and done.headers["location"].startswith("/oauth2/authorize")
    back = browser.get(done.headers["location"])
    assert back.status_code == 302, back.text
    q = query(back.headers["location"])
    tokens = httpx.post(
        f"{srv.url}/oauth2/token",
        data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT, "code_verifier": verifier,
        },
        headers=basic(client["client_id"], client["client_secret"]),
    ).json()  # fmt: skip
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"] and claims["nonce"] == "n1"


def test_required_second_factor_not_set_up_enrols_then_continues_the_authorization(srv: Server) -> None:
    client = register(
        srv, "--name", "Console app", "--type", "confidential", "--redirect-uri", REDIRECT,
        "--grant", "authorization_code", "--scope", "openid", "--first-party",
    )  # fmt: skip
    verifier, challenge = pkce_pair()
    browser = browser_for(srv)
    to_login = browser.get(_authorize_url(client["client_id"], challenge))
    page = browser.get(to_login.headers["location"])
    r = browser.post(
        "/console/login", data={**hidden_fields(page.text), "username": "carol", "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login/enrol?next=%2Foauth2%2Fauthorize")
    # Mid-enrolment the authorization request gets no code: back to the sign-in.
    half = browser.get(_authorize_url(client["client_id"], challenge))
    assert half.status_code == 303 and half.headers["location"].startswith("/console/login")
    enrol_page = browser.get(r.headers["location"])
    secret = re.search(r'class="tfa-secret">([A-Z2-7]+)</code>', enrol_page.text)
    assert enrol_page.status_code == 200 and secret is not None
    fields = hidden_fields(enrol_page.text)
    assert fields["next"].startswith("/oauth2/authorize?")
    done = browser.post("/console/login/enrol", data={**fields, "otp": pyotp.TOTP(secret.group(1)).now()})
    assert done.status_code == 200 and "Continue" in done.text
    onward = re.search(r'<a class="button" href="([^"]+)">Continue</a>', done.text)
    assert onward is not None and unescape(onward.group(1)) == fields["next"]
    back = browser.get(unescape(onward.group(1)))
    assert back.status_code == 302, back.text
    q = query(back.headers["location"])
    assert q["state"] == "s1"
    tokens = httpx.post(
        f"{srv.url}/oauth2/token",
        data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT, "code_verifier": verifier,
        },
        headers=basic(client["client_id"], client["client_secret"]),
    ).json()  # fmt: skip
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]


def test_a_console_session_is_not_an_api_credential(tmp_path: Path) -> None:
    srv = start_oauth_server(tmp_path / "off", "sqlite", TILLKEY_ADMIN_2FA="off")
    try:
        captured: dict[str, str] = {}

        def keep(response: httpx.Response) -> None:
            for header in response.headers.get_list("set-cookie"):
                name, _, rest = header.partition("=")
                captured[name] = rest.split(";")[0]

        browser = browser_for(srv)
        browser.event_hooks["response"].append(keep)
        page = browser.get("/console/login")
        done = browser.post("/console/login", data={**hidden_fields(page.text), "username": "alice",
                                                    "password": ADMIN_PASSWORD})  # fmt: skip
        assert done.status_code == 303
        # Plain HTTP on loopback is development: no __Host- prefix (it needs Secure), SameSite=Strict.
        cookie = captured["tillkey_console"]
        assert cookie.startswith("tk_ss_")
        assert browser.get("/console/").status_code == 200
        # The same value as Medusa's session cookie: refused by the API.
        r = httpx.get(f"{srv.url}/admin/users/me", cookies={"connect.sid": cookie})
        assert r.status_code == 401
        r = httpx.get(f"{srv.url}/rest/V1/store/websites", cookies={"connect.sid": cookie})
        assert r.status_code == 401
        # Logout (a form with the session's CSRF token) ends it.
        home = browser.get("/console/")
        assert browser.post("/console/logout", data=hidden_fields(home.text)).status_code == 303
        assert browser.get("/console/").status_code == 303
    finally:
        srv.stop()
