"""Medusa-style authentication over HTTP (shared/specs/medusa.md §1-2): login errors, the
registration token's limits, refresh, cookie sessions and their revocation, password reset, and
that the Magento surface still issues exactly what it did. The app runs in this process
(tests/inprocess.py) on SQLite and PostgreSQL; the CLI through CliRunner on the same database."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tests.polling import until
from tillkey.storeapi.seed import seed

UNAUTHORIZED = {"message": "Unauthorized"}


@asynccontextmanager
async def seeded(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[InProcess]:
    """Admin `alice` (Administrators) and the demo data (customer roni_cost@example.com)."""
    async with inprocess.running(tmp_path, **db, **settings) as t:
        await t.create_admin("alice")
        await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


async def _login(t: InProcess, email: str = "alice@example.com", password: str = ADMIN_PASSWORD) -> str:
    r = await t.client.post("/auth/user/emailpass", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _publishable(t: InProcess, email: str = "alice@example.com") -> str:
    r = await t.client.post(
        "/admin/api-keys", json={"title": "shop", "type": "publishable"}, headers=t.bearer(await _login(t, email))
    )
    assert r.status_code == 200, r.text
    return str(r.json()["api_key"]["token"])


async def _audit_events(event: str) -> list[dict[str, Any]]:
    out = (await inprocess.cli("audit", "search", "--event", event, "--json")).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def _register(t: InProcess, pk: str, email: str, password: str = "Shopper-pass-77") -> tuple[str, str]:  # noqa: S107
    """register -> POST /store/customers -> refresh: (registration token, customer token)."""
    r = await t.client.post("/auth/customer/emailpass/register", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    reg = r.json()["token"]
    h = {"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk}
    r = await t.client.post("/store/customers", headers=h, json={"email": email, "first_name": "A", "last_name": "B"})
    assert r.status_code == 200, r.text
    r = await t.client.post("/auth/token/refresh", headers={"Authorization": f"Bearer {reg}"})
    assert r.status_code == 200, r.text
    return reg, r.json()["token"]


def test_login_errors_in_medusas_shape(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            url = "/auth/user/emailpass"
            wrong = await t.client.post(url, json={"email": "alice@example.com", "password": "nope-nope-nope"})
            unknown = await t.client.post(url, json={"email": "nobody@example.com", "password": "nope-nope-nope"})
            for r in (wrong, unknown):
                assert r.status_code == 401
                assert r.json() == {"type": "unauthorized", "message": "Invalid email or password"}
            r = await t.client.post(url, json={"email": "alice@example.com"})
            assert r.json() == {"type": "unauthorized", "message": "Password should be a string"}
            r = await t.client.post(url, json={"password": "x"})
            assert r.json() == {"type": "unauthorized", "message": "Email should be a string"}
            r = await t.client.post("/auth/user/github", json={})
            assert r.status_code == 400 and r.json()["type"] == "not_allowed"
            r = await t.client.post("/auth/customer/github", json={})
            assert r.status_code == 401 and r.json()["type"] == "unauthorized"
            r = await t.client.post(url, content=b"{", headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["type"] == "invalid_data"
            r = await t.client.get("/auth/customer/providers")
            assert r.json()["providers"][0]["id"] == "emailpass"
            assert (await t.client.post("/auth/token/refresh")).json() == UNAUTHORIZED

    inprocess.run(body)


def test_medusa_and_magento_tokens_share_revocation_and_the_magento_token_is_unchanged(
    tmp_path: Path, db: dict[str, Any]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("alice")
            magento = await t.admin_token("alice")
            claims = jwt.decode(magento, options={"verify_signature": False})
            assert set(claims) == {"uid", "utypid", "iat", "exp", "jti", "iss", "amr", "auth_time"}
            medusa = await _login(t)
            # A Medusa token works on the Magento routes and the reverse: one credential kind.
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(medusa))).status_code == 200
            assert (await t.client.get("/admin/users/me", headers=t.bearer(magento))).status_code == 200
            # The operator's CLI writes the revocation; the running app follows the change feed.
            await inprocess.cli("admin", "revoke-tokens", "alice")
            for tok in (magento, medusa):

                async def revoked(tok: str = tok) -> bool:
                    return (await t.client.get("/admin/users/me", headers=t.bearer(tok))).status_code == 401

                await until(revoked, what="the token revoked")

    inprocess.run(body)


def test_registration_token_passes_no_customer_or_admin_route(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            pk = await _publishable(t)
            r = await t.client.post(
                "/auth/customer/emailpass/register",
                json={"email": "pending@example.com", "password": "Pending-pass-1"},
            )
            reg = r.json()["token"]
            claims = jwt.decode(reg, options={"verify_signature": False})
            assert claims["actor_id"] == "" and claims["app_metadata"] == {} and claims["utypid"] == 4
            bearer = {"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk}
            for method, path in (
                ("GET", "/store/customers/me"),
                ("GET", "/admin/users/me"),
                ("GET", "/admin/api-keys"),
                ("GET", "/rest/V1/customers/me"),
                ("GET", "/rest/V1/products"),
            ):
                r = await t.client.request(method, path, headers=bearer)
                assert r.status_code == 401, (path, r.text)
            # Registering again before the customer exists: same password -> a token, another -> refused.
            again = {"email": "pending@example.com", "password": "Pending-pass-1"}
            assert (await t.client.post("/auth/customer/emailpass/register", json=again)).status_code == 200
            again["password"] = "Other-pass-123"
            r = await t.client.post("/auth/customer/emailpass/register", json=again)
            assert r.status_code == 401 and r.json()["message"] == "Identity with email already exists"
            # Existing customers (demo data) cannot be registered over; admins cannot register at all.
            r = await t.client.post(
                "/auth/customer/emailpass/register",
                json={"email": "roni_cost@example.com", "password": "x-pass-12345"},
            )
            assert r.status_code == 401
            r = await t.client.post(
                "/auth/user/emailpass/register", json={"email": "x@example.com", "password": "x-pass-12345"}
            )
            assert r.status_code == 400
            # Creating the customer with a customer's (not a registration) token is refused.
            cust = await t.client.post(
                "/auth/customer/emailpass", json={"email": "roni_cost@example.com", "password": CUSTOMER_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {cust.json()['token']}", "x-publishable-api-key": pk}
            r = await t.client.post("/store/customers", headers=headers, json={})
            assert r.status_code == 400 and r.json()["type"] == "not_allowed"
            r = await t.client.post("/store/customers", headers={"x-publishable-api-key": pk}, json={})
            assert r.status_code == 401 and r.json() == UNAUTHORIZED

    inprocess.run(body)


def test_register_create_refresh_then_the_customer_is_a_customer_everywhere(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            pk = await _publishable(t)
            reg, token = await _register(t, pk, "new.buyer@example.com")
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["actor_type"] == "customer" and claims["actor_id"].startswith("cus_")
            assert claims["utypid"] == 3
            h = {"Authorization": f"Bearer {token}", "x-publishable-api-key": pk}
            me = (await t.client.get("/store/customers/me", headers=h)).json()["customer"]
            assert me["id"] == claims["actor_id"] and me["email"] == "new.buyer@example.com"
            # The same account on the Magento surface, same password.
            assert await t.customer_token("new.buyer@example.com", "Shopper-pass-77")
            # A customer token on an admin route: Medusa's 401 for the wrong actor type.
            assert (await t.client.get("/admin/users/me", headers=h)).json() == UNAUTHORIZED
            # The registration token cannot make a second customer.
            r = await t.client.post(
                "/store/customers", headers={"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk}, json={}
            )
            assert r.status_code == 400

    inprocess.run(body)


def test_cookie_session_login_logout_and_revocation(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("alice")
            token = await _login(t)
            r = await t.client.post("/auth/session", headers=t.bearer(token))
            assert r.status_code == 200, r.text
            assert r.json()["user"]["actor_type"] == "user" and "iat" in r.json()["user"]
            cookie = r.headers["set-cookie"]
            assert cookie.startswith("connect.sid=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
            assert "Secure" not in cookie  # plain HTTP on loopback: development
            sid = r.cookies["connect.sid"]
            t.client.cookies.clear()
            async with t.browser() as c:
                c.cookies.set("connect.sid", sid)
                assert (await c.get("/admin/users/me")).json()["user"]["email"] == "alice@example.com"
                # refresh works with the cookie alone (as JSON, as @medusajs/js-sdk sends every call: CSRF)
                refreshed = await c.post("/auth/token/refresh", headers={"Content-Type": "application/json"})
                assert refreshed.status_code == 200
                r = await c.delete("/auth/session")
                assert r.json() == {"success": True} and "1970" in r.headers["set-cookie"]
            # Durable before the 200: the CLI (its own engine) sees no session left; the old cookie is dead.
            async with t.browser() as c:
                c.cookies.set("connect.sid", sid)
                assert (await c.get("/admin/users/me")).json() == UNAUTHORIZED
                assert (await c.delete("/auth/session")).json() == UNAUTHORIZED
            ended = await _audit_events("session.*")
            assert {e["event"] for e in ended} == {"session.created", "session.ended"}
            # Revoking the admin's tokens (the operator's CLI) ends their sessions too.
            r = await t.client.post("/auth/session", headers=t.bearer(await _login(t)))
            sid = r.cookies["connect.sid"]
            t.client.cookies.clear()
            await inprocess.cli("admin", "deactivate", "alice")

            async def ended_too() -> bool:
                me = await t.client.get("/admin/users/me", headers={"Cookie": f"connect.sid={sid}"})
                return me.status_code == 401

            await until(ended_too, what="the session ended")
            assert (await t.client.post("/auth/session")).json() == UNAUTHORIZED
            forged = await t.client.get("/admin/users/me", headers={"Cookie": "connect.sid=tk_ss_forged"})
            assert forged.status_code == 401

    inprocess.run(body)


def _outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_password_reset_never_reveals_the_email_and_is_single_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    outbox = tmp_path / "outbox.jsonl"
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path, outbox_file=str(outbox)) as t:
            await t.create_customer("forgetful@example.com")
            old = await t.client.post(
                "/auth/customer/emailpass", json={"email": "forgetful@example.com", "password": CUSTOMER_PASSWORD}
            )
            url = "/auth/customer/emailpass/reset-password"
            known = await t.client.post(url, json={"identifier": "forgetful@example.com"})
            unknown = await t.client.post(url, json={"identifier": "stranger@example.com"})
            for r in (known, unknown):
                assert r.status_code == 201 and r.text == "Created"
                assert r.headers["content-type"].startswith("text/plain")
            r = await t.client.post(url, json={})
            assert r.status_code == 400
            assert r.json() == {"type": "invalid_data", "message": "Invalid request: Field 'identifier' is required"}

            async def mailed(count: int) -> list[dict[str, Any]]:
                mails = _outbox(outbox)
                return mails if len(mails) >= count else []

            mails = await until(lambda: mailed(1), what="the reset mail")
            assert [m["to"] for m in mails] == ["forgetful@example.com"]
            assert oct(outbox.stat().st_mode & 0o777) == "0o600"
            reset = mails[0]["token"]
            assert reset not in caplog.text
            update = "/auth/customer/emailpass/update"
            # Wrong actor, a login token, no token: Invalid token.
            r = await t.client.post("/auth/user/emailpass/update", headers=t.bearer(reset), json={"password": "x"})
            assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
            r = await t.client.post(update, headers=t.bearer(old.json()["token"]), json={"password": "New-pass-2024"})
            assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
            # The wrong-actor attempt left it unspent, and a second request does not void it either.
            await t.client.post(url, json={"identifier": "forgetful@example.com"})
            mails = await until(lambda: mailed(2), what="the second reset mail")
            r = await t.client.post(update, headers=t.bearer(reset), json={"password": "New-pass-2024"})
            assert r.status_code == 200 and r.json() == {"success": True}
            # The reset voids the other token mailed meanwhile.
            r = await t.client.post(update, headers=t.bearer(mails[-1]["token"]), json={"password": "Pass-3-2024"})
            assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
            r = await t.client.post(update, headers=t.bearer(reset), json={"password": "Another-pass-2024"})
            assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
            login = "/auth/customer/emailpass"
            stale = {"email": "forgetful@example.com", "password": CUSTOMER_PASSWORD}
            assert (await t.client.post(login, json=stale)).status_code == 401
            fresh = {"email": "forgetful@example.com", "password": "New-pass-2024"}
            assert (await t.client.post(login, json=fresh)).status_code == 200
            # Tokens from before the reset are revoked.
            await t.create_admin("ops")
            pk = await _publishable(t, "ops@example.com")
            r = await t.client.get(
                "/store/customers/me",
                headers={"Authorization": f"Bearer {old.json()['token']}", "x-publishable-api-key": pk},
            )
            assert r.status_code == 401
            events = {(e["event"], e["outcome"]) for e in await _audit_events("password_reset.*")}
            assert events == {
                ("password_reset.requested", "success"),
                ("password_reset.requested", "failure"),
                ("password_reset.completed", "success"),
            }

    inprocess.run(body)


def test_login_audit_and_no_secret_in_it(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("alice")
            await t.client.post(
                "/auth/user/emailpass", json={"email": "alice@example.com", "password": "wrong-wrong-wrong"}
            )
            token = await _login(t)
            wanted = {("login.failure", "alice@example.com"), ("login.success", "alice@example.com")}

            async def both_recorded() -> list[dict[str, Any]]:
                records = await _audit_events("login.*")
                return records if {(e["event"], e["username"]) for e in records} >= wanted else []

            records = await until(both_recorded, what="both login records")
            assert token not in json.dumps(records) and ADMIN_PASSWORD not in json.dumps(records)

    inprocess.run(body)
