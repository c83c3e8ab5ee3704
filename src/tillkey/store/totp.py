"""Repository for two-factor auth of admins and customers: TOTP secrets (encrypted) and recovery
codes (digests), one pair of tables per user type with the same shape and rules.

Every write that spends something — a time step, a recovery code — is one conditional UPDATE whose
row count says whether this caller won, so two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.principal import UserType
from tillkey.store.models import AdminRecoveryCodeRow, AdminTfaRow, CustomerRecoveryCodeRow, CustomerTfaRow

ALREADY_ACTIVE = "Two-factor auth is already active for this admin; another administrator must reset it first."


@dataclass(frozen=True, slots=True)
class _Tables:
    tfa: Table
    codes: Table
    owner: str  # the owner's column in both

    def tfa_owner(self) -> Column[Any]:
        return self.tfa.c[self.owner]

    def codes_owner(self) -> Column[Any]:
        return self.codes.c[self.owner]


_TABLES = {
    UserType.ADMIN: _Tables(
        cast(Table, AdminTfaRow.__table__), cast(Table, AdminRecoveryCodeRow.__table__), "admin_id"
    ),
    UserType.CUSTOMER: _Tables(
        cast(Table, CustomerTfaRow.__table__), cast(Table, CustomerRecoveryCodeRow.__table__), "customer_id"
    ),
}


def _tables(user_type: UserType) -> _Tables:
    found = _TABLES.get(user_type)
    if found is None:
        raise ValueError(f"no second factor for user type {int(user_type)}")
    return found


@dataclass(frozen=True, slots=True)
class TfaRecord:
    admin_id: int  # the owner's id (an admin's or a customer's, by `user_type`)
    secret_enc: bytes
    active: bool
    last_step: int
    created_at: datetime
    user_type: UserType = UserType.ADMIN


def _changed(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


async def get(s: AsyncSession, owner_id: int, user_type: UserType = UserType.ADMIN) -> TfaRecord | None:
    t = _tables(user_type)
    row = (
        await s.execute(
            select(t.tfa.c.secret_enc, t.tfa.c.active, t.tfa.c.last_step, t.tfa.c.created_at).where(
                t.tfa_owner() == owner_id
            )
        )
    ).first()
    if row is None:
        return None
    return TfaRecord(owner_id, row.secret_enc, row.active, row.last_step, row.created_at, user_type)


async def put_pending(
    s: AsyncSession, owner_id: int, secret_enc: bytes, now: datetime, user_type: UserType = UserType.ADMIN
) -> None:
    """Store a new inactive secret, replacing an inactive one. An active one stays: Conflict."""
    t = _tables(user_type)
    await s.execute(delete(t.tfa).where(t.tfa_owner() == owner_id, t.tfa.c.active.is_(False)))
    if await get(s, owner_id, user_type) is not None:
        raise Conflict(ALREADY_ACTIVE)
    try:
        await s.execute(
            insert(t.tfa).values(
                {t.owner: owner_id, "secret_enc": secret_enc, "active": False, "last_step": 0, "created_at": now}
            )
        )
    except IntegrityError as exc:  # a concurrent enrolment won the insert
        raise Conflict("Two-factor auth enrolment is in progress elsewhere; try again.") from exc


async def put_imported(
    s: AsyncSession, owner_id: int, secret_enc: bytes, now: datetime, user_type: UserType = UserType.ADMIN
) -> None:
    """An active secret moved from another system (the owner's app already has it): replaces none."""
    t = _tables(user_type)
    if await get(s, owner_id, user_type) is not None:
        raise Conflict(ALREADY_ACTIVE)
    await s.execute(
        insert(t.tfa).values(
            {t.owner: owner_id, "secret_enc": secret_enc, "active": True, "last_step": 0, "created_at": now}
        )
    )


async def activate(
    s: AsyncSession, owner_id: int, step: int, code_digests: Iterable[str], user_type: UserType = UserType.ADMIN
) -> bool:
    """Turn a pending secret on, spending `step`, and replace the recovery codes. False if the
    secret is no longer pending (activated or reset meanwhile) or the step was already spent."""
    t = _tables(user_type)
    result = await s.execute(
        update(t.tfa)
        .where(t.tfa_owner() == owner_id, t.tfa.c.active.is_(False), t.tfa.c.last_step < step)
        .values(active=True, last_step=step)
    )
    if _changed(result) != 1:
        return False
    await replace_recovery_codes(s, owner_id, code_digests, user_type)
    return True


async def replace_recovery_codes(
    s: AsyncSession, owner_id: int, code_digests: Iterable[str], user_type: UserType = UserType.ADMIN
) -> None:
    t = _tables(user_type)
    await s.execute(delete(t.codes).where(t.codes_owner() == owner_id))
    rows = [{t.owner: owner_id, "digest": d, "used_at": None} for d in code_digests]
    if rows:
        await s.execute(insert(t.codes), rows)


async def claim_step(s: AsyncSession, owner_id: int, step: int, user_type: UserType = UserType.ADMIN) -> bool:
    """Spend a TOTP time step: True only for the first caller with a step above the last one."""
    t = _tables(user_type)
    result = await s.execute(
        update(t.tfa)
        .where(t.tfa_owner() == owner_id, t.tfa.c.active.is_(True), t.tfa.c.last_step < step)
        .values(last_step=step)
    )
    return _changed(result) == 1


async def use_recovery_code(
    s: AsyncSession, owner_id: int, digest: str, now: datetime, user_type: UserType = UserType.ADMIN
) -> bool:
    """Spend a recovery code: True only for the first caller, and only while it is unused."""
    t = _tables(user_type)
    result = await s.execute(
        update(t.codes)
        .where(t.codes_owner() == owner_id, t.codes.c.digest == digest, t.codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    return _changed(result) == 1


async def unused_recovery_codes(s: AsyncSession, owner_id: int, user_type: UserType = UserType.ADMIN) -> int:
    t = _tables(user_type)
    count = await s.scalar(
        select(func.count()).select_from(t.codes).where(t.codes_owner() == owner_id, t.codes.c.used_at.is_(None))
    )
    return int(count or 0)


async def delete_all(s: AsyncSession, owner_id: int, user_type: UserType = UserType.ADMIN) -> bool:
    """Forget the secret and the recovery codes. True if there was a secret."""
    t = _tables(user_type)
    await s.execute(delete(t.codes).where(t.codes_owner() == owner_id))
    result = await s.execute(delete(t.tfa).where(t.tfa_owner() == owner_id))
    return _changed(result) == 1
