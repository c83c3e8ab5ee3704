"""Repository for server-side cookie sessions (by keyed digest of the cookie value)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.store import bounds
from tillkey.store.models import SessionRow

TOO_MANY = "This account has too many active sessions. Sign out of one and try again."


@dataclass(frozen=True, slots=True)
class Session:
    digest: str
    kind: str
    user_type: int
    user_id: int
    identity_id: int | None
    context: str
    created_ms: int
    expires_ms: int


def _session(r: SessionRow) -> Session:
    return Session(r.digest, r.kind, r.user_type, r.user_id, r.identity_id, r.context, r.created_ms, r.expires_ms)


async def add(s: AsyncSession, session: Session) -> None:
    s.add(
        SessionRow(
            digest=session.digest,
            kind=session.kind,
            user_type=session.user_type,
            user_id=session.user_id,
            identity_id=session.identity_id,
            context=session.context,
            created_ms=session.created_ms,
            last_seen_ms=session.created_ms,
            expires_ms=session.expires_ms,
        )
    )


async def add_bounded(
    s: AsyncSession, session: Session, *, limit: int, evict: bool, rank: Callable[[Session], int] | None = None
) -> list[Session]:
    """Add `session`, keeping at most `limit` live sessions of its account and kind, across every
    process. evict: the oldest beyond the limit are deleted here and answered (the caller tells
    memory and the change feed); those of a lower `rank` go first (the console's sign-ins still
    waiting for their code, so that someone who knows only the password cannot end a signed-in
    admin's session). Else a session past the limit is refused (Conflict), nothing written.
    Expired rows of the account go in passing."""
    await bounds.serialize(s, "sessions", session.user_type, session.user_id)
    await add(s, session)
    await s.flush()  # the first write: on SQLite it takes the lock before anything is counted
    mine = (SessionRow.user_type == session.user_type, SessionRow.user_id == session.user_id)
    await s.execute(delete(SessionRow).where(*mine, SessionRow.expires_ms <= session.created_ms))
    rows = await s.scalars(
        select(SessionRow)
        .where(*mine, SessionRow.kind == session.kind, SessionRow.digest != session.digest)
        .order_by(SessionRow.created_ms.desc(), SessionRow.digest)
    )
    others = [_session(r) for r in rows]
    if rank is not None:
        others.sort(key=rank, reverse=True)  # stable: newest first within a rank
    over = others[max(0, limit - 1) :]
    if not over:
        return []
    if not evict:
        raise Conflict(TOO_MANY, detail=f"{len(others)} live {session.kind} sessions, limit {limit}")
    await s.execute(delete(SessionRow).where(SessionRow.digest.in_([x.digest for x in over])))
    return over


async def end(s: AsyncSession, digest: str) -> bool:
    res = await s.execute(delete(SessionRow).where(SessionRow.digest == digest))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def live(s: AsyncSession, now_ms: int, digests: Iterable[str] | None = None) -> list[Session]:
    q = select(SessionRow).where(SessionRow.expires_ms > now_ms)
    if digests is not None:
        q = q.where(SessionRow.digest.in_(list(digests)))
    return [_session(r) for r in await s.scalars(q)]


async def purge_expired(s: AsyncSession, now_ms: int) -> None:
    await s.execute(delete(SessionRow).where(SessionRow.expires_ms <= now_ms))


async def record_seen(s: AsyncSession, seen: Mapping[str, int]) -> None:
    for digest, ms in seen.items():
        await s.execute(update(SessionRow).where(SessionRow.digest == digest).values(last_seen_ms=ms))


async def extend(s: AsyncSession, digest: str, expires_ms: int, seen_ms: int) -> bool:
    """Slide a session's expiry (idle timeout); False if it is gone."""
    res = await s.execute(
        update(SessionRow).where(SessionRow.digest == digest).values(expires_ms=expires_ms, last_seen_ms=seen_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def of_user(
    s: AsyncSession, now_ms: int, *, user_type: int, user_id: int, kind: str | None = None
) -> list[Session]:
    q = select(SessionRow).where(
        SessionRow.expires_ms > now_ms, SessionRow.user_type == user_type, SessionRow.user_id == user_id
    )
    if kind is not None:
        q = q.where(SessionRow.kind == kind)
    return [_session(r) for r in await s.scalars(q.order_by(SessionRow.created_ms))]


async def of_kind(s: AsyncSession, now_ms: int, kind: str, limit: int = 500) -> list[Session]:
    q = select(SessionRow).where(SessionRow.expires_ms > now_ms, SessionRow.kind == kind)
    return [_session(r) for r in await s.scalars(q.order_by(SessionRow.created_ms.desc()).limit(limit))]


async def last_seen(s: AsyncSession, digests: Iterable[str]) -> dict[str, int]:
    q = select(SessionRow.digest, SessionRow.last_seen_ms).where(SessionRow.digest.in_(list(digests)))
    rows = await s.execute(q)
    return {d: int(ms) for d, ms in rows}


async def count_live(s: AsyncSession, now_ms: int) -> dict[str, int]:
    """Live sessions by kind (the console dashboard)."""
    rows = await s.execute(
        select(SessionRow.kind, func.count()).where(SessionRow.expires_ms > now_ms).group_by(SessionRow.kind)
    )
    return {k: int(n) for k, n in rows}
