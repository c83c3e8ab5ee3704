"""The admin console in a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser). Sign-in with TOTP, a role made in the resource tree and an admin limited to it, the idle
warning and server-side sign-out, one session per admin, a form without its CSRF token refused,
and the layout of every page at laptop and phone widths (screenshots in a temporary folder,
TILLKEY_SCREENSHOTS to choose it; the path is printed)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import ADMIN_PASSWORD, REQUIRE_SERVICES, Server
from tests.console_support import start_console_server
from tillkey.accounts.totp import PERIOD

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("TILLKEY_SCREENSHOTS") or Path(tempfile.gettempdir()) / "tillkey-console-screenshots")
VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
MAIN_PAGES = (
    "/console/",
    "/console/sessions",
    "/console/admins",
    "/console/roles",
    "/console/customers",
    "/console/integrations",
    "/console/api-keys",
    "/console/oauth-clients",
    "/console/keys",
    "/console/audit",
    "/console/account",
)
# Lists whose first row links to a detail page: each detail page is checked and shot too.
DETAIL_LISTS = (
    "/console/admins",
    "/console/customers",
    "/console/integrations",
    "/console/api-keys",
    "/console/oauth-clients",
)


def need_chromium() -> None:
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install playwright)"
    if reason is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


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


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    need_chromium()
    server = start_console_server(tmp_path_factory.mktemp("console-browser"), "sqlite")
    try:
        yield server
    finally:
        server.stop()


def enrol_totp(srv: Server, username: str) -> pyotp.TOTP:
    secret = srv.cli_json("admin", "2fa", "enroll", username)["secret"]
    totp = pyotp.TOTP(secret)
    srv.cli_json("admin", "2fa", "activate", username, "--code", totp.at(int(time.time() // PERIOD) * PERIOD))
    return totp


def next_code(totp: pyotp.TOTP) -> str:
    """A code for the next time step: the current one was spent by the activation."""
    return totp.at((int(time.time() // PERIOD) + 1) * PERIOD)


def sign_in(page: Any, srv: Server, username: str, totp: pyotp.TOTP | None = None) -> None:
    page.goto(f"{srv.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if totp is not None:
        page.wait_for_url("**/console/login/otp**")
        page.get_by_label("Code from your authenticator app").fill(next_code(totp))
        page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{srv.url}/console/")


def nav_hrefs(page: Any) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all("nav a", "els => els.map(e => e.getAttribute('href'))")
    return hrefs


def check_layout(page: Any, name: str) -> None:
    """No sideways scrolling, and every menu entry on screen and clickable (on a phone, once the
    folded menu is opened: one line, not three)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow}px of horizontal overflow"
    width = page.evaluate("window.innerWidth")
    toggle = page.locator("nav .menu-toggle")
    if toggle.count() and toggle.is_visible():
        assert toggle.bounding_box()["height"] < 60, f"{name}: the folded menu is more than one line"
        toggle.click()
        page.screenshot(path=str(SHOTS / f"{name}-menu.png"))
    for link in page.locator("nav a").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name
        assert box["height"] >= 20, f"{name}: a menu entry too small to tap"


def test_totp_sign_in_role_tree_and_an_admin_limited_to_it(browser: Any, srv: Server) -> None:
    totp = enrol_totp(srv, "alice")
    context = browser.new_context(viewport=VIEWPORTS["laptop"])
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, srv, "alice", totp)
    assert "Signed in as alice" in page.locator("main").inner_text()

    page.goto(f"{srv.url}/console/roles")
    page.get_by_label("Name", exact=True).fill("Catalog editors")
    # Checking a node checks its subtree (the console's script); the grant covers it either way.
    page.locator('input[value="Magento_Catalog::catalog"]').check()
    assert page.locator('input[value="Magento_Catalog::products"]').is_checked()
    assert not page.locator('input[value="Magento_Sales::sales"]').is_checked()
    page.get_by_role("button", name="Create role").click()
    page.wait_for_url("**/console/roles/*")
    assert page.locator('input[value="Magento_Catalog::catalog"]').is_checked()

    page.goto(f"{srv.url}/console/admins")
    form = page.locator('form[action="/console/admins"]')
    form.get_by_label("Username").fill("frank")
    form.get_by_label("Email").fill("frank@example.com")
    form.get_by_label("Password").fill(ADMIN_PASSWORD)
    form.get_by_label("Role").select_option("Catalog editors")
    form.get_by_role("button", name="Create admin").click()
    page.wait_for_url(f"{srv.url}/console/admins")
    assert "frank@example.com" in page.locator("table").inner_text()

    details = []
    for path in DETAIL_LISTS:
        page.goto(f"{srv.url}{path}")
        link = page.locator(f'main table a[href^="{path}/"]')
        if link.count():
            details.append(link.first.get_attribute("href"))
    assert "/console/admins/" in " ".join(details)
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        for path in (*MAIN_PAGES, *details):
            page.goto(f"{srv.url}{path}")
            assert page.locator("h1").is_visible()
            check_layout(page, f"{viewport}-{path.strip('/').replace('/', '-') or 'dashboard'}")
    print(f"screenshots: {SHOTS}")
    assert errors == [], errors  # no CSP violation, no script error
    context.close()

    limited = browser.new_context(viewport=VIEWPORTS["phone"])
    page = limited.new_page()
    sign_in(page, srv, "frank")
    assert nav_hrefs(page) == ["/console/", "/console/sessions"]
    check_layout(page, "phone-limited-admin")
    response = page.goto(f"{srv.url}/console/admins")
    assert response is not None and response.status == 403
    assert "Your role does not grant Magento_User::acl_users" in page.locator("main").inner_text()
    limited.close()


