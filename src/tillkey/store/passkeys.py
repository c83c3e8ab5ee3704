"""Repository for passkeys (WebAuthn credentials) and their ceremonies' challenges.

Whatever spends something is one conditional statement whose row count says whether this caller
won: consuming a challenge (DELETE of a live row), moving a sign counter (UPDATE only upward), so
two requests racing with the same challenge or a cloned authenticator cannot both pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.principal import UserType
from tillkey.store.models import PasskeyRow, WebauthnChallengeRow


@dataclass(frozen=True, slots=True)
class Passkey:
    id: int
    user_type: UserType
    user_id: int
    credential_id: str  # base64url
    public_key: bytes
    sign_count: int
    backup_eligible: bool
    backup_state: bool
    transports: tuple[str, ...]
    aaguid: str
    name: str
    created_ms: int
    last_used_ms: int | None


@dataclass(frozen=True, slots=True)
class NewPasskey:
    user_type: UserType
    user_id: int
    credential_id: str
    public_key: bytes
    sign_count: int
    backup_eligible: bool
    backup_state: bool
    transports: tuple[str, ...]
    aaguid: str
    name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    purpose: str
    user_type: UserType
    user_id: int
    binding: str
    challenge: bytes
    user_verification: bool
    expires_ms: int


def _changed(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _owner(user_type: UserType, user_id: int) -> Any:
    if user_type == UserType.ADMIN:
        return PasskeyRow.admin_id == user_id
    if user_type == UserType.CUSTOMER:
        return PasskeyRow.customer_id == user_id
    raise ValueError(f"no passkeys for user type {int(user_type)}")


def _passkey(r: PasskeyRow) -> Passkey:
    admin = r.admin_id is not None
    return Passkey(
        r.id,
        UserType.ADMIN if admin else UserType.CUSTOMER,
        (r.admin_id if admin else r.customer_id) or 0,
        r.credential_id,
        r.public_key,
        r.sign_count,
        r.backup_eligible,
        r.backup_state,
        tuple(t for t in r.transports.split(",") if t),
        r.aaguid,
        r.name,
        r.created_ms,
        r.last_used_ms,
    )


async def add(s: AsyncSession, new: NewPasskey) -> Passkey:
    """Store a new passkey; a credential id already registered (to anyone) is a Conflict."""
    owner = {"admin_id": new.user_id} if new.user_type == UserType.ADMIN else {"customer_id": new.user_id}
    _owner(new.user_type, new.user_id)  # refuses other user types
    try:
        result = await s.execute(
            insert(PasskeyRow).values(
                **owner,
                credential_id=new.credential_id,
                public_key=new.public_key,
                sign_count=new.sign_count,
                backup_eligible=new.backup_eligible,
                backup_state=new.backup_state,
                transports=",".join(new.transports),
                aaguid=new.aaguid,
                name=new.name,
                created_ms=new.created_ms,
            )
        )
    except IntegrityError as exc:
        raise Conflict("This passkey is already registered.") from exc
    key = cast(CursorResult[Any], result).inserted_primary_key
    assert key is not None
    row = await s.get(PasskeyRow, key[0])
    assert row is not None
    return _passkey(row)


async def of(s: AsyncSession, user_type: UserType, user_id: int) -> list[Passkey]:
    rows = await s.scalars(select(PasskeyRow).where(_owner(user_type, user_id)).order_by(PasskeyRow.id))
    return [_passkey(r) for r in rows]


async def by_credential_id(s: AsyncSession, credential_id: str) -> Passkey | None:
    row = await s.scalar(select(PasskeyRow).where(PasskeyRow.credential_id == credential_id))
    return None if row is None else _passkey(row)


async def any_admin(s: AsyncSession) -> bool:
    """Has any admin a passkey (the console's sign-in page then offers passkey sign-in)?"""
    return await s.scalar(select(PasskeyRow.id).where(PasskeyRow.admin_id.is_not(None)).limit(1)) is not None


async def rename(s: AsyncSession, user_type: UserType, user_id: int, passkey_id: int, name: str) -> bool:
    result = await s.execute(
        update(PasskeyRow).where(PasskeyRow.id == passkey_id, _owner(user_type, user_id)).values(name=name)
    )
    return _changed(result) == 1


async def remove(s: AsyncSession, user_type: UserType, user_id: int, passkey_id: int) -> bool:
    result = await s.execute(delete(PasskeyRow).where(PasskeyRow.id == passkey_id, _owner(user_type, user_id)))
    return _changed(result) == 1


async def remove_all(s: AsyncSession, user_type: UserType, user_id: int) -> int:
    return _changed(await s.execute(delete(PasskeyRow).where(_owner(user_type, user_id))))


async def used(
    s: AsyncSession, passkey_id: int, old_count: int, new_count: int, backup_state: bool, now_ms: int
) -> bool:
    """Record a use: the counter only moves up (or stays 0 for authenticators without one), from
    the value the assertion was checked against. False: a concurrent use or a clone won."""
    moved = PasskeyRow.sign_count < new_count if new_count else PasskeyRow.sign_count == 0
    result = await s.execute(
        update(PasskeyRow)
        .where(PasskeyRow.id == passkey_id, PasskeyRow.sign_count == old_count, moved)
        .values(sign_count=new_count, backup_state=backup_state, last_used_ms=now_ms)
    )
    return _changed(result) == 1


# --- challenges ----------------------------------------------------------------------------------


async def put_challenge(s: AsyncSession, c: Challenge, now_ms: int) -> None:
    """Store a challenge, clearing expired ones (anyone's) on the way."""
    await s.execute(delete(WebauthnChallengeRow).where(WebauthnChallengeRow.expires_ms <= now_ms))
    await s.execute(
        insert(WebauthnChallengeRow).values(
            id=c.id,
            purpose=c.purpose,
            user_type=int(c.user_type),
            user_id=c.user_id,
            binding=c.binding,
            challenge=c.challenge,
            user_verification=c.user_verification,
            expires_ms=c.expires_ms,
        )
    )


async def take_challenge(s: AsyncSession, challenge_id: str, now_ms: int) -> Challenge | None:
    """Consume a live challenge: only the first caller gets it; an expired one is gone either way."""
    row = await s.get(WebauthnChallengeRow, challenge_id)
    if row is None:
        return None
    found = Challenge(
        row.id,
        row.purpose,
        UserType(row.user_type),
        row.user_id,
        row.binding,
        row.challenge,
        row.user_verification,
        row.expires_ms,
    )
    result = await s.execute(delete(WebauthnChallengeRow).where(WebauthnChallengeRow.id == challenge_id))
    if _changed(result) != 1 or found.expires_ms <= now_ms:
        return None
    return found
