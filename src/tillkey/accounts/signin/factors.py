"""The factors a sign-in checks, as small step objects: the seams where new kinds plug in.

A first factor says who is signing in (a password, an external IdP's assertion, a passkey
signing in alone): it finds the account for a `Subject` and proves it. A second factor (a TOTP
code, a recovery code, a passkey) is checked only after the first passed. Neither counts
failures, audits sign-ins or issues anything: the state machine (machine.py) does that, the same
way for every factor, so a new kind cannot forget a step. (A factor that changes what it checks
against, the password rehash, audits that change with it.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.access.delegation import Grant
from tillkey.accounts.passkeys import Owner, PasskeyRefused
from tillkey.accounts.totp import Totp, is_recovery_code
from tillkey.crypto import legacy_hashes
from tillkey.errors import Conflict, InvalidRequest
from tillkey.principal import UserType
from tillkey.store import accounts as repo
from tillkey.store import idps as idps_repo
from tillkey.store import passkeys as passkeys_repo
from tillkey.store.accounts import Admin, Customer, username_key

if TYPE_CHECKING:
    from tillkey.access.tree import ResourceTree
    from tillkey.accounts.passkeys import Passkeys
    from tillkey.clock import Clock
    from tillkey.contracts import Audit, Hasher
    from tillkey.settings import Settings
    from tillkey.store.db import Database

Account = Admin | Customer


class DirectoryCheck(Protocol):
    """An LDAP / Active Directory password check (federation/directory.py): None when the account
    belongs to no directory (its stored hash decides), else whether the directory accepted the
    password; raises a 503 (Unavailable) when the directory does not answer."""

    async def check_password(self, account: Account, password: str) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class FactorParts:
    """What the factors check against, built once (wiring.py): the sign-in state machine hands
    it to every factor, the console and Medusa's MFA ask the policy helpers below with it."""

    settings: Settings
    clock: Clock
    db: Database
    audit: Audit
    passwords: Hasher
    tree: ResourceTree
    passkeys: Passkeys
    totp_for: Callable[[UserType], Totp]  # the admins' or the customers' TOTP
    directory: DirectoryCheck | None = None  # passwords of directory accounts (issue 15)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who claims to sign in, as presented: what the limits and an unknown name's throttle count
    against, before any secret is checked."""

    user_type: UserType
    name: str
    by_email: bool = False  # an admin named by email (Medusa's emailpass), not by username

    @property
    def key(self) -> str:
        return username_key(self.name)


def account_name(account: Account) -> str:
    """The one name an account's failure budget is kept under, whatever name it was reached by."""
    return account.username if isinstance(account, Admin) else account.email


async def find_account(db: AsyncSession, subject: Subject) -> Account | None:
    if subject.user_type == UserType.ADMIN:
        find = repo.admin_by_email if subject.by_email else repo.admin_by_username
        return await find(db, subject.name)
    if subject.user_type == UserType.CUSTOMER:
        return await repo.customer_by_email(db, subject.name)
    return None


async def account_by_id(db: AsyncSession, user_type: UserType, user_id: int) -> Account | None:
    if user_type == UserType.ADMIN:
        return await repo.admin_by_id(db, user_id)
    if user_type == UserType.CUSTOMER:
        return await repo.customer_by_id(db, user_id)
    return None


class FirstFactor(Protocol):
    """Proves a subject. `verify` must do the same work whether or not the account exists."""

    amr: ClassVar[str]  # RFC 8176 authentication method reference, into the token's amr
    wrong: ClassVar[str]  # the failure's reason, for the audit log

    async def locate(self, db: AsyncSession, subject: Subject) -> Account | None: ...

    async def verify(self, parts: FactorParts, subject: Subject, account: Account | None) -> bool: ...

    async def passed(self, parts: FactorParts, account: Account) -> None:
        """After a successful check (a password rehashed at the configured cost)."""


