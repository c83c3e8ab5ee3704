"""The admin console over HTTP, in process (tests/inprocess.py): hardened cookie sessions (flags,
rotation, one session per admin, idle timeout and absolute lifetime on the server, deactivation),
CSRF on every form, every page checking the resource it needs, and two-factor set-up (forced under
admin_2fa=required, by choice under optional). Time is the app's injected clock. The Chromium
tests are in test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD
from tests.console_support import CONSOLE_COOKIE, Console, console_app, is_sign_in_redirect, nav_links
from tests.oauth2_support import hidden_fields
from tillkey.accounts.totp import PERIOD
from tillkey.console.sign_in_session import DEV_COOKIE


def run(tmp_path: Path, db: dict[str, Any], body: Callable[[Console], Awaitable[None]], **settings: Any) -> None:
    """`body` on the console's seeded app (console_support.console_app)."""

    async def main() -> None:
        async with console_app(tmp_path, db, **settings) as console:
            await body(console)

    inprocess.run(main)


def test_cookie_is_httponly_strict_and_a_new_id_at_every_sign_in(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        first, second = c.browser(), c.browser()
        first.http.cookies.set(CONSOLE_COOKIE, "tk_ss_planted-by-an-attacker")
        await first.sign_in()
        header = next(h for h in first.set_cookies if h.startswith(CONSOLE_COOKIE + "="))
        flags = {part.strip().lower() for part in header.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP on loopback is development; over HTTPS: __Host- and Secure
        assert first.cookie() not in (None, "tk_ss_planted-by-an-attacker")
        page = await first.get("/console/")
        assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script src=" in page.text and "<script>" not in page.text
        await second.sign_in(username="carol")
        assert second.cookie() != first.cookie()

    run(tmp_path, db, body)


def test_a_form_post_without_the_csrf_token_is_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        admin = c.browser()
        await admin.sign_in()
        r = await admin.post("/console/roles", {"name": "Forged", "resource": "Magento_Backend::all"}, csrf=False)
        assert r.status_code == 403 and "Request refused" in r.text
        wrong = await admin.post(
            "/console/roles", {"name": "Forged", "resource": "Magento_Backend::all", "csrf": "x" * 64}, csrf=False
        )
        assert wrong.status_code == 403
        # Any text a client sends is a refusal, never a 500 (constant-time compares need bytes).
        for junk in ("é" * 43, "\u0000", "tk_✓"):
            odd = await admin.post("/console/roles", {"name": "Forged", "csrf": junk}, csrf=False)
            assert odd.status_code == 403, odd.text
        # The sign-in form's own token, too.
        stranger = await c.t.client.post("/console/login", data={"username": "alice", "password": "x", "csrf": "é"})
        assert stranger.status_code in (400, 401, 403) and "Internal" not in stranger.text
        # The right token from another site's page: refused by origin before the token counts.
        token = await admin.csrf()
        cross = await admin.http.post(
            "/console/roles", data={"name": "Forged", "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert "Forged" not in (await admin.get("/console/roles")).text
        # With the token from the console's own page it goes through.
        ok = await admin.post("/console/roles", {"name": "Support", "resource": "Magento_Customer::manage"})
        assert ok.status_code == 303 and ok.headers["location"].startswith("/console/roles/")
        assert "Support" in (await admin.get("/console/roles")).text

    run(tmp_path, db, body)


def test_second_sign_in_ends_the_first_session(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        laptop, phone = c.browser(), c.browser()
        await laptop.sign_in("carol")
        assert (await laptop.get("/console/")).status_code == 200
        await phone.sign_in("carol")
        ended = await laptop.get("/console/")
        assert is_sign_in_redirect(ended) and "reason=ended" in ended.headers["location"]
        sessions = await phone.get("/console/sessions")
        assert sessions.status_code == 200 and sessions.text.count("(this session)") == 1
        assert sessions.text.count('name="session"') == 1  # only the phone's session is left

    run(tmp_path, db, body)


def test_limited_admin_sees_only_its_pages_and_gets_403_elsewhere(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        carol = c.browser()
        await carol.sign_in("carol")
        home = await carol.get("/console/")
        assert home.status_code == 200
        assert nav_links(home.text) == ["/console/", "/console/sessions"]
        assert "Tokens issued" not in home.text  # the dashboard figures need Magento_Backend::dashboard
        for path in (
            "/console/admins",
            "/console/roles",
            "/console/customers",
            "/console/integrations",
            "/console/api-keys",
            "/console/oauth-clients",
            "/console/keys",
            "/console/audit",
        ):
            r = await carol.get(path)
            assert r.status_code == 403, path
            assert "Your role does not grant" in r.text
        r = await carol.post(
            "/console/admins",
            {"username": "mallory", "email": "m@example.com", "password": ADMIN_PASSWORD, "role": "Administrators"},
        )
        assert r.status_code == 403
        alice = c.browser()
        await alice.sign_in()
        assert "mallory" not in (await alice.get("/console/admins")).text

    run(tmp_path, db, body)


def test_a_privilege_change_rotates_the_session_id(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        alice, dave = c.browser(), c.browser()
        await alice.sign_in()
        auditors = await alice.post("/console/roles", {"name": "Auditors", "resource": "Magento_Backend::dashboard"})
        assert auditors.status_code == 303
        assert (
            await alice.post(
                "/console/admins",
                {"username": "dave", "email": "dave@example.com", "password": ADMIN_PASSWORD, "role": "Auditors"},
            )
        ).status_code == 303
        await dave.sign_in("dave")
        before = dave.cookie()
        assert (await dave.get("/console/audit")).status_code == 403
        role_page = await alice.get("/console/roles")
        role_id = role_page.text.split("Auditors</td>", 1)[1].split('href="/console/roles/', 1)[1].split('"', 1)[0]
        r = await alice.post(
            f"/console/roles/{role_id}", {"resource": ["Magento_Backend::dashboard", "Tillkey::audit"]}
        )
        assert r.status_code == 303
        # One process: the grant applies at once, and dave's next request sees it (a server with
        # several workers gets it through the change feed; test_access.py covers the CLI's way).
        page = await dave.get("/console/audit")
        assert page.status_code == 200
        assert dave.cookie() not in (None, before)
        stale = await c.get("/console/", {CONSOLE_COOKIE: before or ""})
        assert is_sign_in_redirect(stale)

    run(tmp_path, db, body)


def test_deactivating_an_admin_ends_their_sessions_and_tokens(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        alice, erin = c.browser(), c.browser()
        await alice.sign_in()
        assert (
            await alice.post(
                "/console/admins",
                {"username": "erin", "email": "erin@example.com", "password": ADMIN_PASSWORD, "role": "Administrators"},
            )
        ).status_code == 303
        await erin.sign_in("erin")
        token = c.t.bearer(await c.t.admin_token("erin"))
        assert (await c.t.client.get("/rest/V1/store/websites", headers=token)).status_code == 200
        admins = (await alice.get("/console/admins")).text
        row = next(chunk for chunk in admins.split("<tr>") if "erin@example.com" in chunk)
        erin_id = row.split('action="/console/admins/', 1)[1].split("/", 1)[0]
        r = await alice.post(f"/console/admins/{erin_id}/active", {"active": "0", "confirm": "yes"})
        assert r.status_code == 303
        assert is_sign_in_redirect(await erin.get("/console/"))
        assert (await c.t.client.get("/rest/V1/store/websites", headers=token)).status_code == 401
        listing = (await alice.get("/console/admins")).text
        assert "inactive" in next(chunk for chunk in listing.split("<tr>") if "erin@example.com" in chunk)

    run(tmp_path, db, body)


def test_force_sign_out_of_a_customer_revokes_their_tokens(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        token = c.t.bearer(await c.t.customer_token("roni_cost@example.com", CUSTOMER_PASSWORD))
        assert (await c.t.client.get("/rest/V1/customers/me", headers=token)).status_code == 200
        alice = c.browser()
        await alice.sign_in()
        page = await alice.get("/console/customers?q=roni")
        assert page.status_code == 200 and "roni_cost@example.com" in page.text
        customer_id = page.text.split('action="/console/customers/', 1)[1].split("/", 1)[0]
        assert (await alice.post(f"/console/customers/{customer_id}/sign-out", {"confirm": "yes"})).status_code == 303
        assert (await c.t.client.get("/rest/V1/customers/me", headers=token)).status_code == 401

    run(tmp_path, db, body)


def test_full_admin_pages_create_credentials_shown_once_and_verify_the_audit_chain(
    tmp_path: Path, db: dict[str, Any]
) -> None:
    async def body(c: Console) -> None:
        alice = c.browser()
        await alice.sign_in()
        home = await alice.get("/console/")
        assert "Tokens issued (24 h)" in home.text and '<svg class="chart"' in home.text
        assert len(nav_links(home.text)) == 11 and "/console/idps" in nav_links(home.text)
        for path in nav_links(home.text):
            assert (await alice.get(path)).status_code == 200, path
        created = await alice.post("/console/integrations", {"name": "ERP", "all_resources": "1"})
        assert created.status_code == 200 and "Consumer secret" in created.text
        secret = created.text.split("Consumer secret</dt><dd><code data-secret>", 1)[1].split("<", 1)[0]
        listing = (await alice.get("/console/integrations")).text
        assert "ERP" in listing and secret not in listing
        integration_id = listing.split('action="/console/integrations/', 1)[1].split("/", 1)[0]
        activated = await alice.post(f"/console/integrations/{integration_id}/activate")
        assert "Access token secret" in activated.text
        key = await alice.post("/console/api-keys", {"title": "Storefront", "type": "publishable"})
        assert key.status_code == 200 and "pk_" in key.text
        client = await alice.post(
            "/console/oauth-clients",
            {
                "name": "Dashboard app",
                "client_type": "confidential",
                "redirect_uris": "https://app.example.test/cb",
                "grant_type": ["authorization_code", "refresh_token"],
                "scope": "openid",
            },
        )
        assert client.status_code == 200 and "tk_cs_" in client.text
        bad = await alice.post(
            "/console/oauth-clients",
            {"name": "Bad", "client_type": "public", "redirect_uris": "http://evil.example/cb"},
        )
        assert bad.status_code == 400 and "must use https" in bad.text
        keys_before = (await alice.get("/console/keys")).text.count("<code>")
        assert (await alice.post("/console/keys/rotate")).status_code == 303
        assert (await alice.get("/console/keys")).text.count("<code>") == keys_before + 1
        audit = await alice.get("/console/audit?event=integration.*")
        assert "integration.created" in audit.text and "integration.activated" in audit.text
        assert (await alice.get("/console/audit?since=yesterday")).status_code == 200  # a bad filter is a message
        assert "since:" in (await alice.get("/console/audit?since=yesterday")).text
        verified = await alice.post("/console/audit/verify")
        assert verified.status_code == 200 and "The chain is intact" in verified.text

    run(tmp_path, db, body)


def test_sign_in_page_offers_no_script_and_logout_needs_the_token(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        alice = c.browser()
        page = await alice.get("/console/login")
        assert "script-src" not in page.headers["content-security-policy"] and "<script" not in page.text
        await alice.sign_in()
        assert (await alice.post("/console/logout", csrf=False)).status_code == 403
        assert (await alice.get("/console/")).status_code == 200
        assert is_sign_in_redirect(await alice.post("/console/logout"))
        assert is_sign_in_redirect(await alice.get("/console/"))

    run(tmp_path, db, body)


async def _sign_in(browser: httpx.AsyncClient) -> None:
    """alice's password step on /console/login, as a browser posts it (2FA optional, not set up)."""
    page = await browser.get("/console/login")
    form = {**hidden_fields(page.text), "username": "alice", "password": ADMIN_PASSWORD}
    signed = await browser.post("/console/login", data=form)
    assert signed.status_code == 303, signed.text


def _console_cookie(browser: httpx.AsyncClient) -> str:
    cookie = browser.cookies.get(DEV_COOKIE)
    assert cookie
    return cookie


def test_idle_timeout_is_enforced_on_the_server(tmp_path: Path) -> None:
    """In process: the idle timeout runs out when the injected clock moves, not after a sleep."""

    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", console_idle_timeout=3) as t:
            await t.create_admin("alice")
            async with t.browser() as alice:
                await _sign_in(alice)
                cookie = _console_cookie(alice)
                assert (await alice.get("/console/")).status_code == 200
                # The status call is no activity: two seconds on it still answers, past the timeout not.
                t.advance(2)
                assert (await alice.get("/console/session/status")).status_code == 200
                t.advance(2.5)
                status = await alice.get("/console/session/status")
                assert is_sign_in_redirect(status)
                # Gone on the server, whatever the browser still holds.
                async with t.browser() as other:
                    other.cookies.set(DEV_COOKIE, cookie)
                    again = await other.get("/console/")
                assert is_sign_in_redirect(again) and "reason=ended" in again.headers["location"]
                notice = await alice.get(again.headers["location"])
                assert "Your session has ended" in notice.text
            # "Stay signed in" (activity) keeps a session alive past the idle timeout.
            async with t.browser() as alice:
                await _sign_in(alice)
                for _ in range(5):
                    token = hidden_fields((await alice.get("/console/")).text)["csrf"]
                    r = await alice.post(
                        "/console/session/extend", data={"csrf": token}, headers={"Accept": "application/json"}
                    )
                    assert r.status_code == 200 and r.json()["expires_in"] >= 1
                    t.advance(1)
                assert (await alice.get("/console/")).status_code == 200  # 5 s on, past the 3 s idle timeout

    inprocess.run(body)


def test_absolute_lifetime_ends_a_busy_session_on_the_server(tmp_path: Path) -> None:
    """In process: the absolute lifetime runs out as the injected clock moves, 0.25 s a request."""

    async def body() -> None:
        settings = {"admin_2fa": "optional", "console_absolute_lifetime": 4, "console_idle_timeout": 900}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.create_admin("alice")
            async with t.browser() as alice:
                await _sign_in(alice)
                cookie = _console_cookie(alice)
            # Busy all along (every request is activity and slides the idle deadline), sent with the
            # cookie by hand: the browser's own expiry of the cookie must not be what ends it.
            by_hand = {"Cookie": f"{DEV_COOKIE}={cookie}"}
            used = 0
            token = ""
            for _ in range(120):
                r = await t.client.get("/console/", headers=by_hand)
                if r.status_code != 200:
                    break
                used += 1
                token = hidden_fields(r.text)["csrf"]
                extend = await t.client.post(
                    "/console/session/extend", data={"csrf": token}, headers={**by_hand, "Accept": "application/json"}
                )
                assert extend.status_code in (200, 303)
                t.advance(0.25)
            assert used > 1
            assert is_sign_in_redirect(r) and "reason=ended" in r.headers["location"]
            # Dead for good: "Stay signed in" cannot bring it back, nor can a later page.
            again = await t.client.post("/console/session/extend", data={"csrf": token}, headers=by_hand)
            assert is_sign_in_redirect(again)
            assert is_sign_in_redirect(await t.client.get("/console/sessions", headers=by_hand))

    inprocess.run(body)


def _secret(page: str) -> str:
    found = re.search(r'class="tfa-secret">([A-Z2-7]+)</code>', page)
    assert found, page
    return found.group(1)


def test_required_2fa_forces_enrolment_before_anything_else(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        t = c.t
        alice = c.browser()
        r = await alice.sign_in()
        assert r.headers["location"] == "/console/login/enrol?next=%2Fconsole%2F"
        pending = alice.cookie()
        # The password alone opens nothing but the enrolment page: every page, every form, leads back.
        for path in ("/console/", "/console/admins", "/console/sessions", "/console/2fa"):
            r = await alice.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login/enrol"), path
        forged = await alice.http.post("/console/roles", data={"name": "X"})
        assert forged.headers["location"].startswith("/console/login/enrol")
        assert (await alice.get("/console/login/otp")).headers["location"].startswith("/console/login/enrol")
        # …and it is no API credential; the API still refuses alice's password alone.
        assert (await c.get("/admin/users/me", {"connect.sid": pending or ""})).status_code == 401
        password_only = {"username": "alice", "password": ADMIN_PASSWORD}
        api = await t.client.post("/rest/V1/integration/admin/token", json=password_only)
        assert api.status_code == 400 and "configure personal Two-Factor" in api.json()["message"]

        page = await alice.get("/console/login/enrol?next=%2Fconsole%2F")
        assert page.status_code == 200 and "<svg" in page.text and 'name="otp"' in page.text
        assert "<script" not in page.text and "script-src" not in page.headers["content-security-policy"]
        secret = _secret(page.text)
        assert _secret((await alice.get("/console/login/enrol")).text) == secret  # a reload shows the same key
        fields = hidden_fields(page.text)
        wrong = await alice.http.post("/console/login/enrol", data={**fields, "otp": "000000"})
        assert wrong.status_code == 401 and "wrong or expired" in wrong.text and _secret(wrong.text) == secret
        assert alice.cookie() == pending

        done = await alice.http.post("/console/login/enrol", data={**fields, "otp": t.totp_code(secret)})
        assert done.status_code == 200, done.text
        codes = re.findall(r"<code data-secret>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code>", done.text)
        assert len(codes) == 10 and 'href="/console/"' in done.text
        signed_in = alice.cookie()
        assert signed_in not in (None, pending)
        home = await alice.get("/console/")
        assert home.status_code == 200 and "Signed in as <strong>alice</strong>" in home.text
        assert is_sign_in_redirect(await c.get("/console/", {CONSOLE_COOKIE: pending or ""}))
        assert "Recovery codes left: 10" in (await alice.get("/console/2fa")).text

        audit = (await alice.get("/console/audit?event=tfa.*")).text
        assert "tfa.enrolment_started" in audit and "tfa.enrolled" in audit
        logins = (await alice.get("/console/audit?event=login.*")).text
        assert "wrong code at enrolment" in logins and "otp" in logins

        # The API now wants the code too: the next step's (enrolment spent this one's).
        api = await t.client.post("/rest/V1/integration/admin/token", json=password_only)
        assert api.status_code == 400 and api.json()["parameters"]["active_providers"] == ["google"]
        t.advance(PERIOD)
        token = await t.client.post(
            "/rest/V1/tfa/provider/google/authenticate", json={**password_only, "otp": t.totp_code(secret)}
        )
        assert token.status_code == 200
        assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token.json()))).status_code == 200

        # Wrong codes at enrolment meet the login throttle (3 here): then the half sign-in ends.
        carol = c.browser()
        await carol.sign_in("carol")
        fields = hidden_fields((await carol.get("/console/login/enrol")).text)
        for _ in range(3):
            assert (await carol.http.post("/console/login/enrol", data={**fields, "otp": "000000"})).status_code == 401
        stopped = await carol.http.post("/console/login/enrol", data={**fields, "otp": "000000"})
        assert stopped.status_code == 401 and "account sign-in was incorrect" in stopped.text
        assert (await carol.get("/console/login/enrol")).headers["location"].startswith("/console/login")
        assert "login.throttled" in (await alice.get("/console/audit?event=login.*")).text

    run(tmp_path, db, body, admin_2fa="required", login_throttle_max_failures=3)


def test_an_admin_signed_in_without_2fa_can_set_it_up(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body(c: Console) -> None:
        await c.t.create_admin("frank")
        frank = c.browser()
        await frank.sign_in("frank")
        assert 'href="/console/2fa"' in (await frank.get("/console/sessions")).text
        page = await frank.get("/console/2fa")
        assert page.status_code == 200 and "Two-factor authentication is off" in page.text
        started = await frank.post("/console/2fa/enrol")
        assert started.status_code == 303
        page = await frank.get("/console/2fa")
        secret = _secret(page.text)
        wrong = await frank.post("/console/2fa/activate", {"otp": "000000"})
        assert wrong.status_code == 400 and "wrong or expired" in wrong.text
        done = await frank.post("/console/2fa/activate", {"otp": c.t.totp_code(secret)})
        assert done.status_code == 200 and done.text.count("Recovery code ") == 10
        assert "Two-factor authentication is on" in (await frank.get("/console/2fa")).text
        # From now on (optional mode) the sign-in asks frank for a code.
        again = c.browser()
        assert (await again.sign_in("frank")).headers["location"].startswith("/console/login/otp")

    run(tmp_path, db, body)
