"""State per account is bounded (issue 21): sessions per account (Medusa cookie sessions, console
sessions) and refresh-token families per client and user, each a setting, counted in the database
so that every process sharing it keeps the same bound."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests import inprocess
from tillkey.credentials.sessions import COOKIE
from tillkey.store.audit import AuditQuery
from tillkey.store.models import SessionRow

ADMIN_EMAIL = "ada@example.com"


async def _medusa_admin_token(t: inprocess.InProcess) -> str:
    r = await t.client.post("/auth/user/emailpass", json={"email": ADMIN_EMAIL, "password": inprocess.ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _session(client: httpx.AsyncClient, token: str) -> str:
    r = await client.post("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.cookies[COOKIE]


async def _me(t: inprocess.InProcess, cookie: str) -> int:
    async with t.browser() as b:
        b.cookies.set(COOKIE, cookie)
        return (await b.get("/admin/users/me")).status_code


async def _stored(t: inprocess.InProcess, kind: str, user_id: int) -> int:
    async with t.tk.db.session() as s:
        q = select(func.count()).select_from(SessionRow)
        q = q.where(SessionRow.kind == kind, SessionRow.user_id == user_id)
        return int(await s.scalar(q) or 0)


def test_medusa_sessions_per_account_evict_the_oldest_at_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, sessions_per_account=3) as t:
            admin = await t.create_admin("ada", email=ADMIN_EMAIL)
            token = await _medusa_admin_token(t)
            cookies = [await _session(t.client, token) for _ in range(5)]
            assert await _stored(t, "medusa", admin.id) == 3
            assert [await _me(t, c) for c in cookies] == [401, 401, 200, 200, 200]
            events = await t.tk.audit.search(AuditQuery(event="session.ended"))
            assert sum("evicted" in (e.details or "") for e in events) == 2

    inprocess.run(body)


def test_medusa_sessions_refused_past_the_bound_when_so_configured(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, sessions_per_account=2, session_limit="refuse") as t:
            admin = await t.create_admin("ada", email=ADMIN_EMAIL)
            token = await _medusa_admin_token(t)
            first = [await _session(t.client, token) for _ in range(2)]
            r = await t.client.post("/auth/session", headers=t.bearer(token))
            assert r.status_code == 409, r.text
            assert set(r.json()) >= {"type", "message"}  # Medusa's error shape
            assert COOKIE not in r.cookies
            assert [await _me(t, c) for c in first] == [200, 200]
            assert await _stored(t, "medusa", admin.id) == 2
            # Signing out of one frees its place.
            async with t.browser() as b:
                b.cookies.set(COOKIE, first[0])
                assert (await b.delete("/auth/session")).status_code == 200
            async with t.browser() as fresh:
                assert await _me(t, await _session(fresh, token)) == 200

    inprocess.run(body)


def test_the_bound_holds_across_processes_and_eviction_reaches_the_other(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            inprocess.running(tmp_path, sessions_per_account=2) as one,
            inprocess.running(tmp_path, sessions_per_account=2) as two,
        ):
            admin = await one.create_admin("ada", email=ADMIN_EMAIL)
            token = await _medusa_admin_token(one)
            cookies = []
            for t in (one, two, one, two):
                cookies.append(await _session(t.client, token))
            assert await _stored(one, "medusa", admin.id) == 2
            # The oldest was made by `one` and evicted by `two`: `one` learns it from the change feed.
            await one.tk.poll_changes()
            await two.tk.poll_changes()
            for t in (one, two):
                assert [await _me(t, c) for c in cookies] == [401, 401, 200, 200]

    inprocess.run(body)


def test_a_customer_gets_no_more_than_the_bound_of_medusa_sessions(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            customer = await t.create_customer("c@example.com")
            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "c@example.com", "password": inprocess.CUSTOMER_PASSWORD}
            )
            token = r.json()["token"]
            for _ in range(t.tk.settings.sessions_per_account + 15):
                await _session(t.client, token)
            assert await _stored(t, "medusa", customer.id) == t.tk.settings.sessions_per_account

    inprocess.run(body)


async def _console_sign_in(t: inprocess.InProcess) -> httpx.AsyncClient:
    b = t.browser()
    page = await b.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    r = await b.post(
        "/console/login", data={"csrf": csrf.group(1), "username": "ada", "password": inprocess.ADMIN_PASSWORD}
    )
    assert r.status_code == 303, r.text
    return b


def test_console_sessions_per_admin_evict_the_oldest(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"console_sessions_per_admin": 2, "console_allow_multiple_sessions": True}
        async with inprocess.running(tmp_path, **settings) as t:
            admin = await t.create_admin("ada", email=ADMIN_EMAIL)
            browsers = [await _console_sign_in(t) for _ in range(3)]
            try:
                assert await _stored(t, "console", admin.id) == 2
                answers = [(await b.get("/console/")).status_code for b in browsers]
                assert answers == [303, 200, 200]  # the first is sent to sign in again
            finally:
                for b in browsers:
                    await b.aclose()

    inprocess.run(body)


def test_refresh_families_per_client_and_user_end_the_oldest_refresh_tokens(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, refresh_families_per_client_user=3, require_https=False) as t:
            await t.create_admin("ada", email=ADMIN_EMAIL)
            logins = []
            for _ in range(5):
                r = await t.client.post(
                    "/rest/V1/integration/admin/token", json={"username": "ada", "password": inprocess.ADMIN_PASSWORD}
                )
                assert r.status_code == 200, r.text
                logins.append((r.json(), r.cookies["tillkey_refresh"]))
                t.advance(1)  # families are ordered by the second they began
            answers = []
            for access, refresh in logins:
                me = await t.client.get("/rest/V1/store/websites", headers=t.bearer(access))
                r = await t.client.post(
                    "/rest/V1/integration/token/refresh", headers={"Cookie": f"tillkey_refresh={refresh}"}
                )
                answers.append((me.status_code, r.status_code))
            # The two oldest families are over: their refresh cookies are refused. Their access tokens
            # (stateless, short-lived) live on: Magento never caps how many logins run at once.
            assert answers == [(200, 401), (200, 401), (200, 200), (200, 200), (200, 200)]

    inprocess.run(body)


def test_wrong_recovery_codes_per_admin_are_bounded_across_processes(tmp_path: Path) -> None:
    import pyotp

    from tillkey.accounts.signin import TotpCode

    async def body() -> None:
        async with inprocess.running(tmp_path) as one, inprocess.running(tmp_path) as two:
            admin = await one.create_admin("ada", email=ADMIN_EMAIL)
            enrolment = await one.tk.services.totp.enroll(admin.id)
            codes = await one.tk.services.totp.activate(admin.id, pyotp.TOTP(enrolment.secret).at(one.tk.clock.now()))
            wrong = "aaaa-aaaa-aaaa"
            cap = one.tk.settings.recovery_code_max_failures
            for i in range(cap):
                assert not await TotpCode(wrong).verify((one, two)[i % 2].tk.services.factor_parts, admin)
            # Past the budget, even a right code is refused, on either process, until the lock ends.
            assert not await TotpCode(codes[0]).verify(two.tk.services.factor_parts, admin)
            assert not await TotpCode(codes[0]).verify(one.tk.services.factor_parts, admin)
            for t in (one, two):
                t.advance(one.tk.settings.login_throttle_lock_seconds + 1)
            assert await TotpCode(codes[0]).verify(one.tk.services.factor_parts, admin)
            assert not await TotpCode(codes[0]).verify(two.tk.services.factor_parts, admin)  # spent

    inprocess.run(body)


def test_password_steps_without_the_code_cannot_end_a_signed_in_console_session(tmp_path: Path) -> None:
    import pyotp

    async def body() -> None:
        settings = {"admin_2fa": "optional", "console_sessions_per_admin": 3}
        async with inprocess.running(tmp_path, **settings) as t:
            admin = await t.create_admin("ada", email=ADMIN_EMAIL)
            enrolment = await t.tk.services.totp.enroll(admin.id)
            await t.tk.services.totp.activate(admin.id, pyotp.TOTP(enrolment.secret).at(t.tk.clock.now() - 30))
            owner = await _console_sign_in(t)  # the password step: waits for the code
            page = await owner.get("/console/login/otp")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf, page.text
            code = pyotp.TOTP(enrolment.secret).at(t.tk.clock.now())
            r = await owner.post("/console/login/otp", data={"csrf": csrf.group(1), "otp": code})
            assert r.status_code == 303 and r.headers["location"] == "/console/", r.text
            # Someone who knows only the password makes sign-ins that wait for a code, many times.
            for _ in range(6):
                await (await _console_sign_in(t)).aclose()
            assert await _stored(t, "console", admin.id) == 3
            assert (await owner.get("/console/")).status_code == 200
            await owner.aclose()

    inprocess.run(body)
