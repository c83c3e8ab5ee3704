"""Passkeys in the console, in process, with the software authenticator playing the browser's
part (passkeys.js's requests, as it sends them): registering, listing, renaming and removing on
/console/2fa; "Use a passkey" as the second factor at /console/login/otp; passwordless sign-in on
/console/login (user verification required; a replayed answer refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, BASE_URL, InProcess
from tests.oauth2_support import hidden_fields
from tests.passkey_support import SoftAuthenticator
from tillkey.accounts.passkeys import Owner
from tillkey.principal import UserType

SAME_ORIGIN = {"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}


async def _register_in_console(t: InProcess, browser: httpx.AsyncClient, key: SoftAuthenticator, name: str) -> None:
    page = await browser.get("/console/2fa")
    assert page.status_code == 200 and 'data-passkey="create"' in page.text and "passkeys.js" in page.text
    csrf = hidden_fields(page.text)["csrf"]
    r = await browser.post("/console/2fa/passkeys/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    got = r.json()
    credential = json.dumps(key.create(got["options"]))
    form = {"csrf": csrf, "ceremony_id": got["ceremony_id"], "credential": credential, "name": name}
    r = await browser.post("/console/2fa/passkeys", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/console/2fa", r.text


async def _password(browser: httpx.AsyncClient, username: str = "alice") -> httpx.Response:
    page = await browser.get("/console/login")
    data = {**hidden_fields(page.text), "username": username, "password": ADMIN_PASSWORD}
    return await browser.post("/console/login", data=data)


async def _signed_in(t: InProcess, browser: httpx.AsyncClient) -> None:
    r = await _password(browser)
    assert r.status_code == 303 and r.headers["location"] == "/console/", r.text


def test_an_admin_manages_passkeys_on_the_2fa_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            alice = await t.create_admin("alice")
            async with t.browser() as browser:
                await _signed_in(t, browser)
                key = SoftAuthenticator(BASE_URL)
                await _register_in_console(t, browser, key, "Laptop <b>")
                page = await browser.get("/console/2fa")
                assert "Laptop &lt;b&gt;" in page.text and "this device only" in page.text
                passkey_id = int(page.text.split("/console/2fa/passkeys/")[1].split("/")[0])
                csrf = hidden_fields(page.text)["csrf"]
                r = await browser.post(
                    f"/console/2fa/passkeys/{passkey_id}/rename",
                    data={"csrf": csrf, "name": "Work"},
                    headers=SAME_ORIGIN,
                )
                assert r.status_code == 303
                assert ">Work<" in (await browser.get("/console/2fa")).text
                # The last second factor: another admin's to reset.
                remove = f"/console/2fa/passkeys/{passkey_id}/remove"
                r = await browser.post(remove, data={"csrf": csrf, "confirm": "yes"}, headers=SAME_ORIGIN)
                assert r.status_code == 400 and "another administrator" in r.text
                await t.enable_totp(alice.id)
                r = await browser.post(remove, data={"csrf": csrf, "confirm": "yes"}, headers=SAME_ORIGIN)
                assert r.status_code == 303
                assert "No passkey yet" in (await browser.get("/console/2fa")).text
                # A forged answer (wrong origin) is refused on the page, nothing stored.
                bad = SoftAuthenticator("https://evil.example")
                r = await browser.post("/console/2fa/passkeys/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
                got = r.json()
                form = {
                    "csrf": csrf,
                    "ceremony_id": got["ceremony_id"],
                    "name": "x",
                    "credential": json.dumps(bad.create(got["options"])),
                }
                r = await browser.post("/console/2fa/passkeys", data=form, headers=SAME_ORIGIN)
                assert r.status_code == 400 and "could not be verified" in r.text

    inprocess.run(body)


async def _passkey_step(browser: httpx.AsyncClient, key: SoftAuthenticator, **kw: Any) -> httpx.Response:
    page = await browser.get("/console/login/otp")
    assert 'data-passkey="get"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    fields = hidden_fields(page.text)
    r = await browser.post("/console/login/passkey/options", data={"csrf": fields["csrf"]})
    assert r.status_code == 200, r.text
    got = r.json()
    answer = {**fields, "ceremony_id": got["ceremony_id"], "credential": json.dumps(key.get(got["options"], **kw))}
    return await browser.post("/console/login/passkey", data=answer)


def test_a_passkey_is_the_console_second_factor(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="required", admin_lockout_failures=2) as t:
            alice = await t.create_admin("alice")
            await t.enable_totp(alice.id)
            async with t.browser() as browser:
                r = await _password(browser)
                page = await browser.get(r.headers["location"])
                assert "data-passkey" not in page.text and "<script" not in page.text  # no passkey yet
            key = SoftAuthenticator(BASE_URL)
            owner = Owner(UserType.ADMIN, alice.id)
            ceremony = await t.tk.services.passkeys.registration_options(owner, "setup")
            await t.tk.services.passkeys.register(owner, "setup", ceremony.id, key.create(ceremony.options), "Key")
            async with t.browser() as browser:
                r = await _password(browser)
                assert r.headers["location"].startswith("/console/login/otp")
                wrong = await _passkey_step(browser, key, origin="https://evil.example")
                assert wrong.status_code == 401 and "passkey was not accepted" in wrong.text
                done = await _passkey_step(browser, key)
                assert done.status_code == 303 and done.headers["location"] == "/console/", done.text
                assert (await browser.get("/console/")).status_code == 200
                sessions = await browser.get("/console/sessions")
                assert sessions.status_code == 200

    inprocess.run(body)


def test_passwordless_sign_in_with_a_discoverable_passkey(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="required") as t:
            alice = await t.create_admin("alice")
            async with t.browser() as browser:
                page = await browser.get("/console/login")
                assert "<script" not in page.text  # no admin has a passkey: the page loads nothing
            key = SoftAuthenticator(BASE_URL)
            owner = Owner(UserType.ADMIN, alice.id)
            ceremony = await t.tk.services.passkeys.registration_options(owner, "setup")
            await t.tk.services.passkeys.register(owner, "setup", ceremony.id, key.create(ceremony.options), "Key")

            async def attempt(browser: httpx.AsyncClient, **kw: Any) -> tuple[httpx.Response, dict[str, str]]:
                page = await browser.get("/console/login")
                assert 'autocomplete="username webauthn"' in page.text and "data-passkey-autofill" in page.text
                fields = hidden_fields(page.text)
                r = await browser.post("/console/login/passkey/discover/options", data={"csrf": fields["csrf"]})
                assert r.status_code == 200, r.text
                got = r.json()
                assert got["options"]["userVerification"] == "required" and got["options"]["allowCredentials"] == []
                answer = {"csrf": fields["csrf"], "next": "/console/", "ceremony_id": got["ceremony_id"]}
                answer["credential"] = json.dumps(key.get(got["options"], **kw))
                return await browser.post("/console/login/passkey/discover", data=answer), answer

            async with t.browser() as browser:
                r, _answer = await attempt(browser, uv=False)
                assert r.status_code == 401 and "incorrect" in r.text
                r, answer = await attempt(browser)
                assert r.status_code == 303 and r.headers["location"] == "/console/", r.text
                assert (await browser.get("/console/")).status_code == 200
            async with t.browser() as other:
                # The same answer replayed (another browser, or this one): the challenge is spent.
                await other.get("/console/login")
                r = await other.post("/console/login/passkey/discover", data=answer)
                assert r.status_code == 401
                # A customer's passkey (unknown to admin sign-in): the generic refusal.
                customer = Owner(UserType.CUSTOMER, (await t.create_customer("ada@example.com")).id)
                shopper = SoftAuthenticator(BASE_URL)
                ceremony = await t.tk.services.passkeys.registration_options(customer, "setup")
                await t.tk.services.passkeys.register(
                    customer, "setup", ceremony.id, shopper.create(ceremony.options), "Phone"
                )
                page = await other.get("/console/login")
                fields = hidden_fields(page.text)
                got = (
                    await other.post("/console/login/passkey/discover/options", data={"csrf": fields["csrf"]})
                ).json()
                r = await other.post(
                    "/console/login/passkey/discover",
                    data={
                        **fields,
                        "ceremony_id": got["ceremony_id"],
                        "credential": json.dumps(shopper.get(got["options"])),
                    },
                )
                assert r.status_code == 401 and "incorrect" in r.text
                # Options asked without the page's cookie: refused.
                r = await other.post("/console/login/passkey/discover/options", data={"csrf": "forged"})
                assert r.status_code == 404

    inprocess.run(body)


def test_an_admin_who_must_use_a_passkey_adds_one_at_sign_in(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"admin_2fa": "required", "admin_passkey_required": "full_access"}
        async with inprocess.running(tmp_path, **settings) as t:
            alice = await t.create_admin("alice")  # Administrators: Magento_Backend::all
            await t.enable_totp(alice.id)  # a code no longer counts for her
            key = SoftAuthenticator(BASE_URL)
            async with t.browser() as browser:
                r = await _password(browser)
                assert r.status_code == 303 and r.headers["location"].startswith("/console/login/enrol/passkey")
                # The half-finished sign-in opens nothing else: the console sends it back here.
                r = await browser.get("/console/")
                r = await browser.get(r.headers["location"])
                assert r.status_code == 303 and r.headers["location"].startswith("/console/login/enrol/passkey")
                page = await browser.get(r.headers["location"])
                assert 'data-passkey="create"' in page.text
                assert "script-src 'self'" in page.headers["content-security-policy"]
                fields = hidden_fields(page.text)

                async def enrol(authenticator: SoftAuthenticator) -> httpx.Response:
                    r = await browser.post("/console/login/enrol/passkey/options", data={"csrf": fields["csrf"]})
                    assert r.status_code == 200, r.text
                    got = r.json()
                    made = json.dumps(authenticator.create(got["options"]))
                    answer = {**fields, "ceremony_id": got["ceremony_id"], "credential": made, "name": "Key"}
                    return await browser.post("/console/login/enrol/passkey", data=answer)

                wrong = await enrol(SoftAuthenticator("https://evil.example"))
                assert wrong.status_code == 401 and "could not be added" in wrong.text
                done = await enrol(key)
                assert done.status_code == 303 and done.headers["location"] == "/console/", done.text
                assert (await browser.get("/console/")).status_code == 200
            [added] = await t.tk.services.passkeys.list(Owner(UserType.ADMIN, alice.id))
            assert added.name == "Key"
            # From now on her sign-in asks for the passkey, on the code page (a code is refused).
            async with t.browser() as browser:
                r = await _password(browser)
                assert r.headers["location"].startswith("/console/login/otp")
                assert (await _passkey_step(browser, key)).headers["location"] == "/console/"

    inprocess.run(body)