def test_a_second_sign_in_ends_the_first_session(browser: Any, srv: Server) -> None:
    first, second = browser.new_context(), browser.new_context()
    one, two = first.new_page(), second.new_page()
    sign_in(one, srv, "carol")
    sign_in(two, srv, "carol")
    one.goto(f"{srv.url}/console/sessions")
    assert "/console/login" in one.url
    assert "Your session has ended" in one.locator("main").inner_text()
    two.goto(f"{srv.url}/console/sessions")
    assert two.locator("text=(this session)").count() == 1
    first.close()
    second.close()


def test_a_form_posted_without_its_csrf_token_is_refused(browser: Any, srv: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, srv, "carol")
    page.goto(f"{srv.url}/console/sessions")
    # What a forged form would send: the same fields without the token.
    page.evaluate("document.querySelectorAll('main input[name=csrf]').forEach(e => e.remove())")
    end = page.locator("main form").first.get_by_role("button")
    end.click()  # a destructive button asks first, in place: the first click only arms it
    assert "Click again" in end.inner_text()
    end.click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Request refused"
    page.goto(f"{srv.url}/console/sessions")
    assert page.locator("text=(this session)").count() == 1  # nothing was ended
    context.close()


def test_idle_warning_then_sign_out_with_a_short_timeout(browser: Any, tmp_path: Path) -> None:
    srv = start_console_server(tmp_path / "idle", "sqlite", TILLKEY_CONSOLE_IDLE_TIMEOUT="6")
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, srv, "carol")
        warning = page.locator("#idle-warning")
        warning.wait_for(state="visible", timeout=10_000)
        page.get_by_role("button", name="Stay signed in").click()
        warning.wait_for(state="hidden", timeout=5_000)
        # Left alone, the page warns again and then goes to the sign-in page: the server ended it.
        warning.wait_for(state="visible", timeout=10_000)
        page.wait_for_url("**/console/login?reason=ended**", timeout=20_000)
        assert "Your session has ended" in page.locator("main").inner_text()
        page.goto(f"{srv.url}/console/")
        assert "/console/login" in page.url
        context.close()
    finally:
        srv.stop()


def test_forced_enrolment_sign_in_with_the_qr_page(browser: Any, tmp_path: Path) -> None:
    srv = start_console_server(tmp_path / "forced", "sqlite", TILLKEY_ADMIN_2FA="required")
    try:
        context = browser.new_context(viewport=VIEWPORTS["phone"])
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{srv.url}/console/login")
        page.get_by_label("Username").fill("carol")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/login/enrol**")
        assert page.locator("figure.qr svg").is_visible()
        check_layout(page, "phone-forced-enrolment")
        secret = page.locator("code.tfa-secret").inner_text().strip()
        # Any other page leads back here until the app is set up.
        page.goto(f"{srv.url}/console/sessions")
        assert "/console/login/enrol" in page.url
        page.get_by_label("Code from the app").fill("000000")
        page.get_by_role("button", name="Verify and turn on").click()
        page.wait_for_load_state()
        assert "wrong or expired" in page.locator("main").inner_text()
        page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Verify and turn on").click()
        page.get_by_role("link", name="Continue").wait_for()
        assert page.locator("main code[data-secret]").count() == 10
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url(f"{srv.url}/console/sessions")
        assert page.locator(".who").inner_text() == "carol" and page.locator("text=(this session)").count() == 1
        # No CSP violation (the QR code is inline SVG, no script); the wrong code's 401 page is expected.
        assert [e for e in errors if "status of 401" not in e] == [], errors
        context.close()
    finally:
        srv.stop()
