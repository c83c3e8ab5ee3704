"""CSRF through the Medusa session cookie: a page on another site can make the browser POST with
the cookie as a "simple" request (text/plain, form-urlencoded, multipart, or no type). A
state-changing call authenticated by the cookie must be application/json (415 in Medusa's error
shape otherwise); bearer-authenticated calls and safe methods are unaffected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import inprocess

KEYS = "/admin/api-keys"
BODY = json.dumps({"title": "csrf", "type": "secret"})
REFUSED_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    None,  # no Content-Type at all
    "",
    "application/jsonp",
    "application/json-patch+json",
    "text/plain; application/json",
    "application/x-www-form-urlencoded, application/json",
]
ACCEPTED_TYPES = ["application/json", "application/json;charset=utf-8", "APPLICATION/JSON; charset=UTF-8"]


async def _session(t: inprocess.InProcess) -> tuple[str, str]:
    """(bearer token, session cookie value) of admin boss, by Medusa's own login and session calls."""
    await t.create_admin("boss", email="boss@example.com")
    r = await t.client.post(
        "/auth/user/emailpass", json={"email": "boss@example.com", "password": inprocess.ADMIN_PASSWORD}
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    s = await t.client.post("/auth/session", headers=t.bearer(token))
    assert s.status_code == 200, s.text
    cookie = s.cookies.get("connect.sid") or ""
    assert cookie
    t.client.cookies.clear()
    return token, cookie


async def _post(t: inprocess.InProcess, path: str, ctype: str | None, auth: dict[str, str]) -> Any:
    headers = dict(auth)
    if ctype is not None:
        headers["Content-Type"] = ctype
    return await t.client.post(path, content=BODY.encode(), headers=headers)


async def _count(t: inprocess.InProcess, cookie: dict[str, str]) -> int:
    r = await t.client.get(KEYS, headers=cookie)
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def test_cookie_authenticated_writes_must_be_json(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            _, sid = await _session(t)
            cookie = {"Cookie": f"connect.sid={sid}"}
            before = await _count(t, cookie)  # a cookie GET needs no Content-Type
            for ctype in REFUSED_TYPES:
                r = await _post(t, KEYS, ctype, cookie)
                assert r.status_code == 415, (ctype, r.status_code, r.text)
                assert r.json() == {
                    "type": "invalid_data",
                    "message": "Requests authenticated by the session cookie must send Content-Type: application/json.",
                }
            assert await _count(t, cookie) == before  # nothing was created
            for ctype in ACCEPTED_TYPES:
                r = await _post(t, KEYS, ctype, cookie)
                assert r.status_code == 200, (ctype, r.text)
            assert await _count(t, cookie) == before + len(ACCEPTED_TYPES)
            key_id = r.json()["api_key"]["id"]
            # Other state-changing routes: the same rule (revoke, rename).
            for path in (f"{KEYS}/{key_id}/revoke", f"{KEYS}/{key_id}"):
                r = await t.client.post(path, headers={**cookie, "Content-Type": "text/plain"}, content=b"{}")
                assert r.status_code == 415, (path, r.text)
                r = await t.client.post(path, headers=cookie)
                assert r.status_code == 415, (path, r.text)
            still = await t.client.get(f"{KEYS}/{key_id}", headers=cookie)
            assert still.status_code == 200 and still.json()["api_key"]["revoked_at"] is None
            # DELETE carries no body and no page sends it cross-site without a preflight: logging
            # out with the cookie alone still works.
            r = await t.client.delete("/auth/session", headers=cookie)
            assert r.status_code == 200 and r.json() == {"success": True}

    inprocess.run(body)


def test_bearer_calls_and_other_surfaces(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            token, sid = await _session(t)
            # A bearer caller is not a browser's ambient credential: its Content-Type is its own affair.
            r = await _post(t, KEYS, "text/plain", t.bearer(token))
            assert r.status_code == 200, r.text
            # The cookie on Tillkey's native JSON API: the same rule, in that surface's shape.
            cookie = {"Cookie": f"connect.sid={sid}"}
            integration = json.dumps({"name": "erp", "all": True}).encode()
            r = await t.client.post(
                "/tillkey/v1/integrations", content=integration, headers={**cookie, "Content-Type": "text/plain"}
            )
            assert r.status_code == 415, r.text
            assert "application/json" in r.json()["message"]
            r = await t.client.post(
                "/tillkey/v1/integrations", content=integration, headers={**cookie, "Content-Type": "application/json"}
            )
            assert r.status_code == 201, r.text
            # A bad cookie is not a session: the route answers as for a stranger (401), not 415.
            r = await _post(t, KEYS, "text/plain", {"Cookie": "connect.sid=tk_ss_forged"})
            assert r.status_code == 401

    inprocess.run(body)
