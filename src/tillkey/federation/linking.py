"""Who an external identity is here, without account takeover.

An identity is (provider, subject), and only that key finds an account. An email is never enough:
a provider that asserts (even verifies) an email held by an existing account does not get that
account, because whoever controls that provider (or its tenant's email field) would then sign in
as anyone. It is linked only when the operator marked the provider trusted for the email's domain
(`--trust-email-domains` with `--allowed-domain`); otherwise the user is told to sign in to the
account first and link from there. New accounts are provisioned (`--provision jit`) only from a
verified email. Group claims map to an admin's role on every sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.signin.factors import Account, account_name
from tillkey.crypto.passwords import is_unusable, unusable_hash
from tillkey.crypto.secrets import random_token
from tillkey.errors import Conflict, NotFound
from tillkey.federation.oidc import Assertion, Refused
from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import identities as auth_identities
from tillkey.store import idps as repo
from tillkey.store.accounts import Admin
from tillkey.store.identities import Identity
from tillkey.store.idps import Linked, Provider
from tillkey.store.unit_of_work import Work

if TYPE_CHECKING:
    from tillkey.accounts.service import Accounts
    from tillkey.clock import Clock
    from tillkey.contracts import Audit, Changes
    from tillkey.settings import Settings
    from tillkey.store.db import Database

LINK_FIRST = (
    "An account with this email address exists already. Sign in to it the way you usually do (with your "
    "password, and your second factor if you set one up), then link this identity provider from your "
    "account's linked identities."
)
LINKED_ELSEWHERE = "This identity is linked to another account already."
NO_ACCOUNT = "There is no account for this sign-in. Ask an administrator to create one for you."
EMAIL_UNVERIFIED = "Your identity provider did not confirm your email address, so no account can be made from it."
DOMAIN_REFUSED = "Sign-in with this identity provider is not allowed for your email domain."
LAST_WAY = (
    "This is the last way to sign in to your account: it has no password, and this is its only linked "
    "identity. Set a password (or link another identity provider) first."
)
REQUIRED = "Sign-in through this identity provider is required for administrators: it cannot be removed."
NOT_A_LINK = "This sign-in was not started to link an identity provider: start linking from your account again."
LINK_NOT_SIGN_IN = (
    "This flow was started to link an identity provider to your account: finish it signed in to that account."
)
USER_TYPES = {"admin": UserType.ADMIN, "customer": UserType.CUSTOMER}


class LinkedElsewhere(Refused):
    """The (provider, subject) belongs to another account: never moved."""

    def __init__(self) -> None:
        super().__init__("identity linked to another account", LINKED_ELSEWHERE)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The account the assertion signs in to, or, for a customer not registered yet, the pending
    Medusa auth identity a registration (POST /store/customers) will create the customer from."""

    identity: Linked
    account: Account | None
    pending: Identity | None = None


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _role_changed(w: Work, admin: Admin, role: str | None, provider: Provider) -> None:
    """The audit record of a role an identity provider's groups gave an admin (sign-in or sync)."""
    w.audit(
        audit.ACCOUNT_CHANGED,
        username=admin.username,
        details={
            "target_type": int(UserType.ADMIN),
            "target_id": admin.id,
            "change": "role",
            "role": role,
            "via": f"identity provider {provider.name}",
        },
    )


