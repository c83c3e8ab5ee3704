"""Repository for admin two-factor auth: TOTP secrets (encrypted) and recovery codes (digests).

Every write that spends something — a time step, a recovery code — is one conditional UPDATE whose
row count says whether this caller won, so two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.store.models import AdminRecoveryCodeRow, AdminTfaRow

ALREADY_ACTIVE = "Two-factor auth is already active for this admin; another administrator must reset it first."


@dataclass(frozen=True, slots=True)
class TfaRecord:
    admin_id: int
    secret_enc: bytes
    active: bool
    last_step: int
    created_at: datetime


def _changed(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


async def get(s: AsyncSession, admin_id: int) -> TfaRecord | None:
    row = await s.get(AdminTfaRow, admin_id)
    if row is None:
        return None
    return TfaRecord(row.admin_id, row.secret_enc, row.active, row.last_step, row.created_at)


async def put_pending(s: AsyncSession, admin_id: int, secret_enc: bytes, now: datetime) -> None:
    """Store a new inactive secret, replacing an inactive one. An active one stays: Conflict."""
    await s.execute(delete(AdminTfaRow).where(AdminTfaRow.admin_id == admin_id, AdminTfaRow.active.is_(False)))
    if await s.get(AdminTfaRow, admin_id) is not None:
        raise Conflict(ALREADY_ACTIVE)
    s.add(AdminTfaRow(admin_id=admin_id, secret_enc=secret_enc, active=False, last_step=0, created_at=now))
    try:
        await s.flush()
    except IntegrityError as exc:  # a concurrent enrolment won the insert
        raise Conflict("Two-factor auth enrolment is in progress elsewhere; try again.") from exc


async def activate(s: AsyncSession, admin_id: int, step: int, code_digests: Iterable[str]) -> bool:
    """Turn a pending secret on, spending `step`, and replace the recovery codes. False if the
    secret is no longer pending (activated or reset meanwhile) or the step was already spent."""
    result = await s.execute(
        update(AdminTfaRow)
        .where(AdminTfaRow.admin_id == admin_id, AdminTfaRow.active.is_(False), AdminTfaRow.last_step < step)
        .values(active=True, last_step=step)
    )
    if _changed(result) != 1:
        return False
    await s.execute(delete(AdminRecoveryCodeRow).where(AdminRecoveryCodeRow.admin_id == admin_id))
    s.add_all(AdminRecoveryCodeRow(admin_id=admin_id, digest=d, used_at=None) for d in code_digests)
    await s.flush()
    return True


async def claim_step(s: AsyncSession, admin_id: int, step: int) -> bool:
    """Spend a TOTP time step: True only for the first caller with a step above the last one."""
    result = await s.execute(
        update(AdminTfaRow)
        .where(AdminTfaRow.admin_id == admin_id, AdminTfaRow.active.is_(True), AdminTfaRow.last_step < step)
        .values(last_step=step)
    )
    return _changed(result) == 1


async def use_recovery_code(s: AsyncSession, admin_id: int, digest: str, now: datetime) -> bool:
    """Spend a recovery code: True only for the first caller, and only while it is unused."""
    result = await s.execute(
        update(AdminRecoveryCodeRow)
        .where(
            AdminRecoveryCodeRow.admin_id == admin_id,
            AdminRecoveryCodeRow.digest == digest,
            AdminRecoveryCodeRow.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return _changed(result) == 1


async def unused_recovery_codes(s: AsyncSession, admin_id: int) -> int:
    count = await s.scalar(
        select(func.count())
        .select_from(AdminRecoveryCodeRow)
        .where(AdminRecoveryCodeRow.admin_id == admin_id, AdminRecoveryCodeRow.used_at.is_(None))
    )
    return int(count or 0)


async def delete_all(s: AsyncSession, admin_id: int) -> bool:
    """Forget the secret and the recovery codes. True if there was a secret."""
    await s.execute(delete(AdminRecoveryCodeRow).where(AdminRecoveryCodeRow.admin_id == admin_id))
    result = await s.execute(delete(AdminTfaRow).where(AdminTfaRow.admin_id == admin_id))
    return _changed(result) == 1
