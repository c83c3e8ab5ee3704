"""Login flood control and the failure budget: the sign-in state machine is their one caller.

- Rate limits per client IP and per name presented (`limits`), before any work; a refusal is
  answered after a pause (security/flood.py Pacer), so a closed-loop flood cannot spin on refusals.
- Admission (security/flood.py LoginAdmission): how many sign-ins work at once; the rest wait or are
  shed. The mechanisms live in security/flood.py; the throttle and lockout rows in store/throttle.py.
- The throttle (Magento's oauth/authentication_lock): failures per name and user type lock it,
  whether or not an account has that name. An existing account's failures count under its own
  name (`account_name`), whatever name it was reached by (username on Magento, email on Medusa)
  and whatever factor failed, so every surface and factor spends one budget.
- The lockout: an existing account's failures (first and second factor) lock the account itself.
Only a sign-in that passed every factor clears them.
- Recovery codes have a budget of their own per admin (`recovery_code_max_failures`), whatever
  name or surface they come through: an admin has two login names (username, and email on the
  Medusa surface), and these codes are the last factor standing when the phone is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.accounts.signin.factors import Account, Subject, account_name
from tillkey.errors import RateLimited
from tillkey.principal import UserType
from tillkey.store import throttle
from tillkey.store.accounts import username_key

if TYPE_CHECKING:
    from limits import RateLimitItem

    from tillkey.clock import Clock
    from tillkey.security.flood import LoginAdmission, Pacer
    from tillkey.security.ratelimit import RateLimiter
    from tillkey.settings import Settings
    from tillkey.store.db import Database


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """The login rate limits (TILLKEY_RATE_LIMIT_LOGIN_IP and _USERNAME, parsed once): every
    credential endpoint spends them, per client IP and per name presented."""

    limiter: RateLimiter
    per_ip: RateLimitItem | None
    per_name: RateLimitItem | None

    async def ip(self, ip: str) -> None:
        await self.limiter.hit(self.per_ip, "login-ip", ip)

    async def name(self, *key: str) -> None:
        await self.limiter.hit(self.per_name, *key)


@dataclass(frozen=True, slots=True)
class Standing:
    throttled: bool  # the name is locked: no secret is checked
    locked_until: int  # the account's lockout (0: none)


class FailureBudget:
    def __init__(
        self,
        *,
        limits: LoginLimits,
        pacer: Pacer,
        admission: LoginAdmission,
        db: Database,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.limits = limits
        self.pacer = pacer
        self.login_admission = admission
        self.db = db
        self.settings = settings
        self.clock = clock

    async def limit(self, subject: Subject, ip: str) -> None:
        """The login rate limits, per client IP and per name; a refusal is answered after a pause."""
        try:
            await self.limits.ip(ip)
            await self.limits.name("login-user", str(int(subject.user_type)), subject.key)
        except RateLimited:
            await self.pacer.pause()
            raise

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Sign-ins beyond the hashing pool and its short queue wait without holding database
        connections or write locks, or are shed (security/flood.py LoginAdmission)."""
        async with self.login_admission.slot():
            yield

    def _keys(self, subject: Subject, account: Account | None) -> list[str]:
        keys = [username_key(account_name(account))] if account is not None else []
        return keys if subject.key in keys else [*keys, subject.key]

    async def standing(self, db: AsyncSession, subject: Subject, account: Account | None) -> Standing:
        now, limit = self.clock.now_int(), self.settings.login_throttle_max_failures
        throttled = False
        for key in self._keys(subject, account):
            count, lock_expires = await throttle.failures(db, key, subject.user_type)
            throttled = throttled or (count >= limit and lock_expires > now)
        locked_until = await throttle.account_lock(db, subject.user_type, account.id) if account else 0
        return Standing(throttled, locked_until if locked_until > now else 0)

    async def spend(self, subject: Subject, account: Account | None, *, lockout: bool) -> bool:
        """Count one failure: under the account's own name if there is an account, else under the
        name presented; `lockout` (a wrong secret for an existing account) counts toward its lock.
        True if this failure locked the account."""
        s, now = self.settings, self.clock.now_int()
        key = username_key(account_name(account)) if account is not None else subject.key
        async with self.db.transaction() as db:
            await throttle.add_failure(db, key, subject.user_type, now, s.login_throttle_lock_seconds)
            if not lockout or account is None:
                return False
            if subject.user_type == UserType.ADMIN:
                limit, seconds = s.admin_lockout_failures, s.admin_lockout_seconds
            else:
                limit, seconds = s.customer_lockout_failures, s.customer_lockout_seconds
            return await throttle.add_account_failure(db, subject.user_type, account.id, now, limit, seconds)

    async def clear(self, subject: Subject, account: Account) -> None:
        """Every factor passed: clear the throttle of both names and the account's failures."""
        async with self.db.transaction() as db:
            for key in self._keys(subject, account):
                await throttle.clear_failures(db, key, subject.user_type)
            await throttle.reset_account(db, subject.user_type, account.id)

    async def unlock(self, user_type: UserType, user_id: int, name: str) -> None:
        """Lift the account lock and the name's throttle (`tillkey admin unlock`)."""
        async with self.db.transaction() as db:
            await throttle.unlock_account(db, user_type, user_id)
            await throttle.clear_failures(db, username_key(name), user_type)

    @staticmethod
    async def carry_lock(db: AsyncSession, user_type: UserType, user_id: int, until: int) -> None:
        """An imported account's lock (its source's, unix seconds), in the importer's transaction:
        kept until then, or longer when a lock here already runs longer."""
        await throttle.import_lock(db, int(user_type), user_id, until)


# The throttle's table counts wrong recovery codes per account under this user type, which no login
# uses, so the counts never mix with a login name's; in the database, so across processes.
RECOVERY_THROTTLE = 0


class RecoveryCodeBudget:
    def __init__(self, db: Database, settings: Settings, clock: Clock, user_type: UserType = UserType.ADMIN) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.kind = "admin" if user_type == UserType.ADMIN else f"user{int(user_type)}"

    async def exhausted(self, admin_id: int) -> bool:
        async with self.db.session() as s:
            failures, lock_expires = await throttle.failures(s, f"{self.kind}:{admin_id}", RECOVERY_THROTTLE)
        settings = self.settings
        return failures >= settings.recovery_code_max_failures and lock_expires > self.clock.now_int()

    async def spent(self, admin_id: int, *, ok: bool) -> None:
        key, now = f"{self.kind}:{admin_id}", self.clock.now_int()
        async with self.db.transaction() as s:
            if ok:
                await throttle.clear_failures(s, key, RECOVERY_THROTTLE)
            else:
                await throttle.add_failure(s, key, RECOVERY_THROTTLE, now, self.settings.login_throttle_lock_seconds)
