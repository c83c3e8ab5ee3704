"""Password login behind its defences, in this order (magento.md §2.1, §6):

1. rate limits per client IP and per username (`limits`), before any work;
2. the throttle: 6 failed token requests for a username lock it for 30 min, whether or not the
   account exists — checked before any password hash is computed;
3. the password check (argon2id, off the event loop; a dummy hash for unknown users);
4. account lockout: too many wrong passwords lock an existing account for a while.

Unknown user, wrong password, locked, throttled and inactive all answer the same 401 body.
"""

from __future__ import annotations

from dataclasses import dataclass

from tillkey.errors import RateLimited, Unauthenticated
from tillkey.principal import UserType
from tillkey.runtime import Tillkey
from tillkey.security import audit
from tillkey.store import accounts as repo
from tillkey.store import throttle
from tillkey.store.accounts import Admin, Customer, username_key

SIGN_IN_FAILED = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
)
NO_ROLE = "More permissions are needed to access this."


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where a login comes from, for rate limits and the audit log."""

    ip: str
    user_agent: str = ""
    request_id: str | None = None


class LoginFailed(Unauthenticated):
    """The generic 401; `reason` is for the server log and audit only."""

    def __init__(self, reason: str) -> None:
        super().__init__(SIGN_IN_FAILED, detail=reason)
        self.reason = reason


class Logins:
    def __init__(self, tk: Tillkey) -> None:
        self.tk = tk

    async def admin(
        self, username: str, password: str, attempt: Attempt, *, complete: bool = True, by_email: bool = False
    ) -> Admin:
        """by_email: the login name is the admin's email (Medusa's emailpass), not the username.

        complete=False: a second factor is still to come, so a right password does not clear the
        throttle yet (call `succeeded` once the code passes): otherwise whoever knows the password
        could reset the failure count between guesses of the code."""
        admin = await self._login(UserType.ADMIN, username, password, attempt, complete, by_email)
        assert isinstance(admin, Admin)
        if admin.role_id is None:
            await self._audit(audit.LOGIN_FAILURE, attempt, UserType.ADMIN, username, admin.id, reason="no role")
            raise Unauthenticated(NO_ROLE, detail="admin has no role")
        return admin

    async def customer(self, email: str, password: str, attempt: Attempt) -> Customer:
        customer = await self._login(UserType.CUSTOMER, email, password, attempt)
        assert isinstance(customer, Customer)
        return customer

    async def _rate_limit(self, utype: UserType, key: str, attempt: Attempt) -> None:
        """The login limits, per client IP and per username; a refusal is answered after a pause."""
        try:
            await self.tk.ratelimiter.hit(self.tk.login_ip_limit, "login-ip", attempt.ip)
            await self.tk.ratelimiter.hit(self.tk.login_username_limit, "login-user", str(int(utype)), key)
        except RateLimited:
            await self.tk.pacer.pause()
            raise

    async def _login(
        self, utype: UserType, username: str, password: str, attempt: Attempt, complete: bool = True,
        by_email: bool = False,
    ) -> Admin | Customer:  # fmt: skip
        key = username_key(username)
        await self._rate_limit(utype, key, attempt)
        # Admission before any database work: logins beyond the hashing pool and its short queue
        # wait without holding database connections or write locks, or are shed (admission.py).
        async with self.tk.login_admission.slot():
            return await self._admitted(utype, username, key, password, attempt, complete, by_email)

    async def _admitted(
        self, utype: UserType, username: str, key: str, password: str, attempt: Attempt, complete: bool,
        by_email: bool = False,
    ) -> Admin | Customer:  # fmt: skip
        tk, s = self.tk, self.tk.settings
        now = tk.clock.now_int()
        async with tk.db.session() as db:
            count, lock_expires = await throttle.failures(db, key, utype)
            throttled = count >= s.login_throttle_max_failures and lock_expires > now
            if not throttled:
                account: Admin | Customer | None = (
                    (await (repo.admin_by_email if by_email else repo.admin_by_username)(db, username))
                    if utype == UserType.ADMIN
                    else await repo.customer_by_email(db, username)
                )
                locked_until = await throttle.account_lock(db, utype, account.id) if account else 0
        if throttled:
            await self._audit(audit.LOGIN_THROTTLED, attempt, utype, username, None)
            raise LoginFailed("throttled")
        ok = await tk.passwords.verify(account.password_hash if account else None, password)
        reason = None
        if account is None:
            reason = "unknown user"
        elif not ok:
            reason = "wrong password"
        elif locked_until > now:
            reason = "account locked"
        elif not account.is_active:
            reason = "account inactive"
        if reason is not None:
            locked = await self._failed(utype, key, account if reason == "wrong password" else None)
            await self._audit(
                audit.LOGIN_FAILURE, attempt, utype, username, account.id if account else None, reason=reason
            )
            if locked and account is not None:
                await self._audit(audit.ACCOUNT_LOCKED, attempt, utype, username, account.id)
            raise LoginFailed(reason)
        assert account is not None
        if complete:
            await self.succeeded(utype, username, account.id, attempt)
        await self._rehash_if_needed(utype, account, password)
        return account

    async def _audit(
        self, event: str, attempt: Attempt, utype: UserType, username: str, user_id: int | None, **details: object
    ) -> None:
        outcome = audit.SUCCESS if event == audit.LOGIN_SUCCESS else audit.FAILURE
        await self.tk.audit.record(
            event, outcome=outcome, actor_type=int(utype), actor_id=user_id, username=username[:255],
            ip=attempt.ip, user_agent=attempt.user_agent, request_id=attempt.request_id, details=details or None,
        )  # fmt: skip

    async def _failed(self, utype: UserType, key: str, wrong_password_for: Admin | Customer | None) -> bool:
        """Count a failure; True if it locked the account."""
        s = self.tk.settings
        now = self.tk.clock.now_int()
        async with self.tk.db.transaction() as db:
            await throttle.add_failure(db, key, utype, now, s.login_throttle_lock_seconds)
            if wrong_password_for is not None:
                if utype == UserType.ADMIN:
                    limit, seconds = s.admin_lockout_failures, s.admin_lockout_seconds
                else:
                    limit, seconds = s.customer_lockout_failures, s.customer_lockout_seconds
                return await throttle.add_account_failure(db, utype, wrong_password_for.id, now, limit, seconds)
        return False

    async def _rehash_if_needed(self, utype: UserType, account: Admin | Customer, password: str) -> None:
        # Raising the argon2 cost in settings upgrades each hash at its owner's next login.
        if not self.tk.passwords.needs_rehash(account.password_hash):
            return
        new = await self.tk.passwords.hash(password)
        async with self.tk.db.transaction() as db:
            if utype == UserType.ADMIN:
                await repo.set_admin_password_hash(db, account.id, new)
            else:
                await repo.set_customer_password_hash(db, account.id, new)

    async def unlock(self, utype: UserType, user_id: int, username: str) -> None:
        """Lift the account lock and the username throttle (`tillkey admin unlock`)."""
        async with self.tk.db.transaction() as db:
            await throttle.unlock_account(db, utype, user_id)
            await throttle.clear_failures(db, username_key(username), utype)
        await self.tk.audit.record(
            audit.ACCOUNT_UNLOCKED, username=username, details={"target_type": int(utype), "target_id": user_id}
        )

    async def succeeded(
        self, utype: UserType, username: str, user_id: int, attempt: Attempt, methods: tuple[str, ...] = ("pwd",)
    ) -> None:
        """A login passed every factor: clear the username throttle and the account's failures."""
        async with self.tk.db.transaction() as db:
            await throttle.clear_failures(db, username_key(username), utype)
            await throttle.reset_account(db, utype, user_id)
        await self._audit(audit.LOGIN_SUCCESS, attempt, utype, username, user_id, methods=list(methods))

    async def record_failure(self, utype: UserType, username: str, attempt: Attempt, reason: str) -> None:
        """A failed login step after the password (a wrong second-factor code): counts for the throttle."""
        await self._failed(utype, username_key(username), None)
        await self._audit(audit.LOGIN_FAILURE, attempt, utype, username, None, reason=reason)

    async def second_factor_gate(self, utype: UserType, username: str, attempt: Attempt) -> None:
        """Before a step after the password (a second-factor code, a first code at enrolment) is
        checked: the same rate limits as a password, and a username the throttle has locked gets no
        more guesses (LoginFailed), so a half-finished sign-in cannot guess codes without end."""
        key = username_key(username)
        await self._rate_limit(utype, key, attempt)
        async with self.tk.db.session() as db:
            count, lock_expires = await throttle.failures(db, key, utype)
        if count >= self.tk.settings.login_throttle_max_failures and lock_expires > self.tk.clock.now_int():
            await self._audit(audit.LOGIN_THROTTLED, attempt, utype, username, None)
            raise LoginFailed("throttled")
