"""Repository for Medusa-style auth identities (provider + login name -> account) and password
reset tokens (by keyed digest, single use)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.store import bounds
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
    created_ms: int = 0


def _identity(r: AuthIdentityRow) -> Identity:
    return Identity(r.id, r.provider, r.actor_type, r.entity_id, r.password_hash, r.user_type, r.user_id, r.created_ms)


async def find(s: AsyncSession, provider: str, actor_type: str, entity_id: str) -> Identity | None:
    row = await s.scalar(
        select(AuthIdentityRow).where(
            AuthIdentityRow.provider == provider,
            AuthIdentityRow.actor_type == actor_type,
            AuthIdentityRow.entity_key == username_key(entity_id),
        )
    )
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
    s: AsyncSession,
    *,
    provider: str,
    actor_type: str,
    entity_id: str,
    password_hash: str | None,
    user_type: int | None,
    user_id: int | None,
    now_ms: int,
) -> Identity:
    row = AuthIdentityRow(
        provider=provider,
        actor_type=actor_type,
        entity_id=entity_id,
        entity_key=username_key(entity_id),
        password_hash=password_hash,
        user_type=user_type,
        user_id=user_id,
        created_ms=now_ms,
    )
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


async def add_reset(
    s: AsyncSession, digest: str, user_type: int, user_id: int, expires_ms: int, *, now_ms: int, limit: int
) -> bool:
    """Add a reset token unless the account already had `limit` issued within a token's lifetime
    (False: nothing added). Earlier tokens stay valid: a new request never voids one already
    mailed (Medusa deletes them, so anyone could keep a victim's token void). Counted in the
    database under a per-account lock, so the bound holds across processes."""
    await bounds.serialize(s, "password_resets", user_type, user_id)
    s.add(PasswordResetRow(digest=digest, user_type=user_type, user_id=user_id, expires_ms=expires_ms))
    await s.flush()  # the first write: on SQLite it takes the lock before anything is counted
    mine = (PasswordResetRow.user_type == user_type, PasswordResetRow.user_id == user_id)
    await s.execute(delete(PasswordResetRow).where(*mine, PasswordResetRow.expires_ms <= now_ms))
    # Every token issued within the lifetime counts, used or not: so does the request that made it.
    issued = await s.scalar(select(func.count()).select_from(PasswordResetRow).where(*mine))
    if int(issued or 0) > limit:
        await s.execute(delete(PasswordResetRow).where(PasswordResetRow.digest == digest))
        return False
    return True


async def consume_reset(s: AsyncSession, digest: str, user_type: int, now_ms: int) -> tuple[int, int] | None:
    """Spend a reset token of `user_type` atomically: (user_type, user_id) once, None ever after,
    when expired, or when it is another actor type's (then it stays unspent for its own route)."""
    row = await s.get(PasswordResetRow, digest)
    if row is None or row.used_ms is not None or row.expires_ms <= now_ms or row.user_type != user_type:
        return None
    res = await s.execute(
        update(PasswordResetRow)
        .where(
            PasswordResetRow.digest == digest,
            PasswordResetRow.used_ms.is_(None),
            PasswordResetRow.user_type == user_type,
        )
        .values(used_ms=now_ms)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        return None
    return row.user_type, row.user_id


async def void_resets(s: AsyncSession, user_type: int, user_id: int) -> None:
    """The password was reset: the account's other outstanding tokens must not reset it again."""
    await s.execute(
        delete(PasswordResetRow).where(PasswordResetRow.user_type == user_type, PasswordResetRow.user_id == user_id)
    )


async def purge_expired_resets(s: AsyncSession, now_ms: int) -> None:
    await s.execute(delete(PasswordResetRow).where(PasswordResetRow.expires_ms <= now_ms))


async def purge_stale_registrations(s: AsyncSession, before_ms: int) -> None:
    """Registrations that never became an account, older than `before_ms`: their tokens are refused
    already (accounts/medusa_auth.py), so the rows only took space."""
    await s.execute(
        delete(AuthIdentityRow).where(AuthIdentityRow.user_id.is_(None), AuthIdentityRow.created_ms < before_ms)
    )
