"""The sign-in state machine: every surface signs people in through `SignIn`, none sequences it.

    1 limits  →  2 admission  →  3 throttle  →  4 first factor  →  5 second factor  →  6 issue

1. rate limits per client IP and per name presented, before any work (budget.py);
2. admission: sign-ins past the hashing pool wait in a bounded room or are shed (503);
3. the throttle: a name (or account) with too many failures is refused before any secret is
   checked; an account's lockout is read here and judged after the check, so it costs the same;
4. the first factor (factors.py: a password today) proves the subject; an unknown name is checked
   against a dummy at a stored hash's cost; then the account's standing (locked, inactive, no role,
   an admin whose identity provider is mandatory signing in any other way: factors.sso_only) and,
   under TILLKEY_CUSTOMER_EMAIL_VERIFICATION / TILLKEY_ADMIN_EMAIL_VERIFICATION=required, the
   account's verified address
   (`VerificationRequired`: a generic 401 that Medusa's login renders as `verification_required`);
5. the second factor (a TOTP or recovery code, a passkey), when the account has one or policy requires
   one: in the same request (Magento's provider endpoint, Medusa's "otp"), or later through
   `resume` (the console's code page, forced enrolment), which re-enters at step 1 for the account
   the first factor proved. Until it passes, nothing is cleared: a right password never resets
   the count of wrong codes;
6. issue: only now are the failures cleared and the sign-in audited; then `issue` mints what the
   surface hands out (issue.py: a login token; the console: a session).

Every failure of steps 3-5, on every surface and factor, spends the same budget (budget.py) and
raises `LoginFailed`: one generic 401 whose reason goes only to the audit log. `SecondFactorDue`
is the one non-failure stop: the surface renders it (a 400 naming the provider, a code page, the
enrolment page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from tillkey import audit
from tillkey.accounts.signin.budget import FailureBudget
from tillkey.accounts.signin.factors import (
    PHISHING_RESISTANT,
    Account,
    ExternalAssertion,
    FactorParts,
    FirstFactor,
    SecondFactor,
    Subject,
    account_by_id,
    account_name,
    passkey_required,
    second_factor_enrolled,
    sso_only,
)
from tillkey.errors import Unauthenticated
from tillkey.principal import UserType
from tillkey.store import email_verifications
from tillkey.store.accounts import Admin

if TYPE_CHECKING:
    from tillkey.settings import Settings
    from tillkey.store.db import Database

SIGN_IN_FAILED = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
)
NO_ROLE = "More permissions are needed to access this."

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where a sign-in comes from, for rate limits and the audit log."""

    ip: str
    user_agent: str = ""
    request_id: str | None = None


class LoginFailed(Unauthenticated):
    """The generic 401; `reason` is for the server log and audit only."""

    def __init__(self, reason: str) -> None:
        super().__init__(SIGN_IN_FAILED, detail=reason)
        self.reason = reason


class VerificationRequired(LoginFailed):
    """The password was right but the account's email address is unverified and
    TILLKEY_CUSTOMER_EMAIL_VERIFICATION (customers) or TILLKEY_ADMIN_EMAIL_VERIFICATION (admins) is
    "required". The rule is this machine's, on every surface; each refuses in its own wire format:
    a LoginFailed, so the generic 401 wherever a surface says nothing more (Magento's token
    endpoints, GraphQL); the console says the address is to be verified (only the password's
    holder gets this far); Medusa's login answers `verification_required` with a token good only
    for /auth/verification (accounts/medusa_verification.py)."""

    def __init__(self, user_type: UserType, account: Account) -> None:
        super().__init__("email not verified")
        self.user_type = user_type
        self.account = account


class SecondFactorFailed(LoginFailed):
    """A wrong second factor after a right first one: surfaces may say "invalid code" (the
    password was right, and the one who typed it knows that already)."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who passed every factor, and with which (RFC 8176 amr values)."""

    user_type: UserType
    account: Account
    amr: tuple[str, ...]

    @property
    def user_id(self) -> int:
        return self.account.id

    @property
    def name(self) -> str:
        return account_name(self.account)