@dataclass(frozen=True, slots=True)
class Password:
    secret: str = field(repr=False)
    # The argon2id hash made while checking a cheap imported hash (Passwords.verify_upgrading),
    # stored by `passed` instead of hashing again: a first sign-in costs one argon2, not two.
    upgrade: list[str] = field(default_factory=list, repr=False, compare=False)
    by_directory: list[bool] = field(default_factory=list, repr=False, compare=False)
    amr: ClassVar[str] = "pwd"
    wrong: ClassVar[str] = "wrong password"

    async def locate(self, db: AsyncSession, subject: Subject) -> Account | None:
        return await find_account(db, subject)

    async def verify(self, parts: FactorParts, subject: Subject, account: Account | None) -> bool:
        # A directory account's password is the directory's to check (a bind), never stored here.
        if account is not None and parts.directory is not None:
            checked = await parts.directory.check_password(account, self.secret)
            if checked is not None:
                self.by_directory[:] = [True]
                return checked
        # Unknown names are checked against a dummy hash at a stored hash's cost (DummyHashes).
        hashed = account.password_hash if account is not None else None
        ok, upgrade = await parts.passwords.verify_upgrading(
            hashed, self.secret, population=str(int(subject.user_type)), name=subject.key
        )
        if upgrade is not None:
            self.upgrade[:] = [upgrade]
        return ok

    async def passed(self, parts: FactorParts, account: Account) -> None:
        # Raising the argon2 cost in settings upgrades each hash at its owner's next sign-in, and
        # a hash imported from Magento or Medusa becomes argon2id at its owner's first.
        old = account.password_hash
        if self.by_directory or not parts.passwords.needs_rehash(old):  # a directory's: never hashed here
            return
        new = self.upgrade[0] if self.upgrade else await parts.passwords.hash(self.secret)
        imported = legacy_hashes.scheme_of(old) is not None
        async with parts.db.transaction() as db:
            # Conditional on the hash just checked: a concurrent change or upgrade wins.
            replaced = await repo.replace_password_hash(
                db, admin=isinstance(account, Admin), user_id=account.id, old=old, new=new
            )
            if replaced and imported:
                await parts.audit.record_in(
                    db,
                    audit.PASSWORD_REHASHED,
                    actor_type=int(UserType.ADMIN if isinstance(account, Admin) else UserType.CUSTOMER),
                    actor_id=account.id,
                    username=account_name(account)[:255],
                    details={"scheme": legacy_hashes.describe(old)},
                )


@dataclass(frozen=True, slots=True)
class ExternalAssertion:
    """An external identity provider's verified assertion (federation/oidc.py checked the ID token;
    federation/linking.py found the account by (provider, subject)): the account is proved already.
    `mfa`: the provider asserted a second factor (amr) and is configured to be trusted for it;
    `provider_amr`: the amr values it asserted (RFC 8176), for what kind of factor that was."""

    account_type: UserType
    account_id: int
    mfa: bool = False
    provider_amr: tuple[str, ...] = ()
    amr: ClassVar[str] = "fed"
    wrong: ClassVar[str] = "external assertion without an account"

    @property
    def asserted(self) -> tuple[str, ...]:
        """amr values vouched for beyond its own ("mfa": the provider checked a second factor and
        is trusted to say so; with it "hwk"/"swk" when that factor was a key, phishing-resistant);
        the state machine then asks for no second factor of its own, unless TILLKEY_ADMIN_PASSKEY_
        REQUIRED wants a phishing-resistant one the provider did not assert."""
        if not self.mfa:
            return ()
        return ("mfa", *(a for a in PHISHING_RESISTANT if a in self.provider_amr))

    async def locate(self, db: AsyncSession, subject: Subject) -> Account | None:
        return await account_by_id(db, self.account_type, self.account_id)

    async def verify(self, parts: FactorParts, subject: Subject, account: Account | None) -> bool:
        return account is not None and account.id == self.account_id

    async def passed(self, parts: FactorParts, account: Account) -> None:
        return None


# RFC 8176: proof of possession of a hardware- or software-secured key (a passkey, a security key):
# what TILLKEY_ADMIN_PASSKEY_REQUIRED accepts, never a code one can be tricked into typing elsewhere.
PHISHING_RESISTANT = ("hwk", "swk")

UNKNOWN_PASSKEY = "(unknown passkey)"  # no account can have this name: a space is not PRECIS


def credential_id_of(credential: object) -> str:
    """The credential id a passkey's answer names (unverified: it only picks the account)."""
    if isinstance(credential, str) and len(credential) <= 64 * 1024:
        try:
            credential = json.loads(credential)
        except ValueError:
            return ""
    found = credential.get("id") if isinstance(credential, dict) else None
    return found[:1400] if isinstance(found, str) else ""


