"""Console sign-in with an external OpenID provider in a real browser (issue 14): Debian's Chromium
driven by Playwright, a `tillkey serve` process, and panva's oidc-provider from npm. Click "Sign in
with Corp SSO", sign in on the provider's page, land on the console's dashboard with the role the
account's groups map to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, free_port, make_database
from tests.federation_support import CLIENT_ID, CLIENT_SECRET, openid_provider
from tests.test_console_browser import ARGS, CHROMIUM, need_chromium

pytestmark = pytest.mark.interop

ACCOUNTS = {
    "staff": {"claims": {"email": "staff@corp.example", "email_verified": True, "groups": ["shop-staff"]}},
    "outsider": {"claims": {"email": "someone@corp.example", "email_verified": True, "groups": ["visitors"]}},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    """A server whose issuer is its own URL: the provider returns the browser to its console."""
    port = free_port()
    env = {"TILLKEY_ISSUER": f"http://127.0.0.1:{port}", "TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS": "true"}
    server = Server(tmp_path, make_database("sqlite", tmp_path, migrated=True), env)
    server.start(port)
    try:
        yield server
    finally:
        server.stop()


def _sign_in_at_provider(page: Any, srv: Server, account: str) -> None:
    page.goto(f"{srv.url}/console/login")
    page.get_by_role("link", name="Sign in with Corp SSO").click()
    page.locator('input[name="account"]').fill(account)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_signs_in_with_the_provider_in_chromium(browser: Any, srv: Server, tmp_path: Path) -> None:
    callback = f"{srv.url}/console/login/idp/corp/callback"
    with openid_provider(ACCOUNTS, [callback], tmp_path) as op:
        srv.cli("role", "create", "catalog", "--resource", "Magento_Catalog::catalog")
        add = f"idp add --name corp --issuer {op.issuer} --client-id {CLIENT_ID} --client-secret {CLIENT_SECRET}"
        srv.cli(
            *add.split(),
            *"--actor admin --groups-claim groups --role-map shop-staff=catalog --provision jit".split(),
            *("--allowed-domain", "corp.example", "--display-name", "Corp SSO"),
            *("--scope", "openid email profile groups"),
        )
        context = browser.new_context()
        try:
            page = context.new_page()
            _sign_in_at_provider(page, srv, "staff")
            page.wait_for_url(f"{srv.url}/console/")
            assert "corp-staff" in page.content()
            # The role its groups map to: the catalog, and not the signing keys.
            page.goto(f"{srv.url}/console/keys")
            assert "Your role does not grant" in page.content()
            page.goto(f"{srv.url}/console/account")
            assert "Corp SSO" in page.content()
        finally:
            context.close()

        context = browser.new_context()
        try:
            page = context.new_page()
            _sign_in_at_provider(page, srv, "outsider")  # no group maps, no default role
            page.wait_for_url(f"{callback}**")
            assert "Sign-in failed" in page.content() or "no account" in page.content().lower()
            page.goto(f"{srv.url}/console/")
            assert page.url.startswith(f"{srv.url}/console/login")
        finally:
            context.close()
