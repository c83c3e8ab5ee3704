"""An admin changes their own password: the current one first (a stolen session or token alone
cannot take the account over), then the password policy. Every token and session of the account
ends, this one too: whoever held the old password keeps nothing made with it. Resetting someone
else's password is the operator's path (Accounts.reset_admin_password, the delegation rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tillkey import audit
from tillkey.accounts.signin.factors import Subject
from tillkey.crypto.passwords import check_policy
from tillkey.errors import InvalidRequest, NotFound
from tillkey.principal import UserType
from tillkey.store import accounts as repo
from tillkey.store.accounts import Admin

if TYPE_CHECKING:
    from tillkey.accounts.service import Accounts
    from tillkey.accounts.signin.budget import FailureBudget
    from tillkey.contracts import Audit, Hasher
    from tillkey.settings import Settings
    from tillkey.store.db import Database

WRONG = "The current password is wrong."


class OwnPassword:
    def __init__(
        self,
        *,
        db: Database,
        passwords: Hasher,
        audit: Audit,
        settings: Settings,
        budget: FailureBudget,
        accounts: Accounts,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.audit = audit
        self.settings = settings
        self.budget = budget
        self.accounts = accounts

    async def change(self, admin_id: int, current: str, new: str, *, ip: str) -> Admin:
        async with self.db.session() as s:
            admin = await repo.admin_by_id(s, admin_id)
        if admin is None or not admin.is_active:
            raise NotFound("The admin user doesn't exist.")
        # The current password is a first factor checked again: it goes through the sign-in's limits,
        # admission and failure budget (accounts/signin/budget.py), so guesses made here count toward
        # the same throttle and lockout as guesses at the login (a stolen session is no guessing oracle).
        budget, subject = self.budget, Subject(UserType.ADMIN, admin.username)
        await budget.limit(subject, ip)
        async with budget.admission():
            right = bool(current) and await self.passwords.verify(admin.password_hash, current, population="admin")
        if not right:
            await budget.spend(subject, admin, lockout=True)
            await self.audit.record(
                audit.ACCOUNT_CHANGED,
                outcome=audit.FAILURE,
                actor_type=int(UserType.ADMIN),
                actor_id=admin_id,
                username=admin.username,
                details={"change": "password change refused", "reason": "wrong current password"},
            )
            raise InvalidRequest(WRONG)
        if new == current:
            raise InvalidRequest("The new password must differ from the current one.")
        check_policy(new, min_length=self.settings.password_min_length, identifiers=(admin.username, admin.email))
        hashed = await self.passwords.hash(new)
        async with self.db.transaction() as s:
            await repo.set_admin_password_hash(s, admin_id, hashed)
            await self.audit.record_in(
                s,
                audit.ACCOUNT_CHANGED,
                actor_type=int(UserType.ADMIN),
                actor_id=admin_id,
                username=admin.username,
                details={"target_type": int(UserType.ADMIN), "target_id": admin_id, "change": "password changed"},
            )
        await self.accounts.sign_out_everywhere(UserType.ADMIN, admin_id, reason="password changed")
        return admin
