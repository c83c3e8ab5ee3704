"""Repository for Medusa-style auth identities (provider + login name -> account) and password
reset tokens (by keyed digest, single use)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.store.accounts import username_key
from tillkey.store.models import AuthIdentityRow, PasswordResetRow


@dataclass(frozen=True, slots=True)
class Identity:
    id: int
    provider: str
    actor_type: str
    entity_id: str
    password_hash: str | None
    user_type: int | None
    user_id: int | None


def _identity(r: AuthIdentityRow) -> Identity:
    return Identity(r.id, r.provider, r.actor_type, r.entity_id, r.password_hash, r.user_type, r.user_id)


async def find(s: AsyncSession, provider: str, actor_type: str, entity_id: str) -> Identity | None:
    row = await s.scalar(
        select(AuthIdentityRow).where(
            AuthIdentityRow.provider == provider, AuthIdentityRow.actor_type == actor_type,
            AuthIdentityRow.entity_key == username_key(entity_id),
        )
    )  # fmt: skip
    return _identity(row) if row else None


async def ids_for(
    s: AsyncSession, actor_type: str, *, entity_id: str | None, user_type: int | None, user_id: int | None
) -> list[int]:
    """Identities of an account: any provider's for this login name, and any linked to the account."""
    cond = []
    if entity_id is not None:
        cond.append(
            (AuthIdentityRow.actor_type == actor_type) & (AuthIdentityRow.entity_key == username_key(entity_id))
        )
    if user_type is not None and user_id is not None:
        cond.append((AuthIdentityRow.user_type == user_type) & (AuthIdentityRow.user_id == user_id))
    if not cond:
        return []
    return list(await s.scalars(select(AuthIdentityRow.id).where(or_(*cond))))


async def by_id(s: AsyncSession, identity_id: int) -> Identity | None:
    row = await s.get(AuthIdentityRow, identity_id)
    return _identity(row) if row else None


async def create(
    s: AsyncSession, *, provider: str, actor_type: str, entity_id: str, password_hash: str | None,
    user_type: int | None, user_id: int | None, now_ms: int,
) -> Identity:  # fmt: skip
    row = AuthIdentityRow(
        provider=provider, actor_type=actor_type, entity_id=entity_id, entity_key=username_key(entity_id),
        password_hash=password_hash, user_type=user_type, user_id=user_id, created_ms=now_ms,
    )  # fmt: skip
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict("Identity with email already exists") from exc
    return _identity(row)


async def link(s: AsyncSession, identity_id: int, user_type: int, user_id: int, *, force: bool = False) -> bool:
    """Attach an account to an identity that has none yet (False if another request was first);
    force: to this account whatever it was linked to."""
    cond = [AuthIdentityRow.id == identity_id]
    if not force:
        cond.append(AuthIdentityRow.user_id.is_(None))
    res = await s.execute(
        update(AuthIdentityRow).where(*cond).values(user_type=user_type, user_id=user_id, password_hash=None)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def add_reset(s: AsyncSession, digest: str, user_type: int, user_id: int, expires_ms: int) -> None:
    # A new token replaces every earlier one of this account (as Medusa does).
    await s.execute(
        delete(PasswordResetRow).where(PasswordResetRow.user_type == user_type, PasswordResetRow.user_id == user_id)
    )
    s.add(PasswordResetRow(digest=digest, user_type=user_type, user_id=user_id, expires_ms=expires_ms))


async def consume_reset(s: AsyncSession, digest: str, now_ms: int) -> tuple[int, int] | None:
    """Spend a reset token atomically: (user_type, user_id) once, None ever after or when expired."""
    row = await s.get(PasswordResetRow, digest)
    if row is None or row.used_ms is not None or row.expires_ms <= now_ms:
        return None
    res = await s.execute(
        update(PasswordResetRow)
        .where(PasswordResetRow.digest == digest, PasswordResetRow.used_ms.is_(None))
        .values(used_ms=now_ms)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        return None
    return row.user_type, row.user_id
