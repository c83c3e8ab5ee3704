"""Account and role changes name who made them (issue 18): the admin behind a console session, the
key behind an API call; the operator's CLI is nobody in particular and records no actor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import inprocess
from tillkey.principal import UserType
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery, AuditRecord

ROLES = "Magento_User::acl_roles"
USERS = "Magento_User::acl_users"


def _details(r: AuditRecord) -> dict[str, Any]:
    return dict(json.loads(r.details or "{}"))


async def _changes(t: inprocess.InProcess) -> list[AuditRecord]:
    found = await t.tk.audit.search(AuditQuery(event_prefix="role.", limit=200))
    return found + await t.tk.audit.search(AuditQuery(event_prefix="account.", limit=200))


def test_console_changes_record_the_signed_in_admin_and_cli_changes_no_actor(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            root = await t.create_admin("root")  # by the operator
            console = await t.console_session(root.id)
            assert (
                await console.post("/console/roles", {"name": "Catalog", "resource": ["Magento_Catalog::catalog"]})
            ).status_code == 303
            form: dict[str, str | list[str]] = {
                "username": "bob",
                "email": "bob@example.com",
                "password": inprocess.ADMIN_PASSWORD,
                "role": "Catalog",
            }
            assert (await console.post("/console/admins", form)).status_code == 303
            async with t.tk.db.session() as s:
                role = await repo.role_by_name(s, "Catalog")
            assert role is not None
            role_id = role.id
            assert (await console.post(f"/console/roles/{role_id}/rename", {"name": "Catalogue"})).status_code == 303

            records = await _changes(t)
            by_root = {
                (r.event, _details(r).get("role"))
                for r in records
                if (r.actor_type, r.actor_id) == (int(UserType.ADMIN), root.id)
            }
            assert ("role.created", "Catalog") in by_root
            assert ("account.created", "Catalog") in by_root
            assert ("role.changed", "Catalogue") in by_root
            operator = [r for r in records if r.event == "account.created" and _details(r).get("target_id") == root.id]
            assert len(operator) == 1 and operator[0].actor_type is None and operator[0].actor_id is None

    inprocess.run(body)
