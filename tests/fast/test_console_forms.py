"""Console forms as an admin meets them: a refused form comes back in place with its error and the
input kept (never a password); destructive actions ask first, with or without the page's script;
passwords are changed (one's own, with the current one) and reset (another's, within one's grant);
admins, integrations and roles are deleted from the console."""

from __future__ import annotations

import re
from pathlib import Path

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.store import accounts as repo

USERS = "Magento_User::acl_users"
ROLES = "Magento_User::acl_roles"
NEW = "Another-pass-5-tests"


def _value(html: str, name: str) -> str | None:
    found = re.search(rf'<input name="{name}"[^>]*value="([^"]*)"', html)
    return found.group(1) if found else None


async def _password_ok(t: InProcess, username: str, password: str) -> bool:
    async with t.tk.db.session() as s:
        admin = await repo.admin_by_username(s, username)
    assert admin is not None
    return await t.tk.passwords.verify(admin.password_hash, password)


def test_a_refused_form_shows_its_error_in_place_and_keeps_the_input_but_the_password(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            console = await t.console_session(root.id)
            r = await console.post(
                "/console/admins",
                {"username": "newbie", "email": "not-an-email", "password": "Secret-pass-77", "role": "Administrators"},
            )
            assert r.status_code == 400
            assert "That did not work" not in r.text
            assert 'class="alert error"' in r.text and "New admin user" in r.text  # the form's own page
            assert _value(r.text, "username") == "newbie"
            assert _value(r.text, "email") == "not-an-email"
            assert "Secret-pass-77" not in r.text
            # A role page keeps what was ticked and typed.
            r = await console.post("/console/roles", {"name": "", "resource": ["Magento_Catalog::products"]})
            assert r.status_code == 400 and 'class="alert error"' in r.text
            assert re.search(r'value="Magento_Catalog::products"[^>]*checked', r.text)

    inprocess.run(body)


def test_destructive_actions_ask_first_without_script_and_then_act(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            erin = await t.create_admin("erin")
            console = await t.console_session(root.id)
            page = await console.get("/console/admins")
            assert 'data-confirm="Deactivate erin?"' in page.text
            # No confirm=yes (no script ran): a page asks, nothing happens yet.
            asked = await console.post(f"/console/admins/{erin.id}/active", {"active": "0"})
            assert asked.status_code == 200 and "Please confirm" in asked.text
            assert '<input type="hidden" name="confirm" value="yes">' in asked.text
            assert '<input type="hidden" name="active" value="0">' in asked.text
            async with t.tk.db.session() as s:
                still = await repo.admin_by_id(s, erin.id)
            assert still is not None and still.is_active
            # Activating is not destructive: no question.
            assert (await console.post(f"/console/admins/{erin.id}/active", {"active": "1"})).status_code == 303
            done = await console.post(f"/console/admins/{erin.id}/active", {"active": "0", "confirm": "yes"})
            assert done.status_code == 303
            async with t.tk.db.session() as s:
                gone = await repo.admin_by_id(s, erin.id)
            assert gone is not None and not gone.is_active
            # Every destructive route asks the same way.
            for path in (
                f"/console/admins/{erin.id}/delete",
                "/console/integrations/1/delete",
                "/console/api-keys/1/revoke",
                "/console/oauth-clients/x/delete",
                "/console/roles/1/delete",
                "/console/customers/1/sign-out",
            ):
                r = await console.post(path)
                assert r.status_code in (200, 403) and ("Please confirm" in r.text or r.status_code == 403), path

    inprocess.run(body)


def test_own_password_change_needs_the_current_one_and_ends_every_session(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            console, other = await t.console_session(root.id), await t.console_session(root.id)
            token = await t.admin_token("root")
            wrong = await console.post(
                "/console/account/password",
                {"current_password": "nope", "password": NEW, "password_confirm": NEW},
            )
            assert wrong.status_code == 400 and "current password is wrong" in wrong.text
            assert "Change password" in wrong.text and NEW not in wrong.text
            differ = await console.post(
                "/console/account/password",
                {"current_password": ADMIN_PASSWORD, "password": NEW, "password_confirm": NEW + "x"},
            )
            assert differ.status_code == 400 and "differ" in differ.text
            assert await _password_ok(t, "root", ADMIN_PASSWORD)
            t.advance(1)
            r = await console.post(
                "/console/account/password",
                {"current_password": ADMIN_PASSWORD, "password": NEW, "password_confirm": NEW},
            )
            assert r.status_code == 303 and r.headers["location"] == "/console/login?reason=password"
            assert await _password_ok(t, "root", NEW)
            for ended in (console, other):
                assert (await ended.get("/console/")).headers["location"].startswith("/console/login")
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code == 401
            t.advance(1)
            assert (await t.console_sign_in("root", NEW)).status_code == 303

    inprocess.run(body)


def test_own_password_change_over_the_api(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("root")
            token = await t.admin_token("root")
            url = "/tillkey/v1/admins/me/password"
            auth = t.bearer(token)
            change = {"current_password": ADMIN_PASSWORD, "new_password": NEW}
            r = await t.client.post(url, json={**change, "current_password": "nope"}, headers=auth)
            assert r.status_code == 400 and "current password is wrong" in r.text
            r = await t.client.post(url, json={"current_password": ADMIN_PASSWORD}, headers=auth)
            assert r.status_code == 400
            r = await t.client.post(url, json={**change, "new_password": "short"}, headers=auth)
            assert r.status_code == 400
            assert (await t.client.post(url, json=change)).status_code == 401
            t.advance(1)
            r = await t.client.post(url, json=change, headers=auth)
            assert r.status_code == 200 and r.json()["changed"] is True
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code == 401
            t.advance(1)
            await t.admin_token("root", NEW)
            # A customer has no admin password to change here.
            await t.create_customer("c@example.com")
            ctoken = await t.customer_token("c@example.com")
            r = await t.client.post(url, json={"current_password": "x", "new_password": NEW}, headers=t.bearer(ctoken))
            assert r.status_code in (401, 403)

    inprocess.run(body)


def test_password_reset_and_deletion_of_another_admin_from_their_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            ua = await t.create_admin("ua", resources=[USERS, "Magento_Catalog::products"])
            low = await t.create_admin("low", resources=["Magento_Catalog::products"])
            low_token = await t.admin_token("low")
            console = await t.console_session(ua.id)
            page = await console.get(f"/console/admins/{low.id}")
            assert page.status_code == 200 and "Reset password" in page.text and "Audit trail" in page.text
            assert "Magento_Catalog::products" in page.text  # what the admin holds
            own = await console.get(f"/console/admins/{ua.id}")
            assert "Reset password" not in own.text and "/console/account" in own.text
            short = await console.post(f"/console/admins/{low.id}/password", {"password": "x", "password_confirm": "x"})
            assert short.status_code == 400 and "Reset password" in short.text  # back on the admin's page
            # "Stay signed in" returns to the page, not to the form's post-only action.
            assert f'name="next" value="/console/admins/{low.id}"' in short.text
            t.advance(1)
            r = await console.post(f"/console/admins/{low.id}/password", {"password": NEW, "password_confirm": NEW})
            assert r.status_code == 303 and r.headers["location"] == f"/console/admins/{low.id}?done=password"
            assert "was reset" in (await console.get(r.headers["location"])).text
            assert await _password_ok(t, "low", NEW)
            assert (await t.client.get("/rest/V1/products", headers=t.bearer(low_token))).status_code == 401
            r = await console.post(f"/console/admins/{low.id}/delete", {"confirm": "yes"})
            assert r.status_code == 303
            async with t.tk.db.session() as s:
                assert await repo.admin_by_id(s, low.id) is None

    inprocess.run(body)


def test_roles_are_renamed_and_deleted_in_the_console_but_not_while_held(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            ra = await t.create_admin("ra", resources=[ROLES, USERS, "Magento_Catalog::products"])
            name = await t.create_role(["Magento_Catalog::products"], name="catalog")
            held = await t.create_admin("cat", role=name)
            console = await t.console_session(ra.id)
            async with t.tk.db.session() as s:
                role = await repo.role_by_name(s, name)
            assert role is not None
            page = await console.get(f"/console/roles/{role.id}")
            assert "Rename role" in page.text and "Delete role" in page.text
            r = await console.post(f"/console/roles/{role.id}/rename", {"name": "catalogue"})
            assert r.status_code == 303
            r = await console.post(f"/console/roles/{role.id}/delete", {"confirm": "yes"})
            assert r.status_code == 409 and "assigned to 1 admin" in r.text and "Rename role" in r.text
            await t.accounts.delete_admin(OPERATOR, held.id)
            assert (await console.post(f"/console/roles/{role.id}/delete", {"confirm": "yes"})).status_code == 303
            async with t.tk.db.session() as s:
                assert await repo.role_by_name(s, "catalogue") is None

    inprocess.run(body)


def test_integrations_are_deleted_in_the_console(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")
            await t.tk.services.integrations.create(OPERATOR, name="feed", email="", resources=[], all_resources=True)
            console = await t.console_session(root.id)
            found = await t.tk.services.integrations.list()
            iid = next(i["id"] for i in found if i["name"] == "feed")
            assert f"/console/integrations/{iid}/delete" in (await console.get("/console/integrations")).text
            assert (await console.post(f"/console/integrations/{iid}/delete", {"confirm": "yes"})).status_code == 303
            assert [i for i in await t.tk.services.integrations.list() if i["name"] == "feed"] == []

    inprocess.run(body)
