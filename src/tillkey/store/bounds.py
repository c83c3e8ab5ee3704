"""Per-account bounds on stored state (issue 21), enforced in the database so that every process
counts the same rows: sessions, refresh-token families and reset tokens per account.

Counting and adding must not interleave between processes, or two of them each see room for one
more. `serialize` makes the rest of the transaction exclusive per account and purpose:
PostgreSQL takes a transaction-scoped advisory lock; SQLite has one writer at a time, so a write
as the transaction's first statement (callers add their row first, then count) orders them.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def lock_key(purpose: str, user_type: int, user_id: int) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock, stable across processes and versions."""
    digest = hashlib.sha256(f"tillkey:{purpose}:{user_type}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def serialize(s: AsyncSession, purpose: str, user_type: int, user_id: int) -> None:
    """Until this transaction ends, other transactions that serialize the same account and purpose
    wait. Call before the transaction's first write (on SQLite, that write then takes the lock)."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(purpose, user_type, user_id)})
