"""Helpers for the console tests: the seeded in-process app of tests/test_console.py with browsers
that sign in on /console/login as a real one does, and the seeded server the Chromium tests
(test_console_browser.py) drive."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, make_database
from tests.inprocess import InProcess
from tests.oauth2_support import hidden_fields
from tillkey.console.sign_in_session import DEV_COOKIE

CONSOLE_COOKIE = DEV_COOKIE  # plain HTTP on loopback: no __Host- prefix


def start_console_server(tmp: Path, backend: str, **env: str) -> Server:
    """alice (Administrators), carol (role Catalog: catalog only), the demo customers."""
    tmp.mkdir(parents=True, exist_ok=True)
    srv = Server(tmp, make_database(backend, tmp, migrated=True), {"TILLKEY_ADMIN_2FA": "optional", **env})
    srv.start()
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("role", "create", "Catalog", "--resource", "Magento_Catalog::catalog")
    srv.cli(
        "admin",
        "create",
        "--username",
        "carol",
        "--email",
        "carol@example.com",
        "--password",
        ADMIN_PASSWORD,
        "--role",
        "Catalog",
    )
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    return srv


class Browser:
    """One browser on the in-process app: its own cookie jar, and every Set-Cookie it was sent."""

    def __init__(self, t: InProcess) -> None:
        self.http = t.browser()
        self.set_cookies: list[str] = []
        self.http.event_hooks["response"].append(self._note)

    async def _note(self, response: httpx.Response) -> None:
        self.set_cookies.extend(response.headers.get_list("set-cookie"))

    async def sign_in(self, username: str = "alice", password: str = ADMIN_PASSWORD) -> httpx.Response:
        page = await self.http.get("/console/login")
        assert page.status_code == 200, page.text
        r = await self.http.post(
            "/console/login", data={**hidden_fields(page.text), "username": username, "password": password}
        )
        assert r.status_code == 303, r.text
        return r

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def csrf(self) -> str:
        page = await self.http.get("/console/")
        assert page.status_code == 200, page.text
        return hidden_fields(page.text)["csrf"]

    async def post(
        self, path: str, data: dict[str, str | list[str]] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        body: dict[str, str | list[str]] = dict(data or {})
        if csrf:
            body["csrf"] = await self.csrf()
        return await self.http.post(path, data=body)

    def cookie(self) -> str | None:
        """The console cookie this browser holds now."""
        for header in reversed(self.set_cookies):
            name, _, rest = header.partition("=")
            if name == CONSOLE_COOKIE:
                value = rest.split(";")[0]
                return None if not value or value == '""' or "max-age=0" in header.lower() else value
        return None


@dataclass
class Console:
    """The seeded app of a console test, and the browsers opened on it (closed at its end)."""

    t: InProcess
    opened: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        self.opened.append(Browser(self.t))
        return self.opened[-1]

    async def get(self, path: str, cookies: dict[str, str]) -> httpx.Response:
        """A request from a fresh browser holding only `cookies` (a copied or stale cookie)."""
        async with self.t.browser() as other:
            for name, value in cookies.items():
                other.cookies.set(name, value)
            return await other.get(path)


@asynccontextmanager
async def console_app(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[Console]:
    """The console's server, in process: alice (Administrators), carol (role Catalog), the demo
    data, two-factor auth optional (unless `settings` say otherwise)."""
    async with inprocess.running(tmp_path, **{"admin_2fa": "optional", **db, **settings}) as t:
        await inprocess.seed_like_server(t)
        console = Console(t)
        try:
            yield console
        finally:
            for browser in console.opened:
                await browser.http.aclose()


def is_sign_in_redirect(r: httpx.Response) -> bool:
    return r.status_code == 303 and r.headers["location"].startswith("/console/login")


def nav_links(html: str) -> list[str]:
    nav = html.split("<nav", 1)[1].split("</nav>", 1)[0] if "<nav" in html else ""
    return [unescape(h) for h in re.findall(r'<a href="([^"]+)"', nav)]
