"""Repository for LDAP providers' syncs (federation/directory.py): the lease one process holds
while it syncs a provider, and the last run's outcome (the console's health column)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import DirectoryDeactivationRow, DirectorySyncRow


@dataclass(frozen=True, slots=True)
class Health:
    provider_id: int
    running: bool
    last_started_ms: int | None
    last_finished_ms: int | None
    last_ok_ms: int | None
    last_error: str | None
    members: int
    created: int
    updated: int
    deactivated: int


@dataclass(frozen=True, slots=True)
class Counts:
    members: int = 0
    created: int = 0
    updated: int = 0
    deactivated: int = 0


def _health(r: DirectorySyncRow, now_ms: int) -> Health:
    return Health(
        r.provider_id,
        r.lease_owner is not None and r.lease_until_ms > now_ms,
        r.last_started_ms,
        r.last_finished_ms,
        r.last_ok_ms,
        r.last_error,
        r.members,
        r.created,
        r.updated,
        r.deactivated,
    )


async def ensure(s: AsyncSession, provider_id: int) -> None:
    """The provider's row, made once (a concurrent insert by another process is as good)."""
    if await s.get(DirectorySyncRow, provider_id) is not None:
        return
    try:
        async with s.begin_nested():
            s.add(
                DirectorySyncRow(
                    provider_id=provider_id, lease_until_ms=0, members=0, created=0, updated=0, deactivated=0
                )
            )
    except IntegrityError:
        pass


async def take_lease(s: AsyncSession, provider_id: int, owner: str, now_ms: int, until_ms: int) -> bool:
    """One conditional update: of several processes asking at once, exactly one finds the lease
    free (or expired, its holder gone) and takes it; the others see no row changed."""
    res = await s.execute(
        update(DirectorySyncRow)
        .where(
            DirectorySyncRow.provider_id == provider_id,
            or_(DirectorySyncRow.lease_owner.is_(None), DirectorySyncRow.lease_until_ms <= now_ms),
        )
        .values(lease_owner=owner, lease_until_ms=until_ms, last_started_ms=now_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def renew(s: AsyncSession, provider_id: int, owner: str, until_ms: int) -> bool:
    """Extend the lease its holder still holds (a long run renews it between batches)."""
    res = await s.execute(
        update(DirectorySyncRow)
        .where(DirectorySyncRow.provider_id == provider_id, DirectorySyncRow.lease_owner == owner)
        .values(lease_until_ms=until_ms)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def finish(
    s: AsyncSession, provider_id: int, owner: str, now_ms: int, counts: Counts | None, error: str | None
) -> None:
    """Release the lease (only its holder's) with the run's outcome."""
    values: dict[str, object] = {"lease_owner": None, "lease_until_ms": 0, "last_finished_ms": now_ms}
    values["last_error"] = error[:512] if error else None
    if counts is not None:
        values |= {
            "last_ok_ms": now_ms,
            "members": counts.members,
            "created": counts.created,
            "updated": counts.updated,
            "deactivated": counts.deactivated,
        }
    await s.execute(
        update(DirectorySyncRow)
        .where(DirectorySyncRow.provider_id == provider_id, DirectorySyncRow.lease_owner == owner)
        .values(**values)
    )


async def health(s: AsyncSession, now_ms: int) -> dict[int, Health]:
    rows = await s.scalars(select(DirectorySyncRow))
    return {r.provider_id: _health(r, now_ms) for r in rows}


async def deactivated(s: AsyncSession, provider_id: int, user_type: int) -> set[int]:
    """The accounts of this provider a sync deactivated."""
    rows = await s.scalars(
        select(DirectoryDeactivationRow.user_id).where(
            DirectoryDeactivationRow.provider_id == provider_id, DirectoryDeactivationRow.user_type == user_type
        )
    )
    return set(rows)


async def mark_deactivated(s: AsyncSession, provider_id: int, user_type: int, user_id: int, now_ms: int) -> None:
    await unmark(s, provider_id, user_type, user_id)
    s.add(
        DirectoryDeactivationRow(provider_id=provider_id, user_type=user_type, user_id=user_id, deactivated_ms=now_ms)
    )


async def unmark(s: AsyncSession, provider_id: int, user_type: int, user_id: int) -> None:
    await s.execute(
        delete(DirectoryDeactivationRow).where(
            DirectoryDeactivationRow.provider_id == provider_id,
            DirectoryDeactivationRow.user_type == user_type,
            DirectoryDeactivationRow.user_id == user_id,
        )
    )
