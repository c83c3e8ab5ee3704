"""Helpers for the OAuth 2 tests: a server whose issuer is its own URL (clients check the issuer in
discovery), registered clients, and a browser stand-in that signs in on /console/login; below, the
same for the in-process app (tests/inprocess.py), whose issuer is its base URL already."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, free_port, make_database
from tests.inprocess import InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.storeapi.seed import seed

REDIRECT = "https://app.example.test/callback"


def start_oauth_server(tmp: Path, backend: str, **env: str) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    srv = Server(tmp, make_database(backend, tmp, migrated=True), {"TILLKEY_ISSUER": f"http://127.0.0.1:{port}", **env})
    srv.start(port)
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
        "--first-name",
        "Carol",
        "--last-name",
        "Jones",
    )
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    return srv


def register(srv: Server, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = srv.cli_json("client", "create", *args)
    return out


class _Jar:
    """Cookies as browsers keep them for loopback, Secure ones too (httpx's cookie jar would drop
    Secure cookies over http). Cookies are all Path=/ on the console."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def remember(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in header.lower() or not value or value == '""':
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def send(self, request: httpx.Request) -> None:
        if self.cookies:
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())


def web_client(srv: Server) -> httpx.Client:
    """A browser stand-in that keeps cookies (see _Jar)."""
    jar = _Jar()
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [jar.send], "response": [jar.remember]}
    return httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False, event_hooks=hooks)


def hidden_fields(html: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    return {unescape(k): unescape(v) for k, v in fields}


def sign_in(browser: httpx.Client, login_url: str, username: str, password: str) -> httpx.Response:
    page = browser.get(login_url)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return browser.post("/console/login", data={**fields, "username": username, "password": password})


def authorize(
    srv: Server,
    url: str,
    username: str = "alice",
    password: str = ADMIN_PASSWORD,
    *,
    consent: str | None = "allow",
    browser: httpx.Client | None = None,
) -> str:
    """Follow an authorization request through sign-in and consent; answers the final Location
    (the client's redirect URI with code or error)."""
    browser = browser or web_client(srv)
    r = browser.get(url)
    if r.status_code == 303 and r.headers["location"].startswith("/console/login"):
        r = sign_in(browser, r.headers["location"], username, password)
        assert r.status_code == 303, r.text
        r = browser.get(urljoin(srv.url, r.headers["location"]))
    if r.status_code == 200 and consent is not None:
        assert "Authorize access" in r.text
        r = browser.post("/oauth2/consent", data={**hidden_fields(r.text), "decision": consent})
    assert r.status_code in (302, 303), r.text
    return str(r.headers["location"])


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# --- the same, for the in-process app (tests/inprocess.py) ------------------------------------------


async def seed_oauth_app(t: InProcess) -> None:
    """What start_oauth_server creates: alice (Administrators, admin:1), carol (role Catalog: the
    catalog only) and the demo data, its customers signing in with CUSTOMER_PASSWORD."""
    await t.create_admin("alice")
    await t.accounts.create_role(OPERATOR, "Catalog", ["Magento_Catalog::catalog"])
    await t.create_admin("carol", role="Catalog")
    await seed(t.tk, CUSTOMER_PASSWORD)


async def register_async(t: InProcess, *args: str) -> dict[str, Any]:
    """`tillkey client create ARGS` (the operator's CLI, see inprocess.cli_environment); the app then
    reads the change feed at once, as its sync loop would within sync_interval."""
    out: dict[str, Any] = await inprocess.cli_json("client", "create", *args)
    await t.tk.poll_changes()
    return out


def async_web_client(t: InProcess) -> httpx.AsyncClient:
    """web_client for the in-process app: a browser of its own (see _Jar)."""
    jar = _Jar()

    async def send(request: httpx.Request) -> None:
        jar.send(request)

    async def remember(response: httpx.Response) -> None:
        jar.remember(response)

    assert t.transport is not None
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [send], "response": [remember]}
    return httpx.AsyncClient(transport=t.transport, base_url=inprocess.BASE_URL, event_hooks=hooks)


async def async_sign_in(browser: httpx.AsyncClient, login_url: str, username: str, password: str) -> httpx.Response:
    page = await browser.get(login_url)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await browser.post("/console/login", data={**fields, "username": username, "password": password})


async def async_authorize(
    t: InProcess,
    url: str,
    username: str = "alice",
    password: str = ADMIN_PASSWORD,
    *,
    consent: str | None = "allow",
    browser: httpx.AsyncClient | None = None,
) -> str:
    """authorize for the in-process app: through sign-in and consent to the final Location."""
    browser = browser or async_web_client(t)
    r = await browser.get(url)
    if r.status_code == 303 and r.headers["location"].startswith("/console/login"):
        r = await async_sign_in(browser, r.headers["location"], username, password)
        assert r.status_code == 303, r.text
        r = await browser.get(r.headers["location"])
    if r.status_code == 200 and consent is not None:
        assert "Authorize access" in r.text
        r = await browser.post("/oauth2/consent", data={**hidden_fields(r.text), "decision": consent})
    assert r.status_code in (302, 303), r.text
    return str(r.headers["location"])
