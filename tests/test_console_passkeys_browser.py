"""Passkeys in a real browser: Debian's Chromium through Playwright, with a CDP virtual
authenticator (WebAuthn.addVirtualAuthenticator: CTAP2, internal transport, resident keys, user
verification). An admin registers a passkey on /console/2fa with the console's own script, signs
out, signs in passwordless with it (conditional UI: the sign-in page's autofill request); with the
authenticator removed the passkey sign-in is refused cleanly (the page stays and says so; the
password still works, and leads to the second factor).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, Server, free_port, make_database
from tests.test_console_browser import ARGS, CHROMIUM, need_chromium


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    need_chromium()
    tmp: Path = tmp_path_factory.mktemp("passkeys-browser")
    port = free_port()
    # WebAuthn needs a domain for its RP id (not an IP address): localhost, a secure context over HTTP.
    env = {
        "TILLKEY_ADMIN_2FA": "optional",
        "TILLKEY_ISSUER": f"http://localhost:{port}",
        "TILLKEY_WEBAUTHN_RP_ID": "localhost",
        "TILLKEY_WEBAUTHN_ORIGINS": f"http://localhost:{port}",
        "TILLKEY_WEBAUTHN_CHALLENGE_TTL": "30",
    }
    server = Server(tmp, make_database("sqlite", tmp, migrated=True), env)
    server.start(port)
    server.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


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


def test_register_a_passkey_then_sign_in_passwordless(browser: Any, srv: Server) -> None:
    from playwright.sync_api import expect

    base = f"http://localhost:{srv.port}"
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]

    page.goto(f"{base}/console/login")
    assert page.locator("form[data-passkey-autofill]").count() == 0  # no admin has a passkey yet
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/console/")

    page.goto(f"{base}/console/2fa")
    page.get_by_label("Name", exact=True).fill("Chromium")
    page.get_by_role("button", name="Add a passkey").click()
    # options fetched, the authenticator asked, the form posted, the page shown again: the list has it
    expect(page.locator("table")).to_contain_text("Chromium", timeout=30_000)
    assert page.locator("table").inner_text().count("Chromium") == 1
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1 and stored[0]["isResidentCredential"] and stored[0]["rpId"] == "localhost"

    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url) if frame == page.main_frame else None)
    page.get_by_role("button", name="Sign out").click()
    # Conditional UI: the sign-in page the sign-out lands on asks for a passkey in the username
    # field's autofill as it loads; the virtual authenticator (automatic presence) answers at once,
    # as choosing it would. Not loaded a second time: two pages' ceremonies would race.
    try:
        page.wait_for_url(f"{base}/console/", timeout=60_000)
    except Exception as exc:
        raise AssertionError(
            f"no passwordless sign-in; at {page.url}, after {visited}: {page.inner_text('body')[:600]}"
        ) from exc
    # The sign-in page, then the console (the passkey form's POST answered by a redirect to it).
    assert visited[:2] == [f"{base}/console/login", f"{base}/console/"], visited
    assert "alice" in page.locator("header").inner_text()
    page.goto(f"{base}/console/2fa")
    assert "never" not in page.locator("table").inner_text()  # last used: now
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login**")

    # The authenticator is gone: the ceremony fails in the browser, the page says so and stays.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    page.goto(f"{base}/console/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    status = page.locator("form[data-passkey-autofill] [data-passkey-status]")
    # (the browser gives up when the options' timeout passes: TILLKEY_WEBAUTHN_CHALLENGE_TTL, 30 s)
    expect(status).not_to_have_text(re.compile(r"^(|Waiting.*)$"), timeout=45_000)
    assert page.url.startswith(f"{base}/console/login")
    # The password still works, and leads to the second factor (alice has a passkey now).
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/console/login/otp**")
    assert page.get_by_role("button", name="Use a passkey").is_visible()
    assert errors == []
    context.close()
