"""SAML 2.0 sign-in against a real IdP nobody here wrote: Debian's SimpleSAMLphp, served on
loopback by `php -S` (tests/simplesamlphp.py). The provider is added with the CLI from the IdP's
metadata URL; SimpleSAMLphp gets Tillkey's SP entry (ACS and certificate) and answers with a signed
response and an assertion signed and encrypted to the SP. The test is the browser: it clicks
"Sign in with ...", signs in at SimpleSAMLphp's login form, and posts its answer to the ACS."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import inprocess
from tests.conftest import free_port
from tests.simplesamlphp import PASSWORD, SimpleSamlPhp, simplesamlphp
from tests.test_console_browser import ARGS, CHROMIUM, need_chromium
from tillkey.access.delegation import OPERATOR
from tillkey.federation.providers import NewProvider
from tillkey.store import accounts as accounts_repo

pytestmark = pytest.mark.interop

USERS = {
    "staff": {"uid": ["staff"], "mail": ["staff@corp.example"], "groups": ["shop-staff"], "cn": ["Sam Staff"]},
    "outsider": {"uid": ["outsider"], "mail": ["outsider@elsewhere.example"], "groups": []},
}

ADD = (
    *("idp", "add", "--name", "corp", "--protocol", "saml", "--actor", "admin", "--provision", "jit"),
    *("--attribute-email", "mail", "--groups-attribute", "groups", "--role-map", "shop-staff=catalog"),
)


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleSamlPhp]:
    with simplesamlphp(tmp_path_factory.mktemp("simplesamlphp"), USERS) as started:
        yield started


async def _sign_in(t: inprocess.InProcess, idp: SimpleSamlPhp, browser: httpx.AsyncClient, user: str) -> httpx.Response:
    r = await browser.get("/console/login/idp/corp", params={"next": "/console/"})
    assert r.status_code == 303 and r.headers["location"].startswith(idp.base), r.text
    async with httpx.AsyncClient() as at_idp:  # the same browser, at the IdP's origin
        form = await idp.sign_in(at_idp, r.headers["location"], user)
    action = form.pop("action")
    assert action == f"{inprocess.BASE_URL}/saml/corp/acs"
    assert set(form) == {"SAMLResponse", "RelayState"}
    return await browser.post("/saml/corp/acs", data=form)


def test_an_admin_signs_in_through_simplesamlphp_and_groups_map_to_roles(
    tmp_path: Path, idp: SimpleSamlPhp, monkeypatch: pytest.MonkeyPatch
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS", "1")

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await t.create_role(["Magento_Catalog::products"], name="catalog")
            added = await inprocess.cli_json(*ADD, "--metadata-url", idp.metadata_url)
            assert added["protocol"] == "saml" and added["issuer"] == idp.metadata_url
            tested = await inprocess.cli_json("idp", "test", "corp")
            assert tested["ok"] and tested["sso_url"].startswith(idp.base) and tested["signing_certificates"] >= 1
            metadata = (await t.client.get("/saml/corp/metadata")).text
            idp.add_sp(added["client_id"], f"{inprocess.BASE_URL}/saml/corp/acs", _certificate(metadata))

            async with t.browser() as browser:
                r = await _sign_in(t, idp, browser, "staff")
                assert r.status_code == 200 and 'http-equiv="refresh"' in r.text, r.text
                dashboard = await browser.get("/console/")
                assert dashboard.status_code == 200
            async with t.tk.db.session() as s:
                admin = await accounts_repo.admin_by_email(s, "staff@corp.example")
                assert admin is not None and admin.role_id is not None
                role = await accounts_repo.role_by_id(s, admin.role_id)
            assert role is not None and role.name == "catalog"

            async with t.browser() as browser:  # the same persistent NameID: the same account again
                r = await _sign_in(t, idp, browser, "staff")
                assert r.status_code == 200 and (await browser.get("/console/")).status_code == 200
            async with t.browser() as browser:  # no mapped group: no role, refused
                r = await _sign_in(t, idp, browser, "outsider")
                assert r.status_code == 401 and "tk_console" not in r.headers.get("set-cookie", "")

            # A rotation: the IdP still encrypts to the previous certificate, which still decrypts.
            rotated = await inprocess.cli_json("idp", "saml-cert", "rotate", "corp")
            shown = await inprocess.cli_json("idp", "saml-cert", "show", "corp")
            assert shown["current"] == rotated["current"] != shown["previous"] == rotated["previous"]
            updated = await inprocess.cli_json("idp", "update", "corp", "--idp-initiated")
            assert updated["settings"]["idp_initiated"] == "on"
            async with t.browser() as browser:
                r = await _sign_in(t, idp, browser, "staff")
                assert r.status_code == 200 and (await browser.get("/console/")).status_code == 200

            removed = await inprocess.cli_json("idp", "remove", "corp")
            assert removed["unlinked_identities"] == 1
            assert (await t.client.get("/saml/corp/metadata")).status_code == 404

    inprocess.run(body)


def test_an_admin_signs_in_through_simplesamlphp_in_chromium(idp: SimpleSamlPhp, tmp_path: Path) -> None:
    """The same in Debian's Chromium, against the app on a loopback port: the console's button, the
    IdP's login form, its auto-posting answer (JavaScript), the ACS and the console's dashboard."""
    need_chromium()
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def chromium() -> str:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_context().new_page()
                page.set_default_timeout(60_000)  # php -S answers one request at a time, on a busy CI machine
                page.goto(f"{base}/console/login")
                page.get_by_role("link", name="Sign in with Corp SSO").click()
                try:
                    page.locator('input[name="username"]').wait_for()
                except Exception as exc:  # the page the IdP answered instead, for the failure message
                    raise AssertionError(f"no IdP login form at {page.url}: {page.content()[:2000]}") from exc
                page.locator('input[name="username"]').fill("staff")
                page.locator('input[name="password"]').fill(PASSWORD)
                page.locator('button[type="submit"], input[type="submit"]').first.click()
                page.wait_for_url(f"{base}/console/")
                return str(page.content())
            finally:
                browser.close()

    async def body() -> None:
        settings = {"issuer": base, "federation_allow_private_endpoints": True}
        async with inprocess.running(tmp_path, **settings) as t, inprocess.listening(t, port):
            await t.create_role(["Magento_Catalog::products"], name="catalog")
            saml = t.tk.services.saml_providers
            new = NewProvider(
                name="corp",
                issuer="",
                client_id="",
                actor="admin",
                display_name="Corp SSO",
                groups_claim="groups",
                role_map={"shop-staff": "catalog"},
                provisioning="jit",
                settings={"attribute_email": "mail"},
            )
            await saml.add(OPERATOR, new, await saml.fetch(idp.metadata_url))
            metadata = (await t.client.get("/saml/corp/metadata")).text
            idp.add_sp(f"{base}/saml/corp/metadata", f"{base}/saml/corp/acs", _certificate(metadata))
            assert "corp-staff" in await asyncio.to_thread(chromium)

    inprocess.run(body)


def _certificate(metadata: str) -> str:
    found = re.search(r"X509Certificate>([^<]+)<", metadata)
    assert found is not None
    return f"-----BEGIN CERTIFICATE-----\n{found.group(1)}\n-----END CERTIFICATE-----\n"
