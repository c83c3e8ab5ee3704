"""A real OpenID provider for the federation tests: panva's oidc-provider from npm
(tests/js/oidc-op), started on a free loopback port with the clients and accounts a test defines,
and a browser stand-in that signs in at it by following redirects."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from tests.conftest import free_port, stop_process
from tests.js_packages import installed

JS = Path(__file__).parent / "js" / "oidc-op"
CLIENT_ID = "tillkey-test"
CLIENT_SECRET = "tillkey-test-client-secret-0123456789"
STOREFRONT_CALLBACK = "http://127.0.0.1:8000/shop/auth/callback"
CONSOLE_CALLBACK = "http://127.0.0.1:8000/console/login/idp/corp/callback"


@dataclass(frozen=True)
class OpenIDProvider:
    issuer: str
    accounts_file: Path

    def set_account(self, account: str, claims: dict[str, Any], amr: list[str] | None = None) -> None:
        """Change a user at the provider (its next sign-in there asserts these claims)."""
        accounts = json.loads(self.accounts_file.read_text())
        accounts[account] = {"claims": claims, **({"amr": amr} if amr else {})}
        self.accounts_file.write_text(json.dumps(accounts))


def _node_modules() -> None:
    # Under the shared file lock: another worker's `npm ci` empties node_modules while it runs.
    installed("oidc-op", "oidc-provider", what="the OpenID provider of the federation tests")


@contextmanager
def openid_provider(accounts: dict[str, Any], redirect_uris: list[str], tmp: Path) -> Iterator[OpenIDProvider]:
    """oidc-provider on loopback with one confidential client for Tillkey and these accounts
    (id -> {"claims": {...}, "amr": [...]}, kept in a file under `tmp`); stopped afterwards."""
    _node_modules()
    port = free_port()
    accounts_file = tmp / "op-accounts.json"
    accounts_file.write_text(json.dumps(accounts))
    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/local/bin"),
        "OP_PORT": str(port),
        "OP_CLIENTS": json.dumps(clients),
        "OP_ACCOUNTS": str(accounts_file),
    }
    proc = subprocess.Popen(["node", "op.mjs"], cwd=JS, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"READY"):
            line = proc.stdout.readline()  # blocks until the provider prints (or exits: b"")
            if not line and proc.poll() is not None:
                raise AssertionError(f"oidc-provider exited with {proc.returncode}")
        yield OpenIDProvider(f"http://127.0.0.1:{port}", accounts_file)
    finally:
        stop_process(proc)


async def sign_in_at_provider(location: str, account: str, until: str) -> dict[str, str]:
    """What a browser does at the provider: follow its redirects, post `account` on its login page,
    accept consent; returns the query of the redirect to `until` (the callback URL)."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        url, method, data = location, "GET", None
        for _ in range(20):
            r = await browser.request(method, url, data=data)
            if r.is_redirect:
                url, method, data = urljoin(url, r.headers["location"]), "GET", None
                if url.startswith(until):
                    return dict(parse_qsl(urlsplit(url).query))
                continue
            if r.status_code == 200 and "/interaction/" in url and 'name="account"' in r.text:
                method, data = "POST", {"account": account}
                continue
            raise AssertionError(f"unexpected answer from the provider at {url}: {r.status_code} {r.text[:300]}")
    raise AssertionError("too many redirects at the provider")