@dataclass(slots=True)
class PasskeySignIn:
    """A discoverable passkey signing in alone (passwordless): the answer to request options of
    ceremony `ceremony_id` (user verification required), bound to `binding`. The credential id
    picks the account; the assertion proves it. With user verification the authenticator checked
    a second factor itself, so it asserts "mfa" (RFC 8176: multiple factors) and no other is asked."""

    ceremony_id: str
    binding: str
    credential: object = field(repr=False)
    user_type: UserType = UserType.ADMIN
    proved: tuple[str, ...] = ()
    asserted: tuple[str, ...] = ()
    refused: str = ""
    amr: ClassVar[str] = "hwk"
    wrong: ClassVar[str] = "passkey refused"

    async def claimed_name(self, parts: FactorParts) -> str:
        """The name of the account the credential id belongs to: the sign-in's subject, for its
        rate limits and throttle, before anything is verified."""
        async with parts.db.session() as db:
            account = await self.locate(db, Subject(self.user_type, UNKNOWN_PASSKEY))
        return account_name(account) if account is not None else UNKNOWN_PASSKEY

    async def locate(self, db: AsyncSession, subject: Subject) -> Account | None:
        wanted = credential_id_of(self.credential)
        passkey = await passkeys_repo.by_credential_id(db, wanted) if wanted else None
        if passkey is None or passkey.user_type != self.user_type:
            return None
        return await account_by_id(db, passkey.user_type, passkey.user_id)

    async def verify(self, parts: FactorParts, subject: Subject, account: Account | None) -> bool:
        owner = Owner(self.user_type, 0)
        try:
            used = await parts.passkeys.authenticate(owner, self.binding, self.ceremony_id, self.credential)
        except PasskeyRefused as exc:
            self.refused = exc.reason
            return False
        if account is None or used.passkey.user_id != account.id or not used.user_verified:
            return False
        self.proved = tuple(a for a in used.amr if a != "mfa")
        self.asserted = ("mfa",)
        return True

    async def passed(self, parts: FactorParts, account: Account) -> None:
        return None


async def sso_only(parts: FactorParts, account: Account) -> bool:
    """Must this account sign in through an identity provider only? An admin linked to a provider
    named in TILLKEY_FEDERATION_ADMIN_REQUIRED (enabled or not: disabling it opens no other door).
    The state machine then refuses every other first factor, on every surface; credentials that
    are no sign-in (integrations, API keys) are untouched."""
    required = parts.settings.federation_admin_required_names
    if not required or not isinstance(account, Admin):
        return False
    async with parts.db.session() as db:
        linked = await idps_repo.identities_of(db, int(UserType.ADMIN), account.id)
        for identity in linked:
            provider = await idps_repo.by_id(db, identity.provider_id)
            if provider is not None and provider.name in required:
                return True
    return False


class SecondFactor(Protocol):
    """Checked after the first factor passed, against an account that has it set up."""

    amr: ClassVar[str]
    wrong: ClassVar[str]
    used_event: ClassVar[str | None]  # audited when it passes

    @property
    def demanded(self) -> bool:
        """The surface signs in with this factor only (Magento's provider endpoint): an account
        without it is told to set it up rather than signed in with the first factor alone."""
        ...

    async def available(self, parts: FactorParts, account: Account) -> bool: ...

    async def verify(self, parts: FactorParts, account: Account) -> bool: ...


@dataclass(frozen=True, slots=True)
class TotpCode:
    """A TOTP code from the authenticator app, or one of the recovery codes (accounts/totp.py)."""

    code: str = field(repr=False)
    demanded: bool = False
    amr: ClassVar[str] = "otp"
    wrong: ClassVar[str] = "wrong, expired or replayed code"
    used_event: ClassVar[str | None] = audit.TFA_USED

    async def available(self, parts: FactorParts, account: Account) -> bool:
        totp = account_totp(parts, account)
        if totp is None or await passkey_required(parts, account):
            return False
        return await totp.is_active(account.id)

    async def verify(self, parts: FactorParts, account: Account) -> bool:
        totp = account_totp(parts, account)
        if totp is None:
            return False
        if not is_recovery_code(self.code):
            return await totp.verify(account.id, self.code)
        # A recovery code: within its own budget per account (budget.py), besides the sign-in's.
        from tillkey.accounts.signin.budget import RecoveryCodeBudget  # budget imports this module

        budget = RecoveryCodeBudget(parts.db, parts.settings, parts.clock, totp.user_type)
        if await budget.exhausted(account.id):
            return False
        ok = await totp.verify(account.id, self.code)
        await budget.spent(account.id, ok=ok)
        return ok


@dataclass(slots=True)
class EnrolmentCode:
    """The first code of an authenticator app being set up (forced enrolment): it activates TOTP
    and is the sign-in's second factor; `recovery_codes` then holds the codes to show once."""

    code: str = field(repr=False)
    demanded: bool = True
    recovery_codes: list[str] = field(default_factory=list)
    amr: ClassVar[str] = "otp"
    wrong: ClassVar[str] = "wrong code at enrolment"
    used_event: ClassVar[str | None] = None  # Totp.activate records tfa.enrolled

    async def available(self, parts: FactorParts, account: Account) -> bool:
        if not isinstance(account, Admin) or await passkey_required(parts, account):
            return False
        return await parts.totp_for(UserType.ADMIN).pending(account.id) is not None

    async def verify(self, parts: FactorParts, account: Account) -> bool:
        try:
            self.recovery_codes = await parts.totp_for(UserType.ADMIN).activate(account.id, self.code)
        except InvalidRequest:
            return False
        return True


