"""The unit of work (store/unit_of_work.py): a change's rows, change-feed entries and audit records
commit together or not at all, and this process applies the change only once it has committed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests import inprocess
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.errors import Conflict
from tillkey.store.audit import AuditQuery
from tillkey.store.models import AuthChangeRow
from tillkey.store.unit_of_work import REVOKE_USER, UnitOfWork
from tillkey.tokens.revocation import RevocationState


class Spy:
    """A LocalState that remembers what it was asked to reload."""

    def __init__(self) -> None:
        self.reloads: list[tuple[str, list[str] | None]] = []

    async def reload(self, kind: str, refs: Sequence[str] | None) -> None:
        self.reloads.append((kind, None if refs is None else list(refs)))


async def _feed_rows(t: inprocess.InProcess) -> int:
    async with t.tk.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(AuthChangeRow)) or 0)


async def _records(t: inprocess.InProcess, event: str) -> int:
    return len(await t.tk.audit.search(AuditQuery(event=event)))


def test_a_committed_unit_writes_rows_feed_and_audit_then_applies_once_per_kind(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            spy = Spy()
            uow = UnitOfWork(t.tk.db, t.tk.audit, spy, t.tk.clock.now_int)
            before = await _feed_rows(t)
            applied: list[str] = []
            async with uow() as w:
                w.changed("grants")
                w.changed("grants")
                w.changed("sessions", ref="a")
                w.changed("sessions", ref="b")
                w.changed(REVOKE_USER, user_type=1, user_id=7, apply=lambda: applied.append("revoked"))
                w.audit(audit.ROLE_CHANGED, details={"role": "x", "added": [], "removed": []})
                assert applied == [] and spy.reloads == []  # nothing is applied before the commit
            assert applied == ["revoked"]
            assert spy.reloads == [("grants", None), ("sessions", ["a", "b"])]
            assert await _feed_rows(t) == before + 5
            assert await _records(t, audit.ROLE_CHANGED) == 1

    inprocess.run(body)


def test_a_failed_unit_leaves_no_row_no_record_and_changes_nothing_here(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            spy = Spy()
            state = RevocationState()
            uow = UnitOfWork(t.tk.db, t.tk.audit, spy, t.tk.clock.now_int)
            before = await _feed_rows(t)
            with pytest.raises(Conflict):
                async with uow() as w:
                    w.changed("grants")
                    w.changed(REVOKE_USER, user_type=1, user_id=7, apply=lambda: state.note_user(1, 7, 1))
                    w.audit(audit.ROLE_CHANGED, details={"role": "x", "added": [], "removed": []})
                    raise Conflict("refused halfway")
            assert spy.reloads == [] and state.revoke_before == {}
            assert await _feed_rows(t) == before
            assert await _records(t, audit.ROLE_CHANGED) == 0

    inprocess.run(body)


def test_a_revocation_needs_its_local_apply(tmp_path: Path) -> None:
    """Revocations are set in memory from what was written, never reloaded: a call site that
    forgets the apply is refused before anything commits."""

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            before = await _feed_rows(t)
            with pytest.raises(ValueError, match="local apply"):
                async with t.tk.uow() as w:
                    w.changed(REVOKE_USER, user_type=1, user_id=7)
            assert await _feed_rows(t) == before

    inprocess.run(body)


def test_a_role_change_is_enforced_here_as_soon_as_it_returns(tmp_path: Path) -> None:
    """Through a service: the grant reload comes with the unit of work, not from the call site."""

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            role = await t.create_role([])
            await t.create_admin("uow-alice", role=role)
            token = await t.admin_token("uow-alice")
            r = await t.client.get("/rest/V1/products", headers=t.bearer(token))
            assert r.status_code in (401, 403)
            await t.accounts.grant(OPERATOR, role, ["Magento_Catalog::products"])
            r = await t.client.get("/rest/V1/products", headers=t.bearer(token))
            assert r.status_code == 200, r.text

    inprocess.run(body)
