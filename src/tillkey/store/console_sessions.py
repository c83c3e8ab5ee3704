"""Repository for the interim console login sessions (console/session.py), by keyed digest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import ConsoleSessionRow


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    digest: str
    user_type: int
    user_id: int
    auth_time: int
    amr: tuple[str, ...]
    csrf: str
    pending_otp: bool
    expires_at: int


async def add(s: AsyncSession, c: ConsoleSession) -> None:
    s.add(
        ConsoleSessionRow(
            digest=c.digest, user_type=c.user_type, user_id=c.user_id, auth_time=c.auth_time, amr=",".join(c.amr),
            csrf=c.csrf, pending_otp=c.pending_otp, expires_at=c.expires_at,
        )
    )  # fmt: skip


async def get(s: AsyncSession, digest: str) -> ConsoleSession | None:
    r = await s.get(ConsoleSessionRow, digest)
    if r is None:
        return None
    amr = tuple(m for m in r.amr.split(",") if m)
    return ConsoleSession(r.digest, r.user_type, r.user_id, r.auth_time, amr, r.csrf, r.pending_otp, r.expires_at)


async def end(s: AsyncSession, digest: str) -> None:
    await s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.digest == digest))


async def purge_expired(s: AsyncSession, now: int) -> None:
    await s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at <= now))
