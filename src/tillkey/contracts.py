"""The narrow interfaces services are built with (wiring.py): what a service may ask of the
process, and nothing more. A service receives these, never the runtime.

The implementations: `Changes` is store/unit_of_work.UnitOfWork, `Audit` is audit.AuditLog,
`Revocations` is tokens/revoker.Revoker, `Hasher` is crypto/passwords.PasswordHashing. A test may
hand a service any object with these methods.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from tillkey.store.unit_of_work import AuditSink, Work

__all__ = ["Audit", "AuditSink", "Changes", "Hasher", "Revocations"]


class Changes(Protocol):
    """Opens a unit of work: rows + change feed + audit in one transaction, then applied here."""

    def __call__(self) -> AbstractAsyncContextManager[Work]: ...


class Audit(AuditSink, Protocol):
    """The audit log: in a unit of work (`record_in`, through `Work.audit`) or on its own."""

    async def record(
        self,
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


class Revocations(Protocol):
    """Durable revocation (committed before it returns), applied to this process at once."""

    async def revoke_for(self, user_type: int, user_id: int) -> None: ...

    async def revoke_ids(self, tokens: list[tuple[str, int | None]]) -> None: ...


class Hasher(Protocol):
    """Password hashing (argon2id, off the event loop)."""

    async def hash(self, password: str) -> str: ...
