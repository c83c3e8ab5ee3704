"""Look-alike account names: `alice` in fullwidth letters, with a Cyrillic letter, with a zero-width
space, with a capital I for the l, written wholly in Cyrillic... are refused beside `alice` on
every surface that creates accounts, and sign in as nobody. Names are PRECIS (RFC 8265) canonical."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import inprocess
from tests.oauth2_support import hidden_fields
from tillkey import names
from tillkey.errors import Conflict, InvalidRequest

FULLWIDTH = "\uff41\uff4c\uff49\uff43\uff45"  # alice, fullwidth
CYRILLIC_C = "ali\u0441e"  # Cyrillic es for the c: mixed scripts
ALL_CYRILLIC = "\u0430\u0441\u0435"  # "ace" in Cyrillic letters: one script, the skeleton of "ace"
ZERO_WIDTH = "alice\u200b"
REFUSED_BESIDE_ALICE: dict[str, type[Exception]] = {
    FULLWIDTH: Conflict,  # normalised to alice: taken
    "ALICE": Conflict,
    " alice ": Conflict,
    "aIice": Conflict,  # capital I for the l: same skeleton
    CYRILLIC_C: InvalidRequest,  # mixed scripts
    "alic\u0435": InvalidRequest,
    ZERO_WIDTH: InvalidRequest,  # invisible characters are not PRECIS
    "ali\u00adce": InvalidRequest,  # soft hyphen
    "alice\u202e": InvalidRequest,  # bidi override
    "al ice": InvalidRequest,
}


def test_normalisation_and_skeletons() -> None:
    assert names.admin_username(FULLWIDTH).shown == "alice"
    assert names.admin_username("Alice").key == "alice"
    assert names.skeleton("aIice") == names.skeleton("alice")
    assert names.skeleton(ALL_CYRILLIC) == names.skeleton("ace")
    assert names.skeleton("b0b") == names.skeleton("bob")
    assert names.admin_username("田中太郎").shown == "田中太郎"  # one script is fine
    assert names.admin_username("tanaka田中").shown == "tanaka田中"  # Latin + Han: highly restrictive
    assert names.lookup_key("Alice") == "alice"
    for spelling in (FULLWIDTH, ZERO_WIDTH, "alice\u0301"[:-1] + "e\u0301"):
        assert names.lookup_key(spelling) != "alice"


def test_look_alike_admins_are_refused_on_the_service_and_the_console(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice")
            for name, error in REFUSED_BESIDE_ALICE.items():
                with pytest.raises(error):  # the service the CLI (`admin create`) and the console call
                    await t.create_admin(name, email=f"x{len(name)}@example.com")
            await t.create_admin("ace")
            with pytest.raises(Conflict):
                await t.create_admin(ALL_CYRILLIC, email="ace2@example.com")
            # Unrelated names, also non-Latin ones, are fine; the stored spelling is the canonical one.
            made = await t.create_admin("\uff22\uff4f\uff42", email="bob@example.com")  # fullwidth Bob
            assert made.username == "Bob"
            await t.create_admin("\u0438\u0432\u0430\u043d", email="ivan@example.com")  # Cyrillic, one script

    inprocess.run(body)


def test_look_alike_logins_sign_in_as_nobody(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice", email="alice@example.com")
            await t.create_customer("ada@example.com")
            ok = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "Alice", "password": inprocess.ADMIN_PASSWORD}
            )
            assert ok.status_code == 200, ok.text  # case still does not matter
            for spelling in (FULLWIDTH, ZERO_WIDTH, CYRILLIC_C, " \uff41lice"):
                r = await t.client.post(
                    "/rest/V1/integration/admin/token",
                    json={"username": spelling, "password": inprocess.ADMIN_PASSWORD},
                )
                assert r.status_code == 401, (spelling, r.text)
            # Medusa signs admins in by email, customers too.
            for actor, email, password in (
                ("user", "\uff41lice@example.com", inprocess.ADMIN_PASSWORD),
                ("customer", "\uff41da@example.com", inprocess.CUSTOMER_PASSWORD),
                ("customer", "ada@example.com\u200b", inprocess.CUSTOMER_PASSWORD),
            ):
                r = await t.client.post(f"/auth/{actor}/emailpass", json={"email": email, "password": password})
                assert r.status_code == 401, (email, r.text)
            r = await t.client.post(
                "/rest/V1/integration/customer/token",
                json={"username": "\uff41da@example.com", "password": inprocess.CUSTOMER_PASSWORD},
            )
            assert r.status_code == 401
            good = await t.client.post(
                "/auth/customer/emailpass", json={"email": "ADA@example.com", "password": inprocess.CUSTOMER_PASSWORD}
            )
            assert good.status_code == 200, good.text

    inprocess.run(body)


def test_look_alike_customers_on_medusa_registration_and_customer_create(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            register = "/auth/customer/emailpass/register"
            password = {"password": "Another-pass-4-tests"}
            # Fullwidth spelling: normalised, so it is the existing address.
            r = await t.client.post(register, json={"email": "\uff41da@example.com", **password})
            assert r.status_code == 401 and r.json()["message"] == "Identity with email already exists"
            for email in ("\u0430da@example.com", "ada@ex\u0430mple.com", "ada\u200b@example.com"):
                r = await t.client.post(register, json={"email": email, **password})
                assert r.status_code == 400, (email, r.text)
            # One script per part, but the skeleton of an existing address: refused when created.
            await t.create_customer("ace@example.com")
            with pytest.raises(Conflict):
                await t.create_customer(f"{ALL_CYRILLIC}@example.com")
            await t.create_customer("\u0438\u0432\u0430\u043d@example.com")  # a Cyrillic local part is fine
            # ASCII addresses that merely look alike stay distinct (mail tells them apart).
            await t.create_customer("ad4@example.com")
            await t.create_customer("john1@example.com")
            await t.create_customer("johnl@example.com")
            # Registration of a canonical new address, then the Medusa customer create from it.
            r = await t.client.post(register, json={"email": "Grace@Example.com", **password})
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            # The identity holds the canonical address; the customer made from it is found by it.
            ident = await t.client.post(register, json={"email": "grace@example.com", **password})
            assert ident.status_code == 200  # registering again with the same password: same identity
            assert token

    inprocess.run(body)


async def _console(t: inprocess.InProcess, username: str) -> str:
    """Sign `username` in on the console, as a browser does; answers a CSRF token for its forms."""
    page = await t.client.get("/console/login")
    assert page.status_code == 200, page.text
    r = await t.client.post(
        "/console/login", data={**hidden_fields(page.text), "username": username, "password": inprocess.ADMIN_PASSWORD}
    )
    assert r.status_code == 303, r.text
    return hidden_fields((await t.client.get("/console/")).text)["csrf"]


def test_the_console_form_refuses_look_alikes_and_signs_nobody_in_by_them(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice")
            csrf = await _console(t, "alice")
            form = {"csrf": csrf, "email": "x@example.com", "password": "Another-pass-4-tests", "role": ""}
            for name in (FULLWIDTH, CYRILLIC_C, ZERO_WIDTH, "aIice"):
                r = await t.client.post("/console/admins", data={**form, "username": name})
                assert r.status_code in (400, 409), (name, r.status_code)
            page = await t.client.get("/console/admins")
            assert page.status_code == 200 and "aIice" not in page.text and "\u200b" not in page.text
            t.client.cookies.clear()
            page = await t.client.get("/console/login")
            r = await t.client.post(
                "/console/login",
                data={**hidden_fields(page.text), "username": FULLWIDTH, "password": inprocess.ADMIN_PASSWORD},
            )
            assert r.status_code != 303  # the sign-in page again, not a session

    inprocess.run(body)
