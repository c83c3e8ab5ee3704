"""Medusa-style authentication over real HTTP (shared/specs/medusa.md §1-2): login errors, the
registration token's limits, refresh, cookie sessions and their revocation, password reset, and
that the Magento surface still issues exactly what it did."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server
from tests.test_medusa_api_keys import UNAUTHORIZED, _admin, _create, _login, _wait_for, audit_events


def _publishable(srv: Server) -> str:
    with _admin(srv, _login(srv)) as admin:
        return str(_create(admin, title="shop", type="publishable")["token"])


def _register(srv: Server, pk: str, email: str, password: str = "Shopper-pass-77") -> tuple[str, str]:  # noqa: S107
    """register -> POST /store/customers -> refresh: (registration token, customer token)."""
    r = httpx.post(f"{srv.url}/auth/customer/emailpass/register", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    reg = r.json()["token"]
    h = {"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk}
    r = httpx.post(f"{srv.url}/store/customers", headers=h, json={"email": email, "first_name": "A", "last_name": "B"})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{srv.url}/auth/token/refresh", headers={"Authorization": f"Bearer {reg}"})
    assert r.status_code == 200, r.text
    return reg, r.json()["token"]


def test_login_errors_in_medusas_shape(server: Server) -> None:
    url = f"{server.url}/auth/user/emailpass"
    wrong = httpx.post(url, json={"email": "alice@example.com", "password": "nope-nope-nope"})
    unknown = httpx.post(url, json={"email": "nobody@example.com", "password": "nope-nope-nope"})
    for r in (wrong, unknown):
        assert r.status_code == 401 and r.json() == {"type": "unauthorized", "message": "Invalid email or password"}
    r = httpx.post(url, json={"email": "alice@example.com"})
    assert r.json() == {"type": "unauthorized", "message": "Password should be a string"}
    r = httpx.post(url, json={"password": "x"})
    assert r.json() == {"type": "unauthorized", "message": "Email should be a string"}
    r = httpx.post(f"{server.url}/auth/user/github", json={})
    assert r.status_code == 400 and r.json()["type"] == "not_allowed"
    r = httpx.post(f"{server.url}/auth/customer/github", json={})
    assert r.status_code == 401 and r.json()["type"] == "unauthorized"
    r = httpx.post(url, content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "invalid_data"
    r = httpx.get(f"{server.url}/auth/customer/providers")
    assert r.json()["providers"][0]["id"] == "emailpass"
    assert httpx.post(f"{server.url}/auth/token/refresh").json() == UNAUTHORIZED


def test_medusa_and_magento_tokens_share_revocation_and_the_magento_token_is_unchanged(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    magento = srv.token("admin", "alice", ADMIN_PASSWORD)
    claims = jwt.decode(magento, options={"verify_signature": False})
    assert set(claims) == {"uid", "utypid", "iat", "exp", "jti", "iss", "amr"}
    medusa = _login(srv)
    # A Medusa token works on the Magento routes and the reverse: one credential kind.
    assert (
        httpx.get(f"{srv.url}/rest/V1/store/websites", headers={"Authorization": f"Bearer {medusa}"}).status_code == 200
    )
    assert httpx.get(f"{srv.url}/admin/users/me", headers={"Authorization": f"Bearer {magento}"}).status_code == 200
    srv.cli("admin", "revoke-tokens", "alice")
    for tok in (magento, medusa):
        assert _wait_for(
            lambda tok=tok: (
                httpx.get(f"{srv.url}/admin/users/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
            )
        )


def test_registration_token_passes_no_customer_or_admin_route(server: Server) -> None:
    pk = _publishable(server)
    r = httpx.post(
        f"{server.url}/auth/customer/emailpass/register",
        json={"email": "pending@example.com", "password": "Pending-pass-1"},
    )
    reg = r.json()["token"]
    claims = jwt.decode(reg, options={"verify_signature": False})
    assert claims["actor_id"] == "" and claims["app_metadata"] == {} and claims["utypid"] == 4
    bearer = {"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk}
    for method, path in (
        ("GET", "/store/customers/me"), ("GET", "/admin/users/me"), ("GET", "/admin/api-keys"),
        ("GET", "/rest/V1/customers/me"), ("GET", "/rest/V1/products"),
    ):  # fmt: skip
        r = httpx.request(method, server.url + path, headers=bearer)
        assert r.status_code == 401, (path, r.text)
    # Registering again before the customer exists: same password -> a token, another -> refused.
    again = {"email": "pending@example.com", "password": "Pending-pass-1"}
    assert httpx.post(f"{server.url}/auth/customer/emailpass/register", json=again).status_code == 200
    again["password"] = "Other-pass-123"
    r = httpx.post(f"{server.url}/auth/customer/emailpass/register", json=again)
    assert r.status_code == 401 and r.json()["message"] == "Identity with email already exists"
    # Existing customers (demo data) cannot be registered over; admins cannot register at all.
    r = httpx.post(
        f"{server.url}/auth/customer/emailpass/register",
        json={"email": "roni_cost@example.com", "password": "x-pass-12345"},
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{server.url}/auth/user/emailpass/register", json={"email": "x@example.com", "password": "x-pass-12345"}
    )
    assert r.status_code == 400
    # Creating the customer with a customer's (not a registration) token is refused.
    cust = httpx.post(
        f"{server.url}/auth/customer/emailpass", json={"email": "roni_cost@example.com", "password": CUSTOMER_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {cust.json()['token']}", "x-publishable-api-key": pk}
    r = httpx.post(f"{server.url}/store/customers", headers=headers, json={})
    assert r.status_code == 400 and r.json()["type"] == "not_allowed"
    r = httpx.post(f"{server.url}/store/customers", headers={"x-publishable-api-key": pk}, json={})
    assert r.status_code == 401 and r.json() == UNAUTHORIZED


def test_register_create_refresh_then_the_customer_is_a_customer_everywhere(server: Server) -> None:
    pk = _publishable(server)
    reg, token = _register(server, pk, "new.buyer@example.com")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["actor_type"] == "customer" and claims["actor_id"].startswith("cus_") and claims["utypid"] == 3
    h = {"Authorization": f"Bearer {token}", "x-publishable-api-key": pk}
    me = httpx.get(f"{server.url}/store/customers/me", headers=h).json()["customer"]
    assert me["id"] == claims["actor_id"] and me["email"] == "new.buyer@example.com"
    # The same account on the Magento surface, same password.
    assert server.token("customer", "new.buyer@example.com", "Shopper-pass-77")
    # A customer token on an admin route: Medusa's 401 for the wrong actor type.
    assert httpx.get(f"{server.url}/admin/users/me", headers=h).json() == UNAUTHORIZED
    # The registration token cannot make a second customer.
    r = httpx.post(
        f"{server.url}/store/customers",
        headers={"Authorization": f"Bearer {reg}", "x-publishable-api-key": pk},
        json={},
    )
    assert r.status_code == 400


def test_cookie_session_login_logout_and_revocation(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    token = _login(srv)
    r = httpx.post(f"{srv.url}/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["actor_type"] == "user" and "iat" in r.json()["user"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("connect.sid=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: development
    sid = r.cookies["connect.sid"]
    with httpx.Client(base_url=srv.url, cookies={"connect.sid": sid}) as c:
        assert c.get("/admin/users/me").json()["user"]["email"] == "alice@example.com"
        # refresh works with the cookie alone (as JSON, as @medusajs/js-sdk sends every call: CSRF)
        assert c.post("/auth/token/refresh", headers={"Content-Type": "application/json"}).status_code == 200
        r = c.delete("/auth/session")
        assert r.json() == {"success": True} and "1970" in r.headers["set-cookie"]
    # Durable before the 200: a fresh CLI process sees no session left (and the old cookie is dead).
    with httpx.Client(base_url=srv.url, cookies={"connect.sid": sid}) as c:
        assert c.get("/admin/users/me").json() == UNAUTHORIZED
        assert c.delete("/auth/session").json() == UNAUTHORIZED
    ended = audit_events(srv, "session.*")
    assert {e["event"] for e in ended} == {"session.created", "session.ended"}
    # Revoking the admin's tokens (another process) ends their sessions too.
    r = httpx.post(f"{srv.url}/auth/session", headers={"Authorization": f"Bearer {_login(srv)}"})
    sid = r.cookies["connect.sid"]
    srv.cli("admin", "deactivate", "alice")
    assert _wait_for(lambda: httpx.get(f"{srv.url}/admin/users/me", cookies={"connect.sid": sid}).status_code == 401)
    assert httpx.post(f"{srv.url}/auth/session").json() == UNAUTHORIZED
    assert httpx.get(f"{srv.url}/admin/users/me", cookies={"connect.sid": "tk_ss_forged"}).status_code == 401


def _outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_password_reset_never_reveals_the_email_and_is_single_use(sqlite_server_factory: Any, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    srv = sqlite_server_factory(TILLKEY_OUTBOX_FILE=str(outbox))
    srv.cli("customer", "create", "--email", "forgetful@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "F", "--last-name", "G")  # fmt: skip
    old = httpx.post(
        f"{srv.url}/auth/customer/emailpass", json={"email": "forgetful@example.com", "password": CUSTOMER_PASSWORD}
    )
    url = f"{srv.url}/auth/customer/emailpass/reset-password"
    known = httpx.post(url, json={"identifier": "forgetful@example.com"})
    unknown = httpx.post(url, json={"identifier": "stranger@example.com"})
    for r in (known, unknown):
        assert r.status_code == 201 and r.text == "Created" and r.headers["content-type"].startswith("text/plain")
    r = httpx.post(url, json={})
    assert r.status_code == 400
    assert r.json() == {"type": "invalid_data", "message": "Invalid request: Field 'identifier' is required"}
    mails = _wait_for(lambda: _outbox(outbox))
    assert [m["to"] for m in mails] == ["forgetful@example.com"]
    assert oct(outbox.stat().st_mode & 0o777) == "0o600"
    reset = mails[0]["token"]
    assert reset not in srv.log()
    update = f"{srv.url}/auth/customer/emailpass/update"
    # Wrong actor, a login token, no token: Invalid token.
    r = httpx.post(
        f"{srv.url}/auth/user/emailpass/update", headers={"Authorization": f"Bearer {reset}"}, json={"password": "x"}
    )
    assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
    r = httpx.post(
        update, headers={"Authorization": f"Bearer {old.json()['token']}"}, json={"password": "New-pass-2024"}
    )
    assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
    # The wrong-actor attempt left it unspent, and a second request does not void it either.
    httpx.post(url, json={"identifier": "forgetful@example.com"})
    mails = _wait_for(lambda: len(_outbox(outbox)) > 1 and _outbox(outbox))
    r = httpx.post(update, headers={"Authorization": f"Bearer {reset}"}, json={"password": "New-pass-2024"})
    assert r.status_code == 200 and r.json() == {"success": True}
    # The reset voids the other token mailed meanwhile.
    r = httpx.post(update, headers={"Authorization": f"Bearer {mails[-1]['token']}"}, json={"password": "Pass-3-2024"})
    assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
    r = httpx.post(update, headers={"Authorization": f"Bearer {reset}"}, json={"password": "Another-pass-2024"})
    assert r.json() == {"type": "unauthorized", "message": "Invalid token"}
    login = f"{srv.url}/auth/customer/emailpass"
    assert httpx.post(login, json={"email": "forgetful@example.com", "password": CUSTOMER_PASSWORD}).status_code == 401
    assert httpx.post(login, json={"email": "forgetful@example.com", "password": "New-pass-2024"}).status_code == 200
    # Tokens from before the reset are revoked.
    pk = _publishable_via_cli(srv)
    r = httpx.get(
        f"{srv.url}/store/customers/me",
        headers={"Authorization": f"Bearer {old.json()['token']}", "x-publishable-api-key": pk},
    )
    assert r.status_code == 401
    events = {(e["event"], e["outcome"]) for e in audit_events(srv, "password_reset.*")}
    assert events == {
        ("password_reset.requested", "success"), ("password_reset.requested", "failure"),
        ("password_reset.completed", "success"),
    }  # fmt: skip


def _publishable_via_cli(srv: Server) -> str:
    srv.cli("admin", "create", "--username", "ops", "--email", "ops@example.com", "--password", ADMIN_PASSWORD)
    return _publishable_for(srv, "ops@example.com")


def _publishable_for(srv: Server, email: str) -> str:
    with _admin(srv, _login(srv, email)) as admin:
        return str(_create(admin, title="shop", type="publishable")["token"])


def test_login_audit_and_no_secret_in_it(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    httpx.post(f"{srv.url}/auth/user/emailpass", json={"email": "alice@example.com", "password": "wrong-wrong-wrong"})
    token = _login(srv)
    time.sleep(0.2)
    records = audit_events(srv, "login.*")
    assert {(e["event"], e["username"]) for e in records} >= {
        ("login.failure", "alice@example.com"), ("login.success", "alice@example.com"),
    }  # fmt: skip
    assert token not in json.dumps(records) and ADMIN_PASSWORD not in json.dumps(records)
