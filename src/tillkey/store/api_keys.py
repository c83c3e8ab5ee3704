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
# A secret key imported from Medusa, not yet presented: Tillkey never saw the raw key, so it keeps
# Medusa's verifier (scrypt of the key with a per-key salt, medusa.md §3) until the key's first use
# replaces it with the keyed digest every other key has. Stored without a column of its own: the
# digest holds this prefix and the salt, `public_token` (publishable keys' column, unused by secret
# ones) the scrypt hex; `_key` hands them out as `legacy` only.
LEGACY_SCRYPT = "medusa-scrypt:"


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
    legacy: tuple[str, str] | None = None  # an imported Medusa key not yet presented: (salt, scrypt hex)


def _key(r: ApiKeyRow) -> ApiKey:
    legacy = None
    public = r.public_token
    if r.digest.startswith(LEGACY_SCRYPT):
        legacy, public = (r.digest[len(LEGACY_SCRYPT) :], r.public_token or ""), None
    return ApiKey(
        r.id,
        r.type,
        r.title,
        r.digest,
        public,
        r.redacted,
        tuple(x for x in r.resources.split("\n") if x),
        r.created_by,
        r.created_ms,
        r.updated_ms,
        r.last_used_ms,
        r.revoked_ms,
        r.revoked_by,
        r.deleted_ms,
        legacy,
    )


async def create(
    s: AsyncSession,
    *,
    type: str,
    title: str,
    digest: str,
    public_token: str | None,
    redacted: str,
    resources: tuple[str, ...],
    created_by: int | None,
    now_ms: int,
) -> ApiKey:
    row = ApiKeyRow(
        type=type,
        title=title,
        digest=digest,
        public_token=public_token,
        redacted=redacted,
        resources="\n".join(resources),
        created_by=created_by,
        created_ms=now_ms,
        updated_ms=now_ms,
    )
    s.add(row)
    await s.flush()
    return _key(row)


async def create_imported(
    s: AsyncSession,
    *,
    type: str,
    title: str,
    digest: str,
    public_token: str | None,
    redacted: str,
    resources: tuple[str, ...],
    created_by: int | None,
    created_ms: int,
    revoked_ms: int | None,
    now_ms: int,
) -> ApiKey:
    """A key moved from Medusa: its own times, and for a secret key its scrypt verifier
    (`digest` = LEGACY_SCRYPT + salt, `public_token` = the scrypt hex)."""
    row = ApiKeyRow(
        type=type,
        title=title,
        digest=digest,
        public_token=public_token,
        redacted=redacted,
        resources="\n".join(resources),
        created_by=created_by,
        created_ms=created_ms,
        updated_ms=now_ms,
        revoked_ms=revoked_ms,
    )
    s.add(row)
    await s.flush()
    return _key(row)


async def imported_id(s: AsyncSession, *, type: str, redacted: str, created_ms: int) -> int | None:
    """This Medusa key's id here, if imported already. Its digest changes at first use, so an
    import run knows it by what stays: its type, redacted form and creation time."""
    found = await s.scalar(
        select(ApiKeyRow.id).where(
            ApiKeyRow.type == type,
            ApiKeyRow.redacted == redacted,
            ApiKeyRow.created_ms == created_ms,
            ApiKeyRow.deleted_ms.is_(None),
        )
    )
    return None if found is None else int(found)


async def imported_exists(s: AsyncSession, *, type: str, redacted: str, created_ms: int) -> bool:
    return await imported_id(s, type=type, redacted=redacted, created_ms=created_ms) is not None


async def refresh_imported(
    s: AsyncSession,
    key_id: int,
    *,
    title: str,
    resources: tuple[str, ...],
    created_by: int | None,
    revoked_ms: int | None,
    now_ms: int,
) -> None:
    """An import run's `--on-conflict update` of a key it moved before (the service decides what)."""
    await s.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id)
        .values(
            title=title,
            resources="\n".join(resources),
            created_by=created_by,
            revoked_ms=revoked_ms,
            updated_ms=now_ms,
        )
    )


async def upgrade_legacy(s: AsyncSession, key_id: int, digest: str, now_ms: int) -> bool:
    """An imported key was presented and matched: from now on it is found by its keyed digest.
    False when another process upgraded it first (the same digest: nothing left to do)."""
    res = await s.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.digest.startswith(LEGACY_SCRYPT))
        .values(digest=digest, public_token=None, updated_ms=now_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


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
