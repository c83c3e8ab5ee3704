"""Repository for the login throttle (per username) and account lockout (per account)."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import AccountLockRow, LoginFailureRow


async def failures(s: AsyncSession, user_name: str, user_type: int) -> tuple[int, int]:
    """(failures_count, lock_expires_at) for a username; (0, 0) when there is no row."""
    row = await s.get(LoginFailureRow, (user_name, user_type))
    return (row.failures_count, row.lock_expires_at) if row else (0, 0)


async def add_failure(s: AsyncSession, user_name: str, user_type: int, now: int, lock_seconds: int) -> int:
    """Count one failure and extend the lock (Magento: every failure extends it). A row whose
    lock has run out starts again from zero, as Magento's minutely cleanup cron would leave it."""
    row = await s.get(LoginFailureRow, (user_name, user_type), with_for_update=True)
    if row is None:
        row = LoginFailureRow(user_name=user_name, user_type=user_type, failures_count=0, lock_expires_at=0)
        s.add(row)
    elif row.lock_expires_at <= now:
        row.failures_count = 0
    row.failures_count += 1
    row.lock_expires_at = now + lock_seconds
    await s.flush()
    return row.failures_count


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
    row = await s.get(AccountLockRow, (user_type, user_id), with_for_update=True)
    if row is None:
        row = AccountLockRow(user_type=user_type, user_id=user_id, failures_num=0, lock_expires=0)
        s.add(row)
    row.failures_num += 1
    if row.failures_num >= max_failures:
        row.failures_num = 0
        row.lock_expires = now + lock_seconds
        await s.flush()
        return True
    await s.flush()
    return False


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