@dataclass(slots=True)
class PasskeyAssertion:
    """An assertion from one of the account's passkeys (accounts/passkeys.py), answering the
    challenge of ceremony `ceremony_id`, which must have been handed to the same `binding` (the
    pending sign-in it belongs to). `proved`: the RFC 8176 methods it showed, once verified."""

    ceremony_id: str
    binding: str
    credential: object = field(repr=False)
    demanded: bool = False
    proved: tuple[str, ...] = ()
    refused: str = ""  # why it was refused, for the audit log
    used_details: dict[str, object] = field(default_factory=dict)
    amr: ClassVar[str] = "hwk"
    wrong: ClassVar[str] = "passkey refused"
    used_event: ClassVar[str | None] = audit.PASSKEY_USED

    async def available(self, parts: FactorParts, account: Account) -> bool:
        return passkeys_allowed(parts, account) and await parts.passkeys.has_any(owner_of(account))

    async def verify(self, parts: FactorParts, account: Account) -> bool:
        try:
            used = await parts.passkeys.authenticate(owner_of(account), self.binding, self.ceremony_id, self.credential)
        except PasskeyRefused as exc:
            self.refused = exc.reason
            return False
        self.proved = used.amr
        self.used_details = {"factor": "passkey", "id": used.passkey.id, "name": used.passkey.name}
        return True


@dataclass(slots=True)
class PasskeyEnrolment:
    """The first passkey of an admin who must use one (TILLKEY_ADMIN_PASSKEY_REQUIRED) and has
    none: registering it is the sign-in's second factor, as the first code of an authenticator app
    is at forced TOTP enrolment (EnrolmentCode). A registration that does not verify is a failure."""

    ceremony_id: str
    binding: str
    credential: object = field(repr=False)
    name: str = "Passkey"
    demanded: bool = True
    proved: tuple[str, ...] = ()
    refused: str = ""
    amr: ClassVar[str] = "hwk"
    wrong: ClassVar[str] = "passkey registration refused at enrolment"
    used_event: ClassVar[str | None] = None  # Passkeys.register records passkey.registered

    async def available(self, parts: FactorParts, account: Account) -> bool:
        if not isinstance(account, Admin) or not await passkey_required(parts, account):
            return False
        return not await parts.passkeys.has_any(owner_of(account))

    async def verify(self, parts: FactorParts, account: Account) -> bool:
        try:
            made = await parts.passkeys.register(
                owner_of(account), self.binding, self.ceremony_id, self.credential, self.name
            )
        except (InvalidRequest, Conflict) as exc:
            self.refused = exc.detail or exc.message
            return False
        self.proved = ("swk" if made.backup_eligible else "hwk", "user")
        return True


def owner_of(account: Account) -> Owner:
    return Owner(UserType.ADMIN if isinstance(account, Admin) else UserType.CUSTOMER, account.id)


def passkeys_allowed(parts: FactorParts, account: Account) -> bool:
    """Admins always; customers unless TILLKEY_CUSTOMER_2FA=off (as TOTP)."""
    return isinstance(account, Admin) or parts.settings.customer_2fa != "off"


def account_totp(parts: FactorParts, account: Account) -> Totp | None:
    """The account's TOTP, if its user type may use one: admins always, customers unless
    TILLKEY_CUSTOMER_2FA=off."""
    if isinstance(account, Admin):
        return parts.totp_for(UserType.ADMIN)
    if parts.settings.customer_2fa == "off":
        return None
    return parts.totp_for(UserType.CUSTOMER)


async def passkey_required(parts: FactorParts, account: Account) -> bool:
    """Must this admin's second factor be phishing-resistant (a passkey, never a code one can be
    tricked into typing on another site)? TILLKEY_ADMIN_PASSKEY_REQUIRED: "all" admins, or
    "full_access" ones (a role holding Magento_Backend::all)."""
    mode = parts.settings.admin_passkey_required
    if mode == "off" or not isinstance(account, Admin):
        return False
    if mode == "all":
        return True
    async with parts.db.session() as db:
        role = None if account.role_id is None else await repo.role_by_id(db, account.role_id)
    return role is not None and Grant.expand(parts.tree, role.resources).everything


async def second_factor_enrolled(parts: FactorParts, account: Account) -> bool:
    """Has the account a second factor set up that it may use (TOTP or a passkey)?"""
    if passkeys_allowed(parts, account) and await parts.passkeys.has_any(owner_of(account)):
        return True
    totp = account_totp(parts, account)
    if totp is None or await passkey_required(parts, account):
        return False
    return await totp.is_active(account.id)