@dataclass(frozen=True, slots=True)
class SecondFactorDue:
    """The first factor passed and a second is due: `enrolled` False means none is set up yet
    (the policy requires one, or the surface signs in with that factor only)."""

    user_type: UserType
    account: Account
    enrolled: bool
    amr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Issued(Generic[T]):
    who: SignedIn
    credential: T


@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in whose first factor passed in an earlier request (the console's pending session)."""

    user_type: UserType
    user_id: int
    name: str  # for the rate limits, before the account is read
    amr: tuple[str, ...] = ("pwd",)


Issue = Callable[[SignedIn], Awaitable[T]]


def proved(second: SecondFactor) -> tuple[str, ...]:
    """The amr values a passed second factor adds: its own, or what it proved in detail (a
    passkey: hwk or swk, user, and mfa when the authenticator verified the user)."""
    return tuple(getattr(second, "proved", ())) or (second.amr,)


def used_details(second: SecondFactor) -> dict[str, object]:
    return dict(getattr(second, "used_details", None) or {})


def asserted(first: FirstFactor) -> tuple[str, ...]:
    """What a first factor vouches for beyond itself (factors.py ExternalAssertion: "mfa" when an
    external provider is trusted to report its second factor, and "hwk"/"swk" when that was a key);
    most factors vouch for nothing. A key without "mfa" vouches for nothing either."""
    extra = tuple(getattr(first, "asserted", ()))
    if "mfa" not in extra:
        return ()
    return ("mfa", *(a for a in extra if a in PHISHING_RESISTANT))


def email_verification_required(settings: Settings, user_type: UserType) -> bool:
    """TILLKEY_CUSTOMER_EMAIL_VERIFICATION / TILLKEY_ADMIN_EMAIL_VERIFICATION (Medusa's
    authVerificationsPerActor: "customer", "user")."""
    if user_type == UserType.CUSTOMER:
        return settings.customer_email_verification == "required"
    return user_type == UserType.ADMIN and settings.admin_email_verification == "required"


async def email_unverified(settings: Settings, db: Database, user_type: UserType, account: Account) -> bool:
    """Is this account's current address still to be verified before it may sign in with a
    password (TILLKEY_CUSTOMER_EMAIL_VERIFICATION / TILLKEY_ADMIN_EMAIL_VERIFICATION=required)?
    Also asked when a Medusa registration token is first renewed into the customer it created
    (accounts/medusa_auth.py)."""
    if not email_verification_required(settings, user_type):
        return False
    async with db.session() as s:
        return await email_verifications.verified_at(s, int(user_type), account.id, account.email) is None


class SignIn:
    def __init__(self, *, budget: FailureBudget, parts: FactorParts) -> None:
        self.budget = budget
        self.parts = parts  # what the factors check against (its settings, database, audit sink)

    async def begin(
        self,
        subject: Subject,
        first: FirstFactor,
        attempt: Attempt,
        issue: Issue[T],
        *,
        second: SecondFactor | None = None,
    ) -> Issued[T] | SecondFactorDue:
        await self.budget.limit(subject, attempt.ip)  # 1
        async with self.budget.admission():  # 2
            account, locked_until = await self._throttle(subject, first, attempt)  # 3
            account = await self._first_factor(subject, first, account, locked_until, attempt)  # 4
            await self._verified(subject, first, account, attempt)  # 4: a password's address verified
            amr = (*(tuple(getattr(first, "proved", ())) or (first.amr,)), *asserted(first))
            outcome = await self._second_factor(subject, account, amr, second, attempt)  # 5
        if isinstance(outcome, SecondFactorDue):
            return outcome
        return await self._issue(subject, outcome, attempt, issue)  # 6

    async def resume(
        self, pending: Pending, second: SecondFactor, attempt: Attempt, issue: Issue[T]
    ) -> Issued[T] | SecondFactorDue:
        """The second factor of a sign-in whose first passed earlier (`Pending`)."""
        subject = Subject(pending.user_type, pending.name)
        await self.budget.limit(subject, attempt.ip)  # 1
        async with self.budget.admission():  # 2
            account = await self._throttle_pending(subject, pending, attempt)  # 3
            await self._standing(subject, account, attempt)  # 4: carried; the account may have changed
            outcome = await self._second_factor(subject, account, pending.amr, second, attempt)  # 5
        if isinstance(outcome, SecondFactorDue):
            return outcome
        return await self._issue(subject, outcome, attempt, issue)  # 6

    # --- the steps ----------------------------------------------------------------------------

    async def _throttle(self, subject: Subject, first: FirstFactor, attempt: Attempt) -> tuple[Account | None, int]:
        async with self.parts.db.session() as db:
            account = await first.locate(db, subject)
            standing = await self.budget.standing(db, subject, account)
        if standing.throttled:
            await self._audit(audit.LOGIN_THROTTLED, attempt, subject, None)
            raise LoginFailed("throttled")
        return account, standing.locked_until

    async def _throttle_pending(self, subject: Subject, pending: Pending, attempt: Attempt) -> Account:
        async with self.parts.db.session() as db:
            account = await account_by_id(db, pending.user_type, pending.user_id)
            standing = await self.budget.standing(db, subject, account)
        if account is None:
            await self._audit(audit.LOGIN_FAILURE, attempt, subject, None, reason="account gone")
            raise LoginFailed("account gone")
        if standing.throttled:
            await self._audit(audit.LOGIN_THROTTLED, attempt, subject, account.id)
            raise LoginFailed("throttled")
        if standing.locked_until:
            # No more guesses for a locked account; refused attempts are not failures.
            await self._audit(audit.LOGIN_FAILURE, attempt, subject, account.id, reason="account locked")
            raise LoginFailed("account locked")
        return account

    async def _first_factor(
        self, subject: Subject, first: FirstFactor, account: Account | None, locked_until: int, attempt: Attempt
    ) -> Account:
        ok = await first.verify(self.parts, subject, account)
        reason = None
        if account is None:
            reason = "unknown user"
        elif not ok:
            reason = first.wrong
        elif locked_until:
            reason = "account locked"
        elif not account.is_active:
            reason = "account inactive"
        elif first.amr != ExternalAssertion.amr and await sso_only(self.parts, account):
            # Right, but not this way: the same generic 401, so a stolen password learns nothing
            # (not even that it is right), and no lockout (that would lock the provider out too).
            reason = "identity provider required"
        if reason is not None:
            await self._failed(subject, account, attempt, reason, lockout=reason == first.wrong)
            raise LoginFailed(reason)
        assert account is not None
        await first.passed(self.parts, account)
        await self._standing(subject, account, attempt)
        return account

    async def _standing(self, subject: Subject, account: Account, attempt: Attempt) -> None:
        """May this account sign in at all (checked after the first factor, so only its owner
        learns the answer)?"""
        if not account.is_active:
            await self._audit(audit.LOGIN_FAILURE, attempt, subject, account.id, reason="account inactive")
            raise LoginFailed("account inactive")
        if isinstance(account, Admin) and account.role_id is None:
            await self._audit(audit.LOGIN_FAILURE, attempt, subject, account.id, reason="no role")
            raise Unauthenticated(NO_ROLE, detail="admin has no role")

    async def _verified(self, subject: Subject, first: FirstFactor, account: Account, attempt: Attempt) -> None:
        """A password sign-in must have verified the account's current address, under
        TILLKEY_CUSTOMER_EMAIL_VERIFICATION / TILLKEY_ADMIN_EMAIL_VERIFICATION=required (an external
        provider vouches for its own; a passkey proves the person, not the address: not asked).
        Checked after the first factor, so only the owner learns it; not a failure of the budget."""
        if first.amr != "pwd" or not await email_unverified(
            self.parts.settings, self.parts.db, subject.user_type, account
        ):
            return
        await self._audit(audit.LOGIN_FAILURE, attempt, subject, account.id, reason="email not verified")
        raise VerificationRequired(subject.user_type, account)

    async def _second_factor(
        self, subject: Subject, account: Account, amr: tuple[str, ...], second: SecondFactor | None, attempt: Attempt
    ) -> SignedIn | SecondFactorDue:
        if second is not None and await second.available(self.parts, account):
            if not await second.verify(self.parts, account):
                why = getattr(second, "refused", "") or second.wrong  # a passkey says why
                await self._failed(subject, account, attempt, why, lockout=True)
                raise SecondFactorFailed(second.wrong)
            if second.used_event:
                await self._audit(second.used_event, attempt, subject, account.id, **used_details(second))
            # Each value once: a provider's "mfa" and then a passkey's would otherwise repeat it.
            return SignedIn(subject.user_type, account, tuple(dict.fromkeys((*amr, *proved(second)))))
        if second is None and "mfa" in amr and await self._vouched_enough(account, amr):
            return SignedIn(subject.user_type, account, amr)  # the first factor vouched for a second
        enrolled = await second_factor_enrolled(self.parts, account)
        demanded = second is not None and second.demanded
        if demanded or self._due(account, enrolled) or await passkey_required(self.parts, account):
            # (TILLKEY_ADMIN_PASSKEY_REQUIRED: a TOTP code is not available to such an admin, so
            # it lands here too: only a passkey completes the sign-in.)
            return SecondFactorDue(subject.user_type, account, enrolled, amr)
        return SignedIn(subject.user_type, account, amr)

    async def _vouched_enough(self, account: Account, amr: tuple[str, ...]) -> bool:
        """A vouched-for second factor satisfies TILLKEY_ADMIN_PASSKEY_REQUIRED only when it was
        phishing-resistant (amr hwk/swk: a passkey signing in, or a provider asserting a key);
        an identity provider's "mfa" after a TOTP code or an SMS leaves the admin a passkey to show."""
        return any(a in amr for a in PHISHING_RESISTANT) or not await passkey_required(self.parts, account)

    def _due(self, account: Account, enrolled: bool) -> bool:
        """TILLKEY_ADMIN_2FA / TILLKEY_CUSTOMER_2FA: off, optional (for those who set it up),
        required (for every account of that type)."""
        s = self.parts.settings
        mode = s.admin_2fa if isinstance(account, Admin) else s.customer_2fa
        if mode == "off":
            return False
        # A customer without a factor under "required" still signs in: step-up on `self` (runtime)
        # then lets that token do nothing but set one up (the MFA routes).
        return enrolled or (mode == "required" and isinstance(account, Admin))

    async def _issue(self, subject: Subject, who: SignedIn, attempt: Attempt, issue: Issue[T]) -> Issued[T]:
        await self.budget.clear(subject, who.account)
        await self._audit(audit.LOGIN_SUCCESS, attempt, subject, who.user_id, methods=list(who.amr))
        return Issued(who, await issue(who))

    # --- failures and audit -------------------------------------------------------------------

    async def _failed(
        self, subject: Subject, account: Account | None, attempt: Attempt, reason: str, *, lockout: bool
    ) -> None:
        locked = await self.budget.spend(subject, account, lockout=lockout)
        await self._audit(audit.LOGIN_FAILURE, attempt, subject, account.id if account else None, reason=reason)
        if locked and account is not None:
            await self._audit(audit.ACCOUNT_LOCKED, attempt, subject, account.id)

    async def _audit(
        self, event: str, attempt: Attempt, subject: Subject, user_id: int | None, **details: object
    ) -> None:
        failed = event in (audit.LOGIN_FAILURE, audit.LOGIN_THROTTLED, audit.ACCOUNT_LOCKED)
        await self.parts.audit.record(
            event,
            outcome=audit.FAILURE if failed else audit.SUCCESS,
            actor_type=int(subject.user_type),
            actor_id=user_id,
            username=subject.name[:255],
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            request_id=attempt.request_id,
            details=details or None,
        )

    async def unlock(self, user_type: UserType, user_id: int, name: str) -> None:
        """Lift the account lock and the name's throttle (`tillkey admin unlock`)."""
        await self.budget.unlock(user_type, user_id, name)
        await self.parts.audit.record(
            audit.ACCOUNT_UNLOCKED, username=name, details={"target_type": int(user_type), "target_id": user_id}
        )
