"""Every audit record of a sign-in or an issuance carries the client IP (as the trusted-proxy rules
resolve it) and the user agent (issue 21), on every surface: Magento admin and customer tokens and
the refresh cookie, Medusa login, registration, refresh and sessions, the console, OAuth 2's code,
refresh and client-credentials grants."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.store.audit import AuditQuery

CLIENT_IP = "203.0.113.7"  # what the trusted proxy (the harness's 127.0.0.1 peer) says
UA = "Origin-Test/1.0 (issue 21)"
ORIGIN = {"User-Agent": UA, "X-Forwarded-For": CLIENT_IP}
EVENTS = ("login.success", "token.issued", "session.created")
REDIRECT = "https://app.example.com/cb"


async def _magento(t: inprocess.InProcess, c: httpx.AsyncClient) -> None:
    for path, user in (("admin", "ada"), ("customer", "c@example.com")):
        password = inprocess.ADMIN_PASSWORD if path == "admin" else inprocess.CUSTOMER_PASSWORD
        r = await c.post(f"/rest/V1/integration/{path}/token", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
    # The refresh cookie of the last login (Secure: sent by hand over the harness's plain HTTP).
    r = await c.post(
        "/rest/V1/integration/token/refresh", headers={"Cookie": f"tillkey_refresh={r.cookies['tillkey_refresh']}"}
    )
    assert r.status_code == 200, r.text


async def _medusa(c: httpx.AsyncClient) -> None:
    r = await c.post("/auth/user/emailpass", json={"email": "ada@example.com", "password": inprocess.ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    r = await c.post(
        "/auth/customer/emailpass", json={"email": "c@example.com", "password": inprocess.CUSTOMER_PASSWORD}
    )
    token = r.json()["token"]
    assert (await c.post("/auth/token/refresh", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await c.post("/auth/session", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    r = await c.post("/auth/customer/emailpass/register", json={"email": "new@example.com", "password": "Pass-2024-x"})
    assert r.status_code == 200, r.text


async def _console_and_oauth2(t: inprocess.InProcess, c: httpx.AsyncClient) -> None:
    page = await c.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    form = {"csrf": csrf.group(1), "username": "ada", "password": inprocess.ADMIN_PASSWORD}
    assert (await c.post("/console/login", data=form)).status_code == 303
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name="app",
        client_type="confidential",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scopes=["openid", "Magento_Catalog::products"],
        first_party=True,
    )
    assert reg.secret is not None
    basic = base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    r = await c.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": reg.client.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
        },
    )
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    auth = {"Authorization": f"Basic {basic}"}
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    r = await c.post("/oauth2/token", data=grant, headers=auth)
    assert r.status_code == 200, r.text
    r = await c.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]}, headers=auth
    )
    assert r.status_code == 200, r.text
    r = await c.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert r.status_code == 200, r.text


def test_every_sign_in_and_issuance_record_carries_ip_and_user_agent(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1", require_https=False) as t:
            await t.create_admin("ada", email="ada@example.com")
            await t.create_customer("c@example.com")
            async with t.browser() as c:
                c.headers.update(ORIGIN)
                await _magento(t, c)
                await _medusa(c)
                await _console_and_oauth2(t, c)
            await t.tk.audit.stop()  # write what the token endpoint queued
            t.tk.audit.start()
            records = []
            for event in EVENTS:
                records += await t.tk.audit.search(AuditQuery(event=event, limit=200))
            seen = {(r.event, r.actor_type) for r in records}
            # Every path above left its records (admin 2, customer 3, guest 4, OAuth client 5 …).
            assert {
                ("login.success", 2),
                ("login.success", 3),
                ("token.issued", 2),
                ("token.issued", 3),
                ("token.issued", 4),
                ("session.created", 3),
                ("session.created", 2),
            } <= seen
            assert len(records) >= 17
            missing = [(r.event, r.details) for r in records if (r.ip, r.user_agent) != (CLIENT_IP, UA)]
            assert not missing

    inprocess.run(body)
