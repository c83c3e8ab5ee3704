"""Repository for Medusa-style API keys. Returns frozen records, never ORM rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import ApiKeyRow

SECRET = "secret"  # noqa: S105 (a key type, not a secret)
PUBLISHABLE = "publishable"
TYPES = (SECRET, PUBLISHABLE)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    type: str
    title: str
    digest: str
    public_token: str | None
    redacted: str
    resources: tuple[str, ...]
    created_by: int | None
    created_ms: int
    updated_ms: int
    last_used_ms: int | None
    revoked_ms: int | None
    revoked_by: int | None
    deleted_ms: int | None


def _key(r: ApiKeyRow) -> ApiKey:
    return ApiKey(
        r.id, r.type, r.title, r.digest, r.public_token, r.redacted, tuple(x for x in r.resources.split("\n") if x),
        r.created_by, r.created_ms, r.updated_ms, r.last_used_ms, r.revoked_ms, r.revoked_by, r.deleted_ms,
    )  # fmt: skip


async def create(
    s: AsyncSession, *, type: str, title: str, digest: str, public_token: str | None, redacted: str,
    resources: tuple[str, ...], created_by: int | None, now_ms: int,
) -> ApiKey:  # fmt: skip
    row = ApiKeyRow(
        type=type, title=title, digest=digest, public_token=public_token, redacted=redacted,
        resources="\n".join(resources), created_by=created_by, created_ms=now_ms, updated_ms=now_ms,
    )  # fmt: skip
    s.add(row)
    await s.flush()
    return _key(row)


async def by_id(s: AsyncSession, key_id: int) -> ApiKey | None:
    row = await s.get(ApiKeyRow, key_id)
    return _key(row) if row is not None and row.deleted_ms is None else None


async def listing(
    s: AsyncSession, *, type: str | None, q: str | None, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    cond: list[ColumnElement[bool]] = [ApiKeyRow.deleted_ms.is_(None)]
    if type:
        cond.append(ApiKeyRow.type == type)
    if q:
        cond.append(func.lower(ApiKeyRow.title).contains(q.lower(), autoescape=True))
    total = int(await s.scalar(select(func.count()).select_from(ApiKeyRow).where(*cond)) or 0)
    rows = await s.scalars(select(ApiKeyRow).where(*cond).order_by(ApiKeyRow.id).limit(limit).offset(offset))
    return [_key(r) for r in rows], total


async def live(s: AsyncSession) -> list[ApiKey]:
    """Every key not deleted, revoked ones included: the hot path tells "revoked" from "unknown"."""
    return [_key(r) for r in await s.scalars(select(ApiKeyRow).where(ApiKeyRow.deleted_ms.is_(None)))]


async def set_title(s: AsyncSession, key_id: int, title: str, now_ms: int) -> None:
    await s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(title=title, updated_ms=now_ms))


async def revoke(s: AsyncSession, key_id: int, at_ms: int, by: int | None, now_ms: int) -> bool:
    """Set the revocation time unless one is already set (no double revocation across processes)."""
    res = await s.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_ms.is_(None), ApiKeyRow.deleted_ms.is_(None))
        .values(revoked_ms=at_ms, revoked_by=by, updated_ms=now_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def soft_delete(s: AsyncSession, key_id: int, now_ms: int) -> None:
    await s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(deleted_ms=now_ms, updated_ms=now_ms))


async def record_use(s: AsyncSession, used: Mapping[int, int]) -> None:
    for key_id, ms in used.items():
        await s.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, (ApiKeyRow.last_used_ms.is_(None)) | (ApiKeyRow.last_used_ms < ms))
            .values(last_used_ms=ms)
        )
