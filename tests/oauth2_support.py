"""Helpers for the OAuth 2 tests: a server whose issuer is its own URL (clients check the issuer in
discovery), registered clients, and a browser stand-in that signs in on /console/login."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, free_port, make_database

REDIRECT = "https://app.example.test/callback"


def start_oauth_server(tmp: Path, backend: str, **env: str) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    srv = Server(tmp, make_database(backend, tmp), {"TILLKEY_ISSUER": f"http://127.0.0.1:{port}", **env})
    srv.start(port)
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("role", "create", "Catalog", "--resource", "Magento_Catalog::catalog")
    srv.cli(
        "admin", "create", "--username", "carol", "--email", "carol@example.com", "--password", ADMIN_PASSWORD,
        "--role", "Catalog", "--first-name", "Carol", "--last-name", "Jones",
    )  # fmt: skip
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    return srv


def register(srv: Server, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = srv.cli_json("client", "create", *args)
    return out


def web_client(srv: Server) -> httpx.Client:
    """A browser stand-in that keeps cookies, Secure ones too, as browsers do for loopback (httpx's
    cookie jar would drop Secure cookies over http). Cookies are all Path=/ on the console."""
    jar: dict[str, str] = {}

    def remember(response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in header.lower() or not value or value == '""':
                jar.pop(name, None)
            else:
                jar[name] = value

    def send(request: httpx.Request) -> None:
        if jar:
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())

    return httpx.Client(
        base_url=srv.url, timeout=30, follow_redirects=False, event_hooks={"request": [send], "response": [remember]}
    )


def hidden_fields(html: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    return {unescape(k): unescape(v) for k, v in fields}


def sign_in(browser: httpx.Client, login_url: str, username: str, password: str) -> httpx.Response:
    page = browser.get(login_url)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return browser.post("/console/login", data={**fields, "username": username, "password": password})


def authorize(
    srv: Server, url: str, username: str = "alice", password: str = ADMIN_PASSWORD, *, consent: str | None = "allow",
    browser: httpx.Client | None = None,
) -> str:  # fmt: skip
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
