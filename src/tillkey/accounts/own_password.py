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
    from tillkey.runtime import Tillkey

WRONG = "The current password is wrong."


async def change_own_password(tk: Tillkey, admin_id: int, current: str, new: str, *, ip: str) -> Admin:
    async with tk.db.session() as s:
        admin = await repo.admin_by_id(s, admin_id)
    if admin is None or not admin.is_active:
        raise NotFound("The admin user doesn't exist.")
    # The current password is a first factor checked again: it goes through the sign-in's limits,
    # admission and failure budget (accounts/signin/budget.py), so guesses made here count toward
    # the same throttle and lockout as guesses at the login (a stolen session is no guessing oracle).
    budget, subject = tk.services.login_budget, Subject(UserType.ADMIN, admin.username)
    await budget.limit(subject, ip)
    async with budget.admission():
        right = bool(current) and await tk.passwords.verify(admin.password_hash, current, population="admin")
    if not right:
        await budget.spend(subject, admin, lockout=True)
        await tk.audit.record(
            audit.ACCOUNT_CHANGED, outcome=audit.FAILURE, actor_type=int(UserType.ADMIN), actor_id=admin_id,
            username=admin.username, details={"change": "password change refused", "reason": "wrong current password"},
        )  # fmt: skip
        raise InvalidRequest(WRONG)
    if new == current:
        raise InvalidRequest("The new password must differ from the current one.")
    check_policy(new, min_length=tk.settings.password_min_length, identifiers=(admin.username, admin.email))
    hashed = await tk.passwords.hash(new)
    async with tk.db.transaction() as s:
        await repo.set_admin_password_hash(s, admin_id, hashed)
        await tk.audit.record_in(
            s, audit.ACCOUNT_CHANGED, actor_type=int(UserType.ADMIN), actor_id=admin_id, username=admin.username,
            details={"target_type": int(UserType.ADMIN), "target_id": admin_id, "change": "password changed"},
        )  # fmt: skip
    await tk.services.accounts.sign_out_everywhere(UserType.ADMIN, admin_id, reason="password changed")
    return admin
