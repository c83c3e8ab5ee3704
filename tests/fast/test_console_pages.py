"""The console's lists and detail pages as an admin reads them: actors in the audit log by name
with a link to their page, every list filtered and paged, a page for each admin, customer,
integration, API key and OAuth client with what it holds and what it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.principal import UserType


def test_every_list_and_detail_page_opens_and_names_its_actors(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            await t.create_customer("ada@example.com")
            await t.customer_token("ada@example.com")  # a sign-in: an audit record by the customer
            await t.admin_token("root")
            made = await t.tk.services.integrations.create(
                OPERATOR, name="feed", email="", resources=[], all_resources=True
            )
            key = await t.tk.services.api_keys.create(OPERATOR, title="shop key", type="publishable")
            client = await t.tk.services.clients.create(
                OPERATOR,
                name="dashboard app",
                client_type="confidential",
                redirect_uris=["https://app.example/cb"],
                grant_types=["authorization_code"],
                scopes=["openid"],
            )
            console = await t.console_session(root.id)
            integration_id = next(i["id"] for i in await t.tk.services.integrations.list() if i["name"] == made.name)
            customer_page = (await console.get("/console/customers?q=ada")).text
            customer_id = re.search(r'href="/console/customers/(\d+)"', customer_page)
            assert customer_id is not None
            pages = [
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
                f"/console/admins/{root.id}",
                f"/console/customers/{customer_id.group(1)}",
                f"/console/integrations/{integration_id}",
                f"/console/api-keys/{key.key.id}",
                f"/console/oauth-clients/{client.client.client_id}",
            ]
            for path in pages:
                r = await console.get(path)
                assert r.status_code == 200, (path, r.text[:300])
            audit = (await console.get("/console/audit")).text
            assert f'<a href="/console/admins/{root.id}">root</a>' in audit
            assert f'<a href="/console/customers/{customer_id.group(1)}">ada@example.com</a>' in audit
            assert not re.search(r"<td>\d:\d+</td>", audit)  # never "2:1"
            # The customer's page shows their sign-in in its trail.
            assert "<td>login.success</td>" in (await console.get(f"/console/customers/{customer_id.group(1)}")).text
            # Filtering the audit log by outcome keeps the filter across pages.
            failed = await console.get("/console/audit?outcome=failure")
            assert failed.status_code == 200 and "<td>login.success</td>" not in failed.text

    inprocess.run(body)


def test_lists_are_paged_and_filtered(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            for n in range(30):
                await t.create_admin(f"clerk{n:02d}", resources=["Magento_Catalog::products"])
            console = await t.console_session(root.id)
            first = (await console.get("/console/admins")).text
            assert "clerk00" in first and "clerk29" not in first
            assert 'href="/console/admins?page=2"' in first and "Page 1 of 2 (31 in all)" in first
            second = (await console.get("/console/admins?page=2")).text
            assert "clerk29" in second and "clerk00" not in second
            found = (await console.get("/console/admins?q=CLERK1")).text
            assert "clerk15" in found and "clerk25" not in found and "root@" not in found
            roles = (await console.get("/console/roles?q=nothing-like-this")).text
            assert "Administrators" not in roles.split("<tbody>")[1]
            for _ in range(60):
                await t.tk.audit.record("login.success", actor_type=2, actor_id=root.id, username="root")
            audit = (await console.get("/console/audit?username=root")).text
            assert 'href="/console/audit?username=root&amp;page=2"' in audit
            assert (await console.get("/console/audit?username=root&page=2")).status_code == 200
            assert (await console.get("/console/admins?page=abc")).status_code == 200
            assert (await console.get("/console/admins?page=99999999999")).status_code == 200

    inprocess.run(body)


def _trail(page: str) -> str:
    """The detail page's audit trail table."""
    assert "<h2>Audit trail</h2>" in page, page[:500]
    return page.split("<h2>Audit trail</h2>", 1)[1]


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_detail_pages_show_what_was_done_to_the_account_by_whom(tmp_path: Path, backend: str) -> None:
    """A detail page's trail holds the actions on its subject by someone else (another admin's
    reset, a revocation, a creation), with that actor by name and a link, not only its own."""

    async def body(db: dict[str, str]) -> None:
        async with inprocess.running(tmp_path, **db) as t:
            root = await t.create_admin("root")
            clerk = await t.create_admin("clerk", resources=["Magento_Catalog::products"])
            console = await t.console_session(root.id)
            by_root = f'<a href="/console/admins/{root.id}">root</a>'

            reset = await console.post(
                f"/console/admins/{clerk.id}/password",
                {"password": "N3w-passw0rd!x", "password_confirm": "N3w-passw0rd!x"},
            )
            assert reset.status_code == 303, reset.text[:300]
            clerk_trail = _trail((await console.get(f"/console/admins/{clerk.id}")).text)
            assert "<td>account.changed</td>" in clerk_trail and by_root in clerk_trail
            assert "password reset" in clerk_trail
            # The clerk did nothing yet: no "last activity" from what others did to it.
            assert "<dt>Last activity</dt><dd>—</dd>" in (await console.get(f"/console/admins/{clerk.id}")).text
            # Root's page lists the reset as something root did; the clerk's, none of root's other doings.
            assert "password reset" in _trail((await console.get(f"/console/admins/{root.id}")).text)
            assert "<td>session.created</td>" not in clerk_trail

            made = await console.post("/console/integrations", {"name": "erp", "all_resources": "1"})
            assert made.status_code in (200, 303), made.text[:300]
            integration_id = next(i["id"] for i in await t.tk.services.integrations.list() if i["name"] == "erp")
            await console.post(f"/console/integrations/{integration_id}/activate")
            revoked = await console.post(f"/console/integrations/{integration_id}/revoke", {"confirm": "yes"})
            assert revoked.status_code == 303, revoked.text[:300]
            erp = _trail((await console.get(f"/console/integrations/{integration_id}")).text)
            for event in ("integration.created", "integration.activated", "token.revoked"):
                assert f"<td>{event}</td>" in erp, event
            assert erp.count(by_root) >= 3
            # Another integration's page shows none of it.
            other = await t.tk.services.integrations.create(
                OPERATOR, name="other", email="", resources=[], all_resources=True
            )
            assert "<td>token.revoked</td>" not in _trail((await console.get(f"/console/integrations/{other.id}")).text)

            await console.post("/console/api-keys", {"title": "shop key", "type": "secret"})
            key = (await t.tk.services.api_keys.listing(type=None, q="shop key", limit=1, offset=0))[0][0]
            await console.post(f"/console/api-keys/{key.id}/revoke", {"confirm": "yes"})
            key_trail = _trail((await console.get(f"/console/api-keys/{key.id}")).text)
            assert "<td>api_key.created</td>" in key_trail and "<td>api_key.revoked</td>" in key_trail
            assert key_trail.count(by_root) == 2

            await console.post(
                "/console/oauth-clients",
                {
                    "name": "dashboard app",
                    "client_type": "confidential",
                    "redirect_uris": "https://app.example/cb",
                    "grant_type": "authorization_code",
                    "scope": "openid",
                },
            )
            client_id = (await t.tk.services.clients.registered())[0].client_id
            client_trail = _trail((await console.get(f"/console/oauth-clients/{client_id}")).text)
            assert "<td>oauth2.client.created</td>" in client_trail and by_root in client_trail

            customer = await t.create_customer("ada@example.com")
            await t.accounts.revoke_tokens(UserType.CUSTOMER, customer.id)  # by the operator (CLI)
            ada = _trail((await console.get(f"/console/customers/{customer.id}")).text)
            assert "<td>account.created</td>" in ada and "<td>token.revoked</td>" in ada

    with inprocess.database(backend, tmp_path) as db:
        inprocess.run(lambda: body(db))
