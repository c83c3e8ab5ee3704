"""Email verification codes (accounts/medusa_verification.py): by keyed digest, single use, a
bounded number per account within a code's lifetime; spent rows record the verified address."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store import bounds
from tillkey.store.models import EmailVerificationRow as Row


async def add(
    s: AsyncSession, digest: str, user_type: int, user_id: int, email: str, *, now_ms: int, expires_ms: int, limit: int
) -> bool:
    """Add a code unless the account had `limit` issued within a code's lifetime (False: nothing
    added). Earlier codes stay valid, as password reset tokens do. Counted under a per-account lock."""
    await bounds.serialize(s, "email_verifications", user_type, user_id)
    s.add(
        Row(
            digest=digest,
            user_type=user_type,
            user_id=user_id,
            email=email.casefold(),
            created_ms=now_ms,
            expires_ms=expires_ms,
        )
    )
    await s.flush()  # the first write: on SQLite it takes the lock before anything is counted
    mine = (Row.user_type == user_type, Row.user_id == user_id)
    await s.execute(delete(Row).where(*mine, Row.expires_ms <= now_ms, Row.used_ms.is_(None)))
    issued = await s.scalar(select(func.count()).select_from(Row).where(*mine, Row.expires_ms > now_ms))
    if int(issued or 0) > limit:
        await s.execute(delete(Row).where(Row.digest == digest))
        return False
    return True


async def owner(s: AsyncSession, digest: str, now_ms: int) -> Row | None:
    """The unspent, unexpired code with this digest, without spending it."""
    row = await s.get(Row, digest)
    if row is None or row.used_ms is not None or row.expires_ms <= now_ms:
        return None
    return row


async def find(s: AsyncSession, digest: str) -> Row | None:
    """The code with this digest, spent or expired or not (until expired ones are purged)."""
    return await s.get(Row, digest)


async def is_latest(s: AsyncSession, row: Row) -> bool:
    """Whether no later code was issued to the row's account (a later request replaces it)."""
    later = await s.scalar(
        select(func.count())
        .select_from(Row)
        .where(Row.user_type == row.user_type, Row.user_id == row.user_id, Row.created_ms > row.created_ms)
    )
    return not later


async def consume(s: AsyncSession, digest: str, now_ms: int) -> bool:
    """Spend a code atomically: True once, False ever after or when expired."""
    res = await s.execute(
        update(Row).where(Row.digest == digest, Row.used_ms.is_(None), Row.expires_ms > now_ms).values(used_ms=now_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def verified_at(s: AsyncSession, user_type: int, user_id: int, email: str) -> int | None:
    """When the account last verified this address (ms), None if it never did."""
    found = await s.scalar(
        select(func.max(Row.used_ms)).where(
            Row.user_type == user_type, Row.user_id == user_id, Row.email == email.casefold(), Row.used_ms.is_not(None)
        )
    )
    return int(found) if found is not None else None


async def last_requested(s: AsyncSession, user_type: int, user_id: int) -> int | None:
    found = await s.scalar(select(func.max(Row.created_ms)).where(Row.user_type == user_type, Row.user_id == user_id))
    return int(found) if found is not None else None


async def purge_expired(s: AsyncSession, now_ms: int) -> None:
    await s.execute(delete(Row).where(Row.expires_ms <= now_ms, Row.used_ms.is_(None)))
