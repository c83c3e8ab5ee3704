"""Binding an integration to a client certificate from the console (RFC 8705): the integration's
page binds a pasted PEM and unbinds it, through the one service the CLI and the admin API use
(same validation, change feed entry and audit record), behind the API route's resources and the
console's CSRF check. The certificate reaches the server through the trusted proxy's header (the
test client is 127.0.0.1, the trusted proxy)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.mtls_support import Authority, escaped, pem
from tests.polling import until
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.console.sign_in_session import DEV_COOKIE
from tillkey.credentials.mtls import thumbprint
from tillkey.principal import UserType
from tillkey.store.audit import AuditQuery

PRODUCTS = "/rest/V1/products"
HEADER = "X-SSL-Client-Cert"
REFUSED = {"message": "This integration is bound to another client certificate."}
CA = Authority()
_, CERT = CA.issue("erp")
X5T = thumbprint(CERT)
SETTINGS: dict[str, Any] = {
    "trusted_proxies": "127.0.0.1",
    "integration_allow_private_endpoints": True,
    "sync_interval": 60,  # only an explicit poll of the change feed moves the app's state
}
MINE = {HEADER: escaped(CERT)}
UNBOUND = "none (any connection)"


class Erp:
    """An active integration and the OAuth 1.0a signed calls its ERP makes."""

    def __init__(self, t: InProcess) -> None:
        self.t = t
        self.id = 0
        self.credentials: tuple[str, str, str, str] = ("", "", "", "")

    async def create(self) -> Erp:
        made = await self.t.tk.services.integrations.create(OPERATOR, name="erp", all_resources=True)
        done = await self.t.tk.services.integrations.activate(OPERATOR, made.id)
        assert done.access_token is not None and done.access_token_secret is not None
        self.id = made.id
        self.credentials = (made.consumer_key, made.consumer_secret, done.access_token, done.access_token_secret)
        return self

    @property
    def page(self) -> str:
        return f"/console/integrations/{self.id}"

    @property
    def action(self) -> str:
        return f"{self.page}/certificate"

    async def call(self, presented: dict[str, str]) -> httpx.Response:
        """A signed call as the ERP's oauthlib makes it (a fresh nonce each time), after this server
        read the change feed."""
        await self.t.tk.poll_changes()
        key, secret, token, token_secret = self.credentials
        signer = Client(key, secret, token, token_secret, signature_method=SIGNATURE_HMAC_SHA256)
        _, headers, _ = signer.sign(BASE_URL + PRODUCTS, "GET")
        return await self.t.client.get(PRODUCTS, headers={**headers, **presented})

    async def bound(self) -> str | None:
        certificate: str | None = (await self.t.tk.services.integrations.get(self.id))["certificate"]
        return certificate


def _textarea(html: str) -> str:
    found = re.search(r'<textarea name="certificate"[^>]*>([^<]*)</textarea>', html)
    assert found is not None, html
    return found.group(1)


async def _changes(t: InProcess) -> list[tuple[int | None, int | None, dict[str, Any]]]:
    records = await t.tk.audit.search(AuditQuery(event=audit.INTEGRATION_CHANGED, limit=20))
    return [(r.actor_type, r.actor_id, json.loads(r.details or "{}")) for r in records]


def test_an_admin_binds_and_unbinds_a_certificate_on_the_integration_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            alice = await t.create_admin("alice")
            console = await t.console_session(alice.id)
            erp = await Erp(t).create()
            page = await console.get(erp.page)
            assert page.status_code == 200 and UNBOUND in page.text
            assert f'action="{erp.action}"' in page.text and "Unbind" not in page.text
            assert (await erp.call({})).status_code == 200

            r = await console.post(erp.action, {"certificate": pem(CERT)})
            assert r.status_code == 303, r.text
            assert r.headers["location"] == f"{erp.page}?done=bound"
            page = await console.get(r.headers["location"])
            assert f"bound: <code>{X5T}</code> (x5t#S256)" in page.text, page.text
            assert "The integration is bound to the certificate" in page.text and "Unbind" in page.text
            # The server now refuses the integration's calls without the certificate, accepts them with it.
            refused = await erp.call({})
            assert refused.status_code == 401 and refused.json() == REFUSED, refused.text
            assert (await erp.call(MINE)).status_code == 200
            # The API describes it the same way (one service, one state).
            api = await t.client.get("/tillkey/v1/integrations", headers=t.bearer(await t.admin_token("alice")))
            assert [i["certificate"] for i in api.json()["integrations"]] == [X5T]

            # Unbinding loosens the integration: asked first (no script ran), then done.
            asked = await console.post(erp.action, {"unbind": "1"})
            assert asked.status_code == 200 and "Please confirm" in asked.text
            assert await erp.bound() == X5T
            r = await console.post(erp.action, {"unbind": "1", "confirm": "yes"})
            assert r.status_code == 303 and r.headers["location"] == f"{erp.page}?done=unbound", r.text
            page = await console.get(erp.page)
            assert UNBOUND in page.text and "bound: <code>" not in page.text and "Unbind" not in page.text
            assert (await erp.call({})).status_code == 200

            # Each change audited with the acting admin, as the API's and the CLI's are.
            said = await _changes(t)
            assert sorted((d["change"], d["certificate"], d["previous_certificate"]) for _, _, d in said) == [
                ("certificate bound", X5T, None),
                ("certificate unbound", None, X5T),
            ]
            assert {(kind, who, d["target_id"]) for kind, who, d in said} == {(int(UserType.ADMIN), alice.id, erp.id)}

    inprocess.run(body)


def test_what_is_no_pem_certificate_or_no_integration_is_refused_on_the_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            alice = await t.create_admin("alice")
            console = await t.console_session(alice.id)
            erp = await Erp(t).create()
            assert (await console.post(erp.action, {"certificate": pem(CERT)})).status_code == 303

            garbage = "-----BEGIN CERTIFICATE-----\nno\n-----END CERTIFICATE-----"
            for typed in (garbage, "", pem(CERT) + pem(CA.cert)):
                r = await console.post(erp.action, {"certificate": typed})
                # The integration's own page, the error in place, what was pasted kept.
                assert r.status_code == 400, r.text
                assert 'class="alert error"' in r.text and "not a PEM certificate" in r.text, r.text
                assert f"bound: <code>{X5T}</code>" in r.text
                assert _textarea(r.text).strip() == typed.strip()
                assert await erp.bound() == X5T
            # No field at all is no unbinding either.
            assert (await console.post(erp.action, {})).status_code == 400
            assert await erp.bound() == X5T

            for missing in ("/console/integrations/999/certificate", "/console/integrations/99999999999/certificate"):
                r = await console.post(missing, {"certificate": pem(CERT)})
                assert r.status_code == 404 and "The integration doesn&#39;t exist." in r.text, r.text
            assert [d["change"] for _, _, d in await _changes(t)] == ["certificate bound"]

    inprocess.run(body)


def test_binding_needs_the_integrations_resource_and_the_forms_csrf_token(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            alice = await t.create_admin("alice")
            bob = await t.create_admin("bob", resources=["Magento_Catalog::products"])
            erp = await Erp(t).create()

            # An admin whose role lacks Magento_Integration::integrations (the API route's resource).
            r = await (await t.console_session(bob.id)).post(erp.action, {"certificate": pem(CERT)})
            assert r.status_code == 403 and "does not grant Magento_Integration::integrations" in r.text, r.text

            # Alice may, but not without the form's token, nor with another session's.
            console = await t.console_session(alice.id)
            cookie = {"Cookie": f"{DEV_COOKIE}={console.cookie}", "Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}
            stranger = await t.console_session(bob.id)
            for form in ({"certificate": pem(CERT)}, {"certificate": pem(CERT), "csrf": stranger.csrf}):
                r = await t.client.post(erp.action, data=form, headers=cookie)
                assert r.status_code == 403 and "did not come from this console" in r.text, r.text
            # A cross-site post with the right token is refused too.
            r = await t.client.post(
                erp.action,
                data={"certificate": pem(CERT), "csrf": console.csrf},
                headers={**cookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            )
            assert r.status_code == 403, r.text

            assert await erp.bound() is None
            assert await _changes(t) == []
            assert (await erp.call({})).status_code == 200

            # The refusals were audited as such (written in the background).
            async def denied() -> set[int | None]:
                found = {r.actor_id for r in await t.tk.audit.search(AuditQuery(event=audit.ACCESS_DENIED, limit=20))}
                return found if found >= {alice.id, bob.id} else set()

            await until(denied, what="the refusals audited")

    inprocess.run(body)
