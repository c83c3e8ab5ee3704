"""One change to the auth state, done the one way: rows + change feed + audit in one transaction,
then the change applied to this process.

    async with uow() as w:
        await repo.set_admin_role(w.s, admin_id, role_id)
        w.changed("grants")
        w.audit(audit.ACCOUNT_CHANGED, details={...})
    # committed, audited, and this process's in-memory state follows

Every process applies the change-feed rows of the others by polling (runtime.py); the process
that made a change applies it at once, here, after the commit: a 200 means the change is durable
and this process already acts on it. Nothing here runs on the hot path.

The audit sink and the local state are Protocols: the store layer sits below the audit writer
and the runtime, which provide them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store import auth as auth_repo
from tillkey.store.db import Database

# Change-feed kinds whose local apply is a reload of that part of the in-memory state.
RELOADED = ("grants", "keys", "oauth_clients", "api_keys", "sessions", "integrations")
# Kinds the writer applies itself (`apply=`): the revocation state is set, never reloaded.
REVOKE_USER = "revoke_user"
REVOKE_TOKEN = "revoke_token"  # noqa: S105 (a change-feed kind)


class AuditSink(Protocol):
    """Appends an audit record inside the caller's transaction (audit/writer.py AuditLog)."""

    async def record_in(
        self,
        s: AsyncSession,
        event: str,
        *,
        outcome: str = ...,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None: ...


class LocalState(Protocol):
    """This process's in-memory auth state, reloaded for a change-feed kind (runtime.py)."""

    async def reload(self, kind: str, refs: Sequence[str] | None) -> None:
        """`refs`: the changed rows' refs, or None for all (sessions reload only those)."""


@dataclass(slots=True)
class _Noted:
    kind: str
    ref: str | None
    apply: Callable[[], None] | None


@dataclass(slots=True)
class Work:
    """The open unit: `s` for the rows, `changed` for the feed, `audit` for the records."""

    s: AsyncSession
    now: int  # unix seconds at the start: the change rows' time
    _changes: list[_Noted] = field(default_factory=list)
    _records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def changed(
        self,
        kind: str,
        *,
        user_type: int | None = None,
        user_id: int | None = None,
        ref: str | None = None,
        apply: Callable[[], None] | None = None,
    ) -> None:
        """A change-feed row of `kind` (every process follows it). After the commit this process
        applies it: `apply` if given (the writer knows the new state: no database read), else a
        reload of that kind's state, once per kind however many rows."""
        if apply is None and kind not in RELOADED:
            raise ValueError(f"a {kind!r} change needs its local apply")
        auth_repo.add_change(self.s, kind, self.now, user_type=user_type, user_id=user_id, ref=ref)
        self._changes.append(_Noted(kind, ref, apply))

    def audit(self, event: str, **fields: Any) -> None:
        """An audit record (AuditLog.record_in's fields), written in this transaction, after every
        row: the chain's head stays locked from the first record to the commit, and no other row
        is locked after it (one lock order)."""
        self._records.append((event, fields))


class UnitOfWork:
    """Opens units of work: `async with uow() as w: ...`."""

    def __init__(self, db: Database, audit: AuditSink | None, local: LocalState, now: Callable[[], int]) -> None:
        self._db = db
        self._audit = audit
        self._local = local
        self._now = now

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Work]:
        async with self._db.transaction() as s:
            work = Work(s, self._now())
            yield work
            if self._audit is not None:
                for event, fields in work._records:
                    await self._audit.record_in(s, event, **fields)
        # Committed (an error above rolled everything back and skips this).
        await apply_locally(self._local, work._changes)


async def apply_locally(local: LocalState, changes: Sequence[_Noted]) -> None:
    reload: dict[str, list[str] | None] = {}
    for c in changes:
        if c.apply is not None:
            c.apply()
            continue
        refs = reload.setdefault(c.kind, [])
        if c.ref is None:
            reload[c.kind] = None  # a change without a ref: all of that kind
        elif refs is not None:
            refs.append(c.ref)
    for kind, refs in reload.items():
        await local.reload(kind, refs)
