"""Repository for the login throttle (per username) and account lockout (per account)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import case, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import AccountLockRow, LoginFailureRow

R = TypeVar("R", LoginFailureRow, AccountLockRow)


async def _ensure_row(s: AsyncSession, model: type[R], key: tuple[Any, ...], new: R) -> None:
    """Make the row under `key` (`new`) unless it exists. Failures of one name arriving at once
    may all find none: one insert wins, the others' (refused, inside a savepoint) are dropped.
    The count itself is then one UPDATE, so concurrent failures never overwrite each other."""
    if await s.get(model, key) is not None:
        return
    try:
        async with s.begin_nested():
            s.add(new)
            await s.flush()
    except IntegrityError:
        pass  # made by a concurrent failure: counted on below


async def failures(s: AsyncSession, user_name: str, user_type: int) -> tuple[int, int]:
    """(failures_count, lock_expires_at) for a username; (0, 0) when there is no row."""
    row = await s.get(LoginFailureRow, (user_name, user_type))
    return (row.failures_count, row.lock_expires_at) if row else (0, 0)


async def add_failure(s: AsyncSession, user_name: str, user_type: int, now: int, lock_seconds: int) -> int:
    """Count one failure and extend the lock (Magento: every failure extends it). A row whose
    lock has run out starts again from zero, as Magento's minutely cleanup cron would leave it."""
    new = LoginFailureRow(user_name=user_name, user_type=user_type, failures_count=0, lock_expires_at=0)
    await _ensure_row(s, LoginFailureRow, (user_name, user_type), new)
    row = LoginFailureRow
    counted = await s.execute(
        update(row)
        .where(row.user_name == user_name, row.user_type == user_type)
        .values(
            failures_count=case((row.lock_expires_at <= now, 1), else_=row.failures_count + 1),
            lock_expires_at=now + lock_seconds,
        )
        .returning(row.failures_count)
        .execution_options(synchronize_session="fetch")
    )
    return int(counted.scalar_one())


async def clear_failures(s: AsyncSession, user_name: str, user_type: int) -> None:
    await s.execute(
        delete(LoginFailureRow).where(LoginFailureRow.user_name == user_name, LoginFailureRow.user_type == user_type)
    )


async def account_lock(s: AsyncSession, user_type: int, user_id: int) -> int:
    """When the account's lock expires (0: not locked)."""
    row = await s.get(AccountLockRow, (user_type, user_id))
    return row.lock_expires if row else 0


async def add_account_failure(
    s: AsyncSession, user_type: int, user_id: int, now: int, max_failures: int, lock_seconds: int
) -> bool:
    """Count a wrong password on an existing account; lock it at the threshold. True if it locked."""
    new = AccountLockRow(user_type=user_type, user_id=user_id, failures_num=0, lock_expires=0)
    await _ensure_row(s, AccountLockRow, (user_type, user_id), new)
    row = AccountLockRow
    reached = row.failures_num + 1 >= max_failures
    counted = await s.execute(
        update(row)
        .where(row.user_type == user_type, row.user_id == user_id)
        .values(
            failures_num=case((reached, 0), else_=row.failures_num + 1),
            lock_expires=case((reached, now + lock_seconds), else_=row.lock_expires),
        )
        .returning(row.failures_num)
        .execution_options(synchronize_session="fetch")
    )
    # Reset to 0 only by reaching the threshold (max_failures >= 1): this failure locked it.
    return int(counted.scalar_one()) == 0


async def reset_account(s: AsyncSession, user_type: int, user_id: int) -> None:
    await s.execute(
        update(AccountLockRow)
        .where(AccountLockRow.user_type == user_type, AccountLockRow.user_id == user_id)
        .values(failures_num=0)
    )


async def unlock_account(s: AsyncSession, user_type: int, user_id: int) -> None:
    await s.execute(
        delete(AccountLockRow).where(AccountLockRow.user_type == user_type, AccountLockRow.user_id == user_id)
    )


async def import_lock(s: AsyncSession, user_type: int, user_id: int, until: int) -> None:
    """An imported account's lock (its source's lock_expires, unix seconds): kept until then, or
    longer when a lock here already runs longer."""
    row = await s.get(AccountLockRow, (user_type, user_id), with_for_update=True)
    if row is None:
        s.add(AccountLockRow(user_type=user_type, user_id=user_id, failures_num=0, lock_expires=until))
    elif row.lock_expires < until:
        row.lock_expires = until
    await s.flush()