class Linking:
    def __init__(
        self, *, db: Database, changes: Changes, audit: Audit, settings: Settings, clock: Clock, accounts: Accounts
    ) -> None:
        self.db = db
        self.changes = changes
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.accounts = accounts

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def resolve(self, assertion: Assertion) -> Resolved:
        provider = assertion.provider
        utype = USER_TYPES[provider.actor]
        if provider.allowed_domains and (
            assertion.email is None or _domain(assertion.email) not in provider.allowed_domains
        ):
            raise Refused("email domain not allowed", DOMAIN_REFUSED)
        async with self.db.session() as s:
            linked = await repo.identity(s, provider.id, assertion.subject)
            account = await self._account(s, utype, linked.user_id) if linked and linked.user_id else None
            pending = (
                await auth_identities.by_id(s, linked.auth_identity_id)
                if linked and linked.user_id is None and linked.auth_identity_id
                else None
            )
        if linked is not None and linked.user_id is not None:
            if account is None:
                raise Refused("linked account gone", NO_ACCOUNT)
            return await self._signed_in(linked, account, assertion)
        if linked is not None and pending is not None:
            return Resolved(linked, None, pending)
        return await self._first_sign_in(assertion, utype)

    @staticmethod
    async def _account(s: AsyncSession, utype: UserType, user_id: int) -> Account | None:
        if utype == UserType.ADMIN:
            return await accounts_repo.admin_by_id(s, user_id)
        return await accounts_repo.customer_by_id(s, user_id)

    async def _signed_in(self, linked: Linked, account: Account, assertion: Assertion) -> Resolved:
        async with self.db.transaction() as s:
            await repo.signed_in(s, linked.id, assertion.email, self._now_ms())
        if isinstance(account, Admin):
            account = await self.map_role(account, assertion)
        return Resolved(linked, account)

    async def _first_sign_in(self, assertion: Assertion, utype: UserType) -> Resolved:
        provider = assertion.provider
        email = assertion.email
        async with self.db.session() as s:
            existing: Account | None = None
            if email is not None:
                existing = (
                    await accounts_repo.admin_by_email(s, email)
                    if utype == UserType.ADMIN
                    else await accounts_repo.customer_by_email(s, email)
                )
        if existing is not None:
            trusted = provider.trust_email_domains and _domain(existing.email) in provider.allowed_domains
            if not trusted:
                raise Refused(f"verified email of an existing account {existing.id}: link from the account", LINK_FIRST)
            linked = await self._link(assertion, utype, existing.id, None)
            await self._audit(audit.IDENTITY_LINKED, assertion, utype, existing.id, via="trusted email domain")
            return await self._signed_in(linked, existing, assertion)
        if assertion.unverified_email is not None and email is None and provider.provisioning == "jit":
            raise Refused("email not verified: no account provisioned from it", EMAIL_UNVERIFIED)
        if provider.provisioning != "jit":
            raise Refused("no linked account and provisioning is 'existing'", NO_ACCOUNT)
        if email is None:
            raise Refused("no verified email to provision from", EMAIL_UNVERIFIED)
        if utype == UserType.CUSTOMER:
            return await self._pending_customer(assertion, email)
        return await self._provision_admin(assertion, email)

    async def link_to(self, assertion: Assertion, utype: UserType, user_id: int) -> Resolved:
        """Link the identity to the account that started this flow while signed in (it proved
        itself: its console session with the form's CSRF token, or a customer's bearer token, which
        the sign-in state machine issued after its password and second factor). An identity linked to another
        account already is refused, never moved."""
        async with self.db.session() as s:
            linked = await repo.identity(s, assertion.provider.id, assertion.subject)
            account = await self._account(s, utype, user_id)
        if account is None:
            raise Refused("linking account gone", NO_ACCOUNT)
        if linked is not None:
            if (linked.user_type, linked.user_id) != (int(utype), user_id):
                raise LinkedElsewhere
            return Resolved(linked, account)
        made = await self._link(assertion, utype, user_id, None)
        await self._audit(audit.IDENTITY_LINKED, assertion, utype, user_id, via="signed-in account")
        return Resolved(made, account)

    async def _link(self, assertion: Assertion, utype: UserType, user_id: int | None, auth_id: int | None) -> Linked:
        try:
            async with self.db.transaction() as s:
                return await repo.link(
                    s,
                    provider_id=assertion.provider.id,
                    subject=assertion.subject,
                    user_type=int(utype),
                    user_id=user_id,
                    email=assertion.email,
                    auth_identity_id=auth_id,
                    now_ms=self._now_ms(),
                )
        except Conflict:
            raise Refused("identity linked by a concurrent sign-in") from None

    async def _pending_customer(self, assertion: Assertion, email: str) -> Resolved:
        """Medusa's way: the provider's identity first, the customer when the storefront creates it
        (POST /store/customers with the actorless token), from this verified email."""
        try:
            async with self.db.transaction() as s:
                pending = await auth_identities.create(
                    s,
                    provider=assertion.provider.name,
                    actor_type="customer",
                    entity_id=email,
                    password_hash=None,
                    user_type=None,
                    user_id=None,
                    now_ms=self._now_ms(),
                )
        except Conflict:
            raise Refused("another subject of this provider registers the same email", LINK_FIRST) from None
        linked = await self._link(assertion, UserType.CUSTOMER, None, pending.id)
        return Resolved(linked, None, pending)

    @staticmethod
    def _mapped_role(assertion: Assertion, provider: Provider | None = None) -> str | None:
        provider = provider or assertion.provider
        groups = set(assertion.groups)
        for group, role in provider.role_map.items():  # the operator's order decides between groups
            if group in groups:
                return role
        return provider.default_role

    async def _provision_admin(self, assertion: Assertion, email: str) -> Resolved:
        role = self._mapped_role(assertion)
        if role is None:
            raise Refused("no group maps to a role and no default role", NO_ACCOUNT)
        # No password anyone knows: this admin signs in through the provider (a reset can set one).
        # The provider's role map passed the delegation rule when the operator saved it.
        username = f"{assertion.provider.name}-{email.partition('@')[0]}"[:128]
        try:
            admin = await self.accounts.create_admin(
                OPERATOR,
                username=username,
                email=email,
                password=random_token(32) + "aA1!",
                role=role,
                firstname=assertion.name[:255],
            )
        except (Conflict, NotFound) as exc:
            raise Refused(f"admin provisioning failed: {exc.message}", NO_ACCOUNT) from None
        async with self.db.transaction() as s:  # no password anyone knows, and marked so
            await accounts_repo.set_admin_password_hash(s, admin.id, unusable_hash())
        linked = await self._link(assertion, UserType.ADMIN, admin.id, None)
        await self._audit(audit.IDENTITY_PROVISIONED, assertion, UserType.ADMIN, admin.id, role=role)
        return Resolved(linked, admin)

    async def map_role(self, admin: Admin, assertion: Assertion) -> Admin:
        """Group claims decide the role on every sign-in: a group removed at the provider takes the
        role with it now (no mapped group and no default: no role, and the sign-in is refused)."""
        async with self.changes() as w:
            # The map as it is now, not as the flow began: `tillkey idp update` may have changed it
            # (and signed this admin out) while the browser was at the provider.
            provider = await repo.by_id(w.s, assertion.provider.id) or assertion.provider
            if not provider.role_map and provider.default_role is None:
                return admin
            role = self._mapped_role(assertion, provider)
            row = await accounts_repo.role_by_name(w.s, role) if role else None
            role_id = row.id if row else None
            if role_id == admin.role_id:
                return admin
            await accounts_repo.set_admin_role(w.s, admin.id, role_id)
            w.changed("grants")
            _role_changed(w, admin, role, provider)
            updated = await accounts_repo.admin_by_id(w.s, admin.id)
        assert updated is not None
        return updated

    async def map_roles(self, provider: Provider, wanted: list[tuple[Admin, Assertion]]) -> int:
        """`map_role` for many admins of one provider in one unit of work (a directory sync): one
        grants change for the batch. Answers how many roles changed."""
        changed = 0
        async with self.changes() as w:
            provider = await repo.by_id(w.s, provider.id) or provider
            if not provider.role_map and provider.default_role is None:
                return 0
            roles = {r.name: r.id for r in await accounts_repo.list_roles(w.s)}
            for admin, assertion in wanted:
                role = self._mapped_role(assertion, provider)
                role_id = roles.get(role) if role else None
                if role_id == admin.role_id:
                    continue
                await accounts_repo.set_admin_role(w.s, admin.id, role_id)
                _role_changed(w, admin, role, provider)
                changed += 1
            if changed:
                w.changed("grants")
        return changed

    # --- the account's own view: list, unlink ------------------------------------------------

    async def identities(self, utype: UserType, user_id: int) -> list[tuple[Linked, Provider]]:
        """The identities linked to an account, each with its provider."""
        async with self.db.session() as s:
            linked = await repo.identities_of(s, int(utype), user_id)
            providers = {p.id: p for p in await repo.listed(s)}
        return [(i, providers[i.provider_id]) for i in linked if i.provider_id in providers]

    async def unlink(self, utype: UserType, user_id: int, identity_id: int) -> Linked:
        """Remove one of the account's own linked identities. Refused (409) when it is the last
        way to sign in: an account with no password (provisioned from a provider) and this one
        identity left. Another account's identity is not found, the same as none."""
        async with self.db.transaction() as s:
            await repo.lock_account(s, int(utype), user_id)
            linked = await repo.identities_of(s, int(utype), user_id)
            target = next((i for i in linked if i.id == identity_id), None)
            if target is None:
                raise NotFound("There is no such linked identity.")
            account = await self._account(s, utype, user_id)
            if account is None:
                raise NotFound("There is no such linked identity.")
            if len(linked) == 1 and is_unusable(account.password_hash):
                raise Conflict(LAST_WAY)
            provider = await repo.by_id(s, target.provider_id)
            if utype == UserType.ADMIN and provider and provider.name in self.settings.federation_admin_required_names:
                raise Conflict(REQUIRED)  # unlinking would bring password sign-in back
            await repo.unlink(s, target.id)
            # Counted again after the removal, in its transaction: a concurrent removal of the other
            # identity is seen (SQLite's one writer; PostgreSQL's row lock above) and this one undone.
            if is_unusable(account.password_hash) and not await repo.identities_of(s, int(utype), user_id):
                raise Conflict(LAST_WAY)
            await self.audit.record_in(
                s,
                audit.IDENTITY_UNLINKED,
                actor_type=int(utype),
                actor_id=user_id,
                username=account_name(account)[:255],
                details={"provider": provider.name if provider else None, "identity_id": target.id},
            )
        return target

    async def _audit(self, event: str, assertion: Assertion, utype: UserType, user_id: int, **details: object) -> None:
        await self.audit.record(
            event,
            actor_type=int(utype),
            actor_id=user_id,
            username=(assertion.email or "")[:255],
            details={"provider": assertion.provider.name, **details},
        )
