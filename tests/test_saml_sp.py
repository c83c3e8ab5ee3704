"""The SAML 2.0 service provider (issue 15) against an IdP built with pysaml2 in-process
(tests/saml_support.py): admin sign-in into the console and customer sign-in through the Medusa
callback, and every response an attacker tries next: unsigned, tampered, wrapped, comment-
injected, replayed, expired, early, for another audience, recipient or destination, unsolicited,
answered to no request, for another provider, or from another browser. Each refusal is a 4xx page
and an audited `login.external` failure naming the reason."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from tests import inprocess
from tests.conftest import REQUIRE_SERVICES
from tests.saml_support import SamlIdP, make_idp, post_form, relay_state, request_id
from tillkey.access.delegation import OPERATOR
from tillkey.federation.providers import Changes, NewProvider
from tillkey.store.models import AuditEventRow

# Without xmlsec1 these skip, except under TILLKEY_TEST_REQUIRE_SERVICES=1, where they run and fail.
pytestmark = pytest.mark.skipif(
    shutil.which("xmlsec1") is None and not REQUIRE_SERVICES, reason="xmlsec1 is not installed"
)

BASE = inprocess.BASE_URL
IDP: dict[str, SamlIdP] = {}
STOREFRONT = "https://shop.test/account/sso"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"


def sp(name: str) -> str:
    return f"{BASE}/saml/{name}/metadata"


def acs(name: str) -> str:
    return f"{BASE}/saml/{name}/acs"


async def _setup(t: inprocess.InProcess) -> None:
    idp = IDP["idp"]
    await t.create_role(["Magento_Backend::all"], name="everything")
    saml = t.tk.services.saml_providers
    admin = {"actor": "admin", "groups_claim": "groups", "role_map": {"admins": "everything"}, "provisioning": "jit"}
    for name in ("okta", "other"):
        await saml.add(
            OPERATOR,
            NewProvider(name=name, issuer="", client_id="", settings={"attribute_email": "email"}, **admin),  # type: ignore[arg-type]
            idp.metadata,
        )
    await saml.add(
        OPERATOR,
        NewProvider(
            name="shop",
            issuer="",
            client_id="",
            actor="customer",
            provisioning="jit",
            redirect_uri=STOREFRONT,
            settings={"attribute_email": "email"},
        ),
        idp.metadata,
    )
    for name in ("okta", "other", "shop"):
        idp.load_sp((await t.client.get(f"/saml/{name}/metadata")).text)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[inprocess.Shared]:
    IDP["idp"] = make_idp(tmp_path_factory.mktemp("idp"))
    with inprocess.shared(tmp_path_factory.mktemp("sp"), _setup) as shared:
        yield shared


BOSS = {"email": ["boss@corp.example"], "groups": ["admins"]}


async def _start(browser: httpx.AsyncClient, name: str = "okta") -> str:
    r = await browser.get(f"/console/login/idp/{name}")
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _answer(location: str | None, name: str = "okta", **kwargs: object) -> str:
    args: dict[str, object] = {
        "sp_entity": sp(name),
        "destination": acs(name),
        "in_response_to": request_id(location) if location else None,
        "name_id": "u-boss",
        "attributes": BOSS,
    }
    return IDP["idp"].respond(**{**args, **kwargs})  # type: ignore[arg-type]


async def _last_refusal(t: inprocess.InProcess) -> str:
    async with t.tk.db.session() as s:
        row = await s.scalar(
            select(AuditEventRow)
            .where(AuditEventRow.event == "login.external", AuditEventRow.outcome == "failure")
            .order_by(AuditEventRow.seq.desc())
        )
    assert row is not None
    return str(row.details)


async def _refused(t: inprocess.InProcess, r: httpx.Response, reason: str, status: int = 401) -> None:
    assert r.status_code == status, r.text
    assert "tk_console" not in r.headers.get("set-cookie", "")
    last = await _last_refusal(t)
    assert re.search(reason, last), last


async def _signed_in(browser: httpx.AsyncClient, r: httpx.Response) -> None:
    assert r.status_code == 200 and 'http-equiv="refresh"' in r.text, r.text
    assert (await browser.get("/console/")).status_code == 200


def test_metadata_is_signed_and_names_the_acs_and_both_certificates_after_rotation(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        r = await t.client.get("/saml/okta/metadata")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/samlmetadata+xml")
        assert "<ns1:Signature" in r.text or "Signature" in r.text
        assert f'Location="{acs("okta")}"' in r.text and f'entityID="{sp("okta")}"' in r.text
        before = r.text.count("X509Certificate>")
        await t.tk.services.saml_providers.rotate("other")
        rotated = (await t.client.get("/saml/other/metadata")).text
        assert rotated.count("X509Certificate>") > before  # the previous certificate stays published
        # The IdP has not fetched the new metadata yet: it encrypts to the previous certificate.
        async with t.browser() as browser:
            location = await _start(browser, "other")
            attributes = {"email": ["rotation@corp.example"], "groups": ["admins"]}
            xml = _answer(location, "other", encrypt=True, sign_assertion=True, name_id="u-r", attributes=attributes)
            r = await browser.post(acs("other"), data=post_form(xml, relay_state(location)))
            await _signed_in(browser, r)
        IDP["idp"].load_sp(rotated)
        assert (await t.client.get("/saml/nobody/metadata")).status_code == 404

    app.call(body)


def test_an_admin_signs_in_with_a_signed_response_and_groups_map_to_the_role(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = await _start(browser)
            assert location.startswith("https://idp.test/sso?SAMLRequest=")
            r = await browser.post(acs("okta"), data=post_form(_answer(location), relay_state(location)))
            await _signed_in(browser, r)

    app.call(body)


def test_a_signed_assertion_in_an_unsigned_response_and_an_encrypted_assertion_are_accepted(
    app: inprocess.Shared,
) -> None:
    async def body(t: inprocess.InProcess) -> None:
        for kwargs in ({"sign_response": False, "sign_assertion": True}, {"encrypt": True, "sign_assertion": True}):
            async with t.browser() as browser:
                location = await _start(browser)
                xml = _answer(location, **kwargs)
                assert ("EncryptedAssertion" in xml) == ("encrypt" in kwargs)
                r = await browser.post(acs("okta"), data=post_form(xml, relay_state(location)))
                await _signed_in(browser, r)

    app.call(body)


def test_unsigned_and_tampered_responses_are_refused(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = await _start(browser)
            xml = _answer(location, sign_response=False, sign_assertion=False)
            r = await browser.post(acs("okta"), data=post_form(xml, relay_state(location)))
            await _refused(t, r, "SAMLResponse refused|not signed")
        async with t.browser() as browser:
            location = await _start(browser)
            xml = _answer(location).replace(">u-boss<", ">u-someone-else<")
            r = await browser.post(acs("okta"), data=post_form(xml, relay_state(location)))
            await _refused(t, r, "SAMLResponse refused")

    app.call(body)


def _assertion_of(xml: str) -> str:
    found = re.search(r"<ns1:Assertion\b.*?</ns1:Assertion>", xml, re.S)
    assert found is not None
    return found.group(0)


def test_signature_wrapping_is_refused(app: inprocess.Shared) -> None:
    """XSW: the signed assertion kept (so the signature verifies) beside or around an unsigned one
    naming someone else, in the places a lax SP reads from."""

    async def body(t: inprocess.InProcess) -> None:
        for variant in ("second", "moved", "unicode prefix"):
            async with t.browser() as browser:
                location = await _start(browser)
                xml = _answer(location, sign_response=False, sign_assertion=True)
                signed = _assertion_of(xml)
                evil = re.sub(r"<ns2:Signature\b.*?</ns2:Signature>", "", signed, flags=re.S)
                evil = evil.replace(">u-boss<", ">u-evil<").replace('ID="', 'ID="evil-')
                if variant == "second":  # an unsigned assertion first, the signed one after it
                    wrapped = xml.replace(signed, evil + signed)
                elif variant == "unicode prefix":  # a prefix a byte-level \w would not read as a name
                    evil = evil.replace("<ns1:", "<\u00e4:").replace("</ns1:", "</\u00e4:")
                    evil = evil.replace("<\u00e4:Assertion ", f'<\u00e4:Assertion xmlns:\u00e4="{SAML_NS}" ', 1)
                    wrapped = xml.replace(signed, evil + signed)
                else:  # the signed assertion moved into Extensions, the unsigned one in its place
                    wrapped = xml.replace(signed, evil).replace(
                        "<ns0:Status>", f"<ns0:Extensions>{signed}</ns0:Extensions><ns0:Status>"
                    )
                r = await browser.post(acs("okta"), data=post_form(wrapped, relay_state(location)))
                await _refused(t, r, "exactly one assertion")

    app.call(body)


def test_a_comment_in_the_name_id_is_refused(app: inprocess.Shared) -> None:
    """Canonical XML drops comments, so `admin@shop.test<!---->.evil.test` keeps the signature of
    `admin@shop.test.evil.test`, which a parser reading the first text node takes for the admin."""

    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = await _start(browser)
            xml = _answer(location, name_id="admin@shop.test.evil.test", sign_assertion=True)
            injected = xml.replace("admin@shop.test.evil.test", "admin@shop.test<!---->.evil.test")
            r = await browser.post(acs("okta"), data=post_form(injected, relay_state(location)))
            await _refused(t, r, "comment")

    app.call(body)


def test_a_replayed_response_is_refused(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = await _start(browser)
            form = post_form(_answer(location), relay_state(location))
            await _signed_in(browser, await browser.post(acs("okta"), data=form))
        async with t.browser() as browser:
            await _refused(t, await browser.post(acs("okta"), data=form), "InResponseTo names no request")
        async with t.browser() as browser:  # the same browser binding: the request was answered already
            browser.cookies.set("tk_saml_state", form["RelayState"], path="/saml/")
            await _refused(t, await browser.post(acs("okta"), data=form), "InResponseTo names no request")

    app.call(body)


def test_times_are_checked_on_the_servers_clock_with_bounded_skew(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        for shift, reason in ((5 * 60 + 150, "expired"), (-150, "not yet valid")):
            async with t.browser() as browser:
                location = await _start(browser)
                form = post_form(_answer(location), relay_state(location))
                t.advance(shift)
                try:
                    await _refused(t, await browser.post(acs("okta"), data=form), reason)
                finally:
                    t.advance(-shift)
        async with t.browser() as browser:  # within the skew: accepted
            location = await _start(browser)
            form = post_form(_answer(location), relay_state(location))
            t.advance(-60)
            try:
                await _signed_in(browser, await browser.post(acs("okta"), data=form))
            finally:
                t.advance(60)

    app.call(body)


def test_audience_recipient_destination_and_in_response_to_must_be_this_sps(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        other = acs("other")
        cases = [
            ({"sp_entity": sp("other")}, "Audience|SAMLResponse refused"),
            ({"destination": other}, "Destination|SAMLResponse refused"),
            # Only the signed assertion's Recipient is wrong: the unsigned response's Destination dropped.
            ({"destination": other, "sign_response": False, "sign_assertion": True}, "Recipient"),
            ({"in_response_to": "id-never-sent"}, "InResponseTo names no request"),
        ]
        for kwargs, reason in cases:
            async with t.browser() as browser:
                location = await _start(browser)
                xml = _answer(location, **kwargs)
                if reason == "Recipient":
                    xml = xml.replace(f' Destination="{other}"', "")
                r = await browser.post(acs("okta"), data=post_form(xml, relay_state(location)))
                await _refused(t, r, reason)

    app.call(body)


def test_idp_initiated_sign_in_is_off_by_default_and_replays_are_caught_when_on(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        form = post_form(_answer(None), None)
        async with t.browser() as browser:
            await _refused(t, await browser.post(acs("okta"), data=form), "IdP-initiated sign-in is off")
        providers = t.tk.services.identity_providers
        await providers.update(OPERATOR, "okta", Changes(settings={"idp_initiated": "on"}))
        try:
            form = post_form(_answer(None), "https://idp.test/default-target")  # the IdP's own RelayState
            async with t.browser() as browser:
                await _signed_in(browser, await browser.post(acs("okta"), data=form))
            async with t.browser() as browser:  # the same assertion again: the replay cache
                await _refused(t, await browser.post(acs("okta"), data=form), "replayed")
        finally:
            await providers.update(OPERATOR, "okta", Changes(settings={"idp_initiated": "off"}))

    app.call(body)


def test_an_assertion_for_one_provider_is_refused_at_another_and_a_customer_one_at_the_admin_acs(
    app: inprocess.Shared,
) -> None:
    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = await _start(browser, "other")
            r = await browser.post(acs("okta"), data=post_form(_answer(location, "other"), relay_state(location)))
            await _refused(t, r, "Destination|Audience|SAMLResponse refused")
        async with t.browser() as browser:
            location = (await browser.post("/auth/customer/shop")).json()["location"]
            browser.cookies.set("tk_saml_state", relay_state(location), path="/saml/")
            r = await browser.post(acs("okta"), data=post_form(_answer(location, "shop"), relay_state(location)))
            await _refused(t, r, "Destination|Audience|SAMLResponse refused")

    app.call(body)


def test_a_response_to_another_browsers_request_is_refused(app: inprocess.Shared) -> None:
    """Login CSRF: the attacker's own signed response, posted from the victim's browser."""

    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as attacker:
            location = await _start(attacker)
        form = post_form(_answer(location), relay_state(location))
        async with t.browser() as victim:
            await _refused(t, await victim.post(acs("okta"), data=form), "not bound to this browser")

    app.call(body)


def test_a_customer_signs_in_through_the_storefront_callback(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        async with t.browser() as browser:
            location = (await browser.post("/auth/customer/shop")).json()["location"]
            xml = _answer(location, "shop", name_id="c-1", attributes={"email": ["buyer@corp.example"]})
            r = await browser.post(acs("shop"), data=post_form(xml, relay_state(location)))
            assert r.status_code == 303 and r.headers["location"].startswith(STOREFRONT + "?")
            query = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
            answer = await browser.get("/auth/customer/shop/callback", params=query)
            assert answer.status_code == 200 and answer.json()["token"], answer.text
            again = await browser.get("/auth/customer/shop/callback", params=query)
            assert again.status_code == 401  # the handle works once

        async with t.browser() as browser:  # a Magento-style storefront: the same customer, a Magento token
            start = await browser.post("/rest/V1/tillkey/federation/customer/shop")
            location = start.json()["location"]
            xml = _answer(location, "shop", name_id="c-1", attributes={"email": ["buyer@corp.example"]})
            r = await browser.post(acs("shop"), data=post_form(xml, relay_state(location)))
            query = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
            answer = await browser.post("/rest/V1/tillkey/federation/customer/shop/token", json=query)
            assert answer.status_code == 200 and isinstance(answer.json(), str), answer.text

    app.call(body)


def test_malformed_posts_are_clean_errors(app: inprocess.Shared) -> None:
    async def body(t: inprocess.InProcess) -> None:
        cases = [
            ({"SAMLResponse": "%%%not-base64"}, 401),
            ({"SAMLResponse": base64.b64encode(b"<x/>").decode()}, 401),
            ({"SAMLResponse": base64.b64encode(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>").decode()}, 401),
            ({}, 400),
        ]
        for form, status in cases:
            r = await t.client.post(acs("okta"), data=form)
            assert r.status_code == status, r.text
        assert (await t.client.post(acs("nobody"), data={"SAMLResponse": "x"})).status_code == 404
        assert (await t.client.post(acs("okta"), json={"SAMLResponse": "x"})).status_code == 400

    app.call(body)


def test_two_processes_share_requests_in_flight_and_the_replay_cache(tmp_path: Path) -> None:
    """Two servers on one database: a sign-in started on one finishes on the other, and an
    assertion consumed on one is a replay on the other."""

    async def body() -> None:
        idp = make_idp(tmp_path)
        async with inprocess.running(tmp_path) as a, inprocess.running(tmp_path) as b:
            await a.create_role(["Magento_Backend::all"], name="everything")
            new = NewProvider(
                name="okta",
                issuer="",
                client_id="",
                actor="admin",
                groups_claim="groups",
                role_map={"admins": "everything"},
                provisioning="jit",
                settings={"attribute_email": "email", "idp_initiated": "on"},
            )
            await a.tk.services.saml_providers.add(OPERATOR, new, idp.metadata)
            idp.load_sp((await b.client.get("/saml/okta/metadata")).text)  # the same keys from the database
            async with a.browser() as on_a, b.browser() as on_b:
                location = await _start(on_a)
                on_b.cookies.set("tk_saml_state", relay_state(location), path="/saml/")
                xml = idp.respond(
                    sp_entity=sp("okta"),
                    destination=acs("okta"),
                    in_response_to=request_id(location),
                    name_id="u-1",
                    attributes=BOSS,
                )
                await _signed_in(on_b, await on_b.post(acs("okta"), data=post_form(xml, relay_state(location))))
            unsolicited = post_form(
                idp.respond(
                    sp_entity=sp("okta"), destination=acs("okta"), in_response_to=None, name_id="u-1", attributes=BOSS
                ),
                None,
            )
            async with b.browser() as on_b:
                await _signed_in(on_b, await on_b.post(acs("okta"), data=unsolicited))
            async with a.browser() as on_a:
                await _refused(a, await on_a.post(acs("okta"), data=unsolicited), "replayed")

    inprocess.run(body)
