"""Helpers for the console tests: a module's own seeded server, and a cookie-keeping HTTP client
that signs in on /console/login the way a browser does (the browser tests drive Chromium)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, make_database
from tests.oauth2_support import hidden_fields, web_client

CONSOLE_COOKIE = "tillkey_console"  # plain HTTP on loopback: no __Host- prefix


def start_console_server(tmp: Path, backend: str, **env: str) -> Server:
    """alice (Administrators), carol (role Catalog: catalog only), the demo customers."""
    tmp.mkdir(parents=True, exist_ok=True)
    srv = Server(tmp, make_database(backend, tmp), {"TILLKEY_ADMIN_2FA": "optional", **env})
    srv.start()
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("role", "create", "Catalog", "--resource", "Magento_Catalog::catalog")
    srv.cli(
        "admin", "create", "--username", "carol", "--email", "carol@example.com", "--password", ADMIN_PASSWORD,
        "--role", "Catalog",
    )  # fmt: skip
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    return srv


class ConsoleClient:
    """One browser: its own cookie jar (Secure cookies kept, as browsers do on loopback)."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.http = web_client(srv)
        self.set_cookies: list[str] = []
        self.http.event_hooks["response"].append(self._note)

    def _note(self, response: httpx.Response) -> None:
        self.set_cookies.extend(response.headers.get_list("set-cookie"))

    def sign_in(self, username: str = "alice", password: str = ADMIN_PASSWORD) -> httpx.Response:
        page = self.http.get("/console/login")
        assert page.status_code == 200, page.text
        r = self.http.post("/console/login", data={**hidden_fields(page.text), "username": username,
                                                   "password": password})  # fmt: skip
        assert r.status_code == 303, r.text
        return r

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def csrf(self) -> str:
        page = self.http.get("/console/")
        assert page.status_code == 200, page.text
        return hidden_fields(page.text)["csrf"]

    def post(self, path: str, data: dict[str, str | list[str]] | None = None, *, csrf: bool = True) -> httpx.Response:
        body: dict[str, str | list[str]] = dict(data or {})
        if csrf:
            body["csrf"] = self.csrf()
        return self.http.post(path, data=body)

    def cookie(self) -> str | None:
        """The console cookie this client holds now."""
        for header in reversed(self.set_cookies):
            name, _, rest = header.partition("=")
            if name == CONSOLE_COOKIE:
                value = rest.split(";")[0]
                return None if not value or value == '""' or "max-age=0" in header.lower() else value
        return None


def is_sign_in_redirect(r: httpx.Response) -> bool:
    return r.status_code == 303 and r.headers["location"].startswith("/console/login")


def nav_links(html: str) -> list[str]:
    nav = html.split("<nav", 1)[1].split("</nav>", 1)[0] if "<nav" in html else ""
    return [unescape(h) for h in re.findall(r'<a href="([^"]+)"', nav)]
