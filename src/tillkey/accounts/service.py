"""Accounts: create admins and customers, check passwords, deactivate, manage roles.

Every change to who holds what takes the acting Principal and asks the delegation rule
(access/delegation.py) before it writes: a role's grant, an admin's role, an admin's activation or
deletion are all at most what the actor holds, and nobody changes their own access. The CLI acts
as `delegation.OPERATOR`.

Every change that affects who may do what writes a change-feed row in the same transaction,
so the hot-path state of every process follows; deactivation and deletion also revoke tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.access import delegation
from tillkey.access.delegation import Grant, audit_actor
from tillkey.access.tree import ResourceTree
from tillkey.accounts.sessions import Sessions
from tillkey.clock import Clock
from tillkey.contracts import Audit, Changes, Hasher, Revocations
from tillkey.credentials.api_keys import ApiKeyState
from tillkey.crypto import legacy_hashes
from tillkey.crypto.passwords import check_policy, unusable_hash
from tillkey.errors import Conflict, InvalidRequest, NotFound
from tillkey.principal import Principal, UserType
from tillkey.settings import Settings, TokenFormat
from tillkey.store import accounts as repo
from tillkey.store import identities as identities_repo
from tillkey.store.accounts import Admin, Customer, Role
from tillkey.store.db import Database
from tillkey.store.unit_of_work import Work
from tillkey.tokens.issuer import Issuer

ADMINISTRATORS = "Administrators"


@dataclass(frozen=True, slots=True)
class Vouched:
    """An account an external directory vouches for (`Accounts.provision`)."""

    email: str
    firstname: str
    lastname: str = ""
    username: str = ""  # admins
    role: str | None = None  # admins: None is Administrators, like create_admin


AfterProvision = Callable[[Work, list[Admin | Customer]], Awaitable[None]]


class Accounts:
    """Built once (wiring.py) with what it uses; `tk.services.accounts`."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        db: Database,
        changes: Changes,
        audit: Audit,
        passwords: Hasher,
        issuer: Issuer,
        revoker: Revocations,
        tree: ResourceTree,
        api_keys: ApiKeyState,
        sessions: Sessions,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.changes = changes
        self.audit = audit
        self.passwords = passwords
        self.issuer = issuer
        self.revoker = revoker
        self.tree = tree
        self.api_keys = api_keys
        self.sessions = sessions

    # --- creation -----------------------------------------------------------------------------

    async def create_admin(
        self,
        acting: Principal,
        *,
        username: str,
        email: str,
        password: str,
        role: str | None = None,
        firstname: str = "",
        lastname: str = "",
    ) -> Admin:
        """`role` None: Administrators, so only an actor holding everything may leave it out."""
        await self._require_role_within(acting, role or ADMINISTRATORS, what="new admin's role")
        username = username.strip()
        if not username or len(username) > 128:
            raise InvalidRequest("The username must be 1 to 128 characters.")
        _check_email(email)
        check_policy(password, min_length=self.settings.password_min_length, identifiers=(username, email))
        hashed = await self.passwords.hash(password)
        return await self._add_admin(acting, username, email, hashed, role, firstname, lastname)

    async def import_admin(
        self,
        acting: Principal,
        *,
        username: str,
        email: str,
        password_hash: str,
        role: str | None = None,
        firstname: str = "",
        lastname: str = "",
    ) -> Admin:
        """An admin moved from another shop system with its stored hash (crypto/legacy_hashes.py:
        verified as that system does, upgraded at the first sign-in). The same delegation rule."""
        await self._require_role_within(acting, role or ADMINISTRATORS, what="imported admin's role")
        if legacy_hashes.scheme_of(password_hash) is None:
            raise InvalidRequest("The password hash is in no format Tillkey reads.")
        _check_email(email)
        return await self._add_admin(acting, username.strip(), email, password_hash, role, firstname, lastname)

    async def provision(
        self, acting: Principal, utype: UserType, people: Sequence[Vouched], *, then: AfterProvision | None = None
    ) -> list[Admin | Customer]:
        """Accounts a directory vouches for (federation/directory_sync.py), in one unit of work:
        no password anyone knows (they sign in through the directory), so no hashing, which keeps a
        sync of thousands cheap. The delegation rule and audit of `create_admin`; `then` runs in
        the same transaction (the sync links each identity there, so no account is left unlinked).
        Any refusal (a name or email taken) rolls the whole batch back."""
        if utype == UserType.ADMIN:
            for role in sorted({p.role or ADMINISTRATORS for p in people}):
                await self._require_role_within(acting, role, what="provisioned admin's role")
        for p in people:
            _check_email(p.email)
        made: list[Admin | Customer] = []
        async with self.changes() as w:
            roles: dict[str, int] = {}
            for p in people:
                account: Admin | Customer
                if utype == UserType.ADMIN:
                    role = p.role or ADMINISTRATORS
                    if role not in roles:
                        row = await repo.role_by_name(w.s, role)
                        if row is None:
                            raise NotFound(f"There is no role named {role!r}.")
                        roles[role] = row.id
                    account = await repo.create_admin(
                        w.s,
                        username=p.username.strip(),
                        email=p.email,
                        password_hash=unusable_hash(),
                        role_id=roles[role],
                        firstname=p.firstname,
                        lastname=p.lastname,
                    )
                    self._audit(w, acting, audit.ACCOUNT_CREATED, utype, account.id, account.username, role=role)
                else:
                    account = await repo.create_customer(
                        w.s, email=p.email, firstname=p.firstname, lastname=p.lastname, password_hash=unusable_hash()
                    )
                    self._audit(w, acting, audit.ACCOUNT_CREATED, utype, account.id, account.email)
                made.append(account)
            if utype == UserType.ADMIN:
                w.changed("grants")
            if then is not None:
                await then(w, made)
        return made

    async def _add_admin(
        self,
        acting: Principal,
        username: str,
        email: str,
        hashed: str,
        role: str | None,
        firstname: str,
        lastname: str,
    ) -> Admin:
        async with self.changes() as w:
            role_row = await repo.role_by_name(w.s, role or ADMINISTRATORS)
            if role_row is None:
                raise NotFound(f"There is no role named {role!r}.")
            admin = await repo.create_admin(
                w.s,
                username=username,
                email=email,
                password_hash=hashed,
                role_id=role_row.id,
                firstname=firstname,
                lastname=lastname,
            )
            w.changed("grants")
            self._audit(w, acting, audit.ACCOUNT_CREATED, UserType.ADMIN, admin.id, admin.username, role=role_row.name)
        return admin

    def _audit(
        self,
        w: Work,
        acting: Principal | None,
        event: str,
        utype: UserType,
        user_id: int,
        username: str | None,
        **details: object,
    ) -> None:
        target = {"target_type": int(utype), "target_id": user_id}
        self._record(w, acting, event, username=username, details={**target, **details})

    def _record(
        self,
        w: Work,
        acting: Principal | None,
        event: str,
        *,
        details: dict[str, Any],
        username: str | None = None,
    ) -> None:
        """In the change's own transaction (they commit together), naming who made the change."""
        actor_type, actor_id = _actor(acting)
        w.audit(event, actor_type=actor_type, actor_id=actor_id, username=username, details=details)

    async def create_customer(self, *, email: str, password: str, firstname: str, lastname: str) -> Customer:
        _check_email(email)
        if not firstname.strip() or not lastname.strip():
            raise InvalidRequest("The first name and last name are required.")
        check_policy(password, min_length=self.settings.password_min_length, identifiers=(email,))
        hashed = await self.passwords.hash(password)
        return await self._add_customer(email, firstname, lastname, hashed)

    async def import_customer(self, *, email: str, password_hash: str, firstname: str, lastname: str) -> Customer:
        """A customer moved from another shop system with its stored hash (see import_admin)."""
        _check_email(email)
        if legacy_hashes.scheme_of(password_hash) is None:
            raise InvalidRequest("The password hash is in no format Tillkey reads.")
        return await self._add_customer(email, firstname, lastname, password_hash)

    async def _add_customer(self, email: str, firstname: str, lastname: str, hashed: str) -> Customer:
        async with self.changes() as w:
            customer = await repo.create_customer(
                w.s, email=email, firstname=firstname, lastname=lastname, password_hash=hashed
            )
            self._audit(w, None, audit.ACCOUNT_CREATED, UserType.CUSTOMER, customer.id, customer.email)
        return customer

    # --- tokens -------------------------------------------------------------------------------

    async def issue_token(
        self,
        user_type: UserType,
        user_id: int,
        methods: tuple[str, ...] = ("pwd",),
        *,
        extra: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        surface: str | None = None,
        auth_time: int | None = None,
        not_after: int | None = None,
        jkt: str | None = None,
    ) -> str:
        """Issue a login token through the one issuer (tokens/issuer.py), and audit it. `jkt`:
        DPoP-bound to that key (RFC 9449; the Magento customer token endpoint's extension).

        `extra` claims (Medusa's) make it a JWT whatever the configured format; `ttl` overrides the
        user type's lifetime. `surface` marks a token its surface may renew; `auth_time` is the
        original sign-in time (defaults to now: this is a sign-in; a renewal passes the original,
        so refresh never makes a sign-in look fresh to step-up); `not_after` caps its expiry at
        the sign-in's absolute end. Waits out the current second if this user was revoked in it, so
        a fresh token (iat, whole seconds) is never born dead under the `iat <= revoke_before` rule."""
        issuer = self.issuer
        await issuer.wait_past_revocation(int(user_type), user_id)
        ttl = ttl or self.settings.ttl_for(user_type)
        if auth_time is None:
            auth_time = self.clock.now_int()
        minted = await issuer.login_token(
            int(user_type),
            user_id,
            ttl,
            methods,
            opaque=self.settings.token_format == TokenFormat.OPAQUE,
            extra=extra,
            surface=surface,
            auth_time=auth_time,
            not_after=not_after,
            jkt=jkt,
        )
        details: dict[str, object] = {"methods": list(methods), "format": minted.format, "ttl": ttl}
        details["binding"] = "bearer" if jkt is None else "dpop"
        if jkt is not None:
            details["jkt"] = jkt
        if surface is not None:
            details["surface"] = surface
        await self.audit.record(
            audit.TOKEN_ISSUED,
            actor_type=int(user_type),
            actor_id=user_id,
            details=details,
        )
        return minted.token

    # --- lifecycle ----------------------------------------------------------------------------

    async def set_admin_active(self, acting: Principal, admin_id: int, active: bool) -> Admin:
        await self.require_manages(acting, admin_id, what="admin activation" if active else "admin deactivation")
        async with self.changes() as w:
            admin = await repo.set_admin_active(w.s, admin_id, active)
            w.changed("grants")
            change = "activated" if active else "deactivated"
            self._audit(w, acting, audit.ACCOUNT_CHANGED, UserType.ADMIN, admin_id, admin.username, change=change)
        if not active:
            await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="account deactivated")
        return admin

    async def set_active_many(
        self, acting: Principal, utype: UserType, ids: Sequence[int], active: bool, *, reason: str
    ) -> None:
        """`set_admin_active` / `set_customer_active` for many accounts in one unit of work: one
        grants change for the batch, not one per account (a directory sync deactivating hundreds).
        The same delegation rule, audit and sign-out."""
        if utype == UserType.ADMIN:
            for admin_id in ids:
                await self.require_manages(
                    acting, admin_id, what="admin activation" if active else "admin deactivation"
                )
        change = "activated" if active else "deactivated"
        async with self.changes() as w:
            for user_id in ids:
                if utype == UserType.ADMIN:
                    name = (await repo.set_admin_active(w.s, user_id, active)).username
                else:
                    name = (await repo.set_customer_active(w.s, user_id, active)).email
                self._audit(w, acting, audit.ACCOUNT_CHANGED, utype, user_id, name, change=change, reason=reason)
            if utype == UserType.ADMIN:
                w.changed("grants")
        if not active:
            for user_id in ids:
                await self.sign_out_everywhere(utype, user_id, reason=reason)

    async def delete_admin(self, acting: Principal, admin_id: int) -> None:
        await self.require_manages(acting, admin_id, what="admin deletion")
        async with self.changes() as w:
            admin = await repo.admin_by_id(w.s, admin_id)
            if admin is None:
                raise NotFound("The admin user doesn't exist.")
            await repo.delete_admin(w.s, admin_id)
            w.changed("grants")
            self._audit(w, acting, audit.ACCOUNT_DELETED, UserType.ADMIN, admin_id, admin.username)
        await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="account deleted")

    async def set_customer_active(self, customer_id: int, active: bool) -> Customer:
        async with self.changes() as w:
            customer = await repo.set_customer_active(w.s, customer_id, active)
            change = "activated" if active else "deactivated"
            self._audit(w, None, audit.ACCOUNT_CHANGED, UserType.CUSTOMER, customer_id, customer.email, change=change)
        if not active:
            await self.sign_out_everywhere(UserType.CUSTOMER, customer_id, reason="account deactivated")
        return customer

    async def delete_customer(self, customer_id: int) -> None:
        async with self.changes() as w:
            customer = await repo.customer_by_id(w.s, customer_id)
            if customer is None:
                raise NotFound("The customer doesn't exist.")
            await repo.delete_customer(w.s, customer_id)
            self._audit(w, None, audit.ACCOUNT_DELETED, UserType.CUSTOMER, customer_id, customer.email)
        await self.sign_out_everywhere(UserType.CUSTOMER, customer_id, reason="account deleted")

    async def sign_out_everywhere(
        self, utype: UserType, user_id: int, *, reason: str, by: tuple[int, int] | None = None
    ) -> int:
        """Revoke every token of the account and end its cookie sessions (console and API);
        answers how many sessions ended. The revocation alone would refuse the sessions too;
        ending them also takes them off every session listing."""
        await self.revoke_tokens(utype, user_id)
        return await self.sessions.end_all(int(utype), user_id, reason=reason, by=by)

    async def revoke_tokens(self, utype: UserType, user_id: int | None, *, email: str | None = None) -> int:
        """Revoke every token of the account, and for a customer also the registration tokens of the
        Medusa identities of its email or linked to it: a registration made before the account
        existed must not outlive the account's own sign-out. Answers how many identities were hit."""
        if user_id is not None:
            await self.revoker.revoke_for(utype, user_id)
        if utype != UserType.CUSTOMER:
            return 0
        async with self.db.session() as s:
            if email is None and user_id is not None:
                customer = await repo.customer_by_id(s, user_id)
                email = customer.email if customer is not None else None
            found = await identities_repo.ids_for(
                s, "customer", entity_id=email, user_type=int(utype) if user_id is not None else None, user_id=user_id
            )
        for identity_id in found:
            await self.revoker.revoke_for(UserType.GUEST, identity_id)
        return len(found)

    # --- roles --------------------------------------------------------------------------------

    def _check_resources(self, resources: Iterable[str]) -> list[str]:
        resources = list(resources)
        unknown = self.tree.unknown(resources)
        if unknown:
            raise InvalidRequest(f"Unknown resource id(s): {', '.join(unknown)}. See `tillkey role resources`.")
        return resources

    async def _require_role_within(self, acting: Principal, role: str, *, what: str) -> Role:
        """The role exists and grants nothing the actor lacks (who holds it, or gets it, holds that)."""
        async with self.db.session() as s:
            row = await repo.role_by_name(s, role)
        if row is None:
            raise NotFound(f"There is no role named {role!r}.")
        delegation.require_within(acting, role_grant(self.tree, row), what=what)
        return row

    async def create_role(self, acting: Principal, name: str, resources: Iterable[str] = ()) -> Role:
        if not name.strip() or len(name) > 128:
            raise InvalidRequest("The role name must be 1 to 128 characters.")
        res = self._check_resources(resources)
        delegation.require_ids_within(acting, self.tree, res, what="role creation")
        async with self.changes() as w:
            role = await repo.create_role(w.s, name, res)
            details = {"role": role.name, "resources": list(role.resources)}
            self._record(w, acting, audit.ROLE_CREATED, details=details)
        return role

    async def grant(self, acting: Principal, role: str, resources: Iterable[str], *, revoke: bool = False) -> Role:
        """Add (or, `revoke`, take away) resources. Only a role within the actor's grant may be
        changed at all, and what it grants afterwards stays within it."""
        res = self._check_resources(resources)
        current = await self._require_role_within(acting, role, what="role change")
        after = set(current.resources) - set(res) if revoke else set(current.resources) | set(res)
        delegation.require_ids_within(acting, self.tree, after, what="role grant")
        async with self.changes() as w:
            row = await repo.role_by_name(w.s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            if revoke:
                await repo.revoke_grant(w.s, row.id, res)
            else:
                await repo.grant(w.s, row.id, res)
            w.changed("grants")
            updated = await repo.role_by_name(w.s, role)
            change = {
                "role": row.name,
                "added": [] if revoke else sorted(res),
                "removed": sorted(res) if revoke else [],
            }
            self._record(w, acting, audit.ROLE_CHANGED, details=change)
        assert updated is not None
        return updated

    async def set_role_resources(self, acting: Principal, role: str, resources: Iterable[str]) -> Role:
        """Make the role grant exactly these resources (the console's role editor)."""
        wanted = set(self._check_resources(resources))
        row = await self._require_role_within(acting, role, what="role change")
        delegation.require_ids_within(acting, self.tree, wanted, what="role grant")
        if row.builtin:
            raise InvalidRequest("A built-in role cannot be changed.")
        have = set(row.resources)
        if wanted - have:
            await self.grant(acting, role, sorted(wanted - have))
        if have - wanted:
            await self.grant(acting, role, sorted(have - wanted), revoke=True)
        async with self.db.session() as s:
            updated = await repo.role_by_name(s, role)
        assert updated is not None
        return updated

    async def assign_role(self, acting: Principal, username: str, role: str) -> Admin:
        """Self: always refused. Another admin: both their current role and the new one must be
        within the actor's grant."""
        async with self.db.session() as s:
            target = await repo.admin_by_username(s, username)
        if target is None:
            raise NotFound("The admin user doesn't exist.")
        await self.require_manages(acting, target.id, what="role assignment")
        await self._require_role_within(acting, role, what="assigned role")
        async with self.changes() as w:
            admin = await repo.admin_by_username(w.s, username)
            if admin is None:
                raise NotFound("The admin user doesn't exist.")
            row = await repo.role_by_name(w.s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            await repo.set_admin_role(w.s, admin.id, row.id)
            w.changed("grants")
            self._audit(
                w, acting, audit.ACCOUNT_CHANGED, UserType.ADMIN, admin.id, admin.username, change="role", role=role
            )
        async with self.db.session() as s:
            updated = await repo.admin_by_id(s, admin.id)
        assert updated is not None
        return updated

    # --- operator: password reset, role rename and delete -----------------------------------------

    async def reset_admin_password(self, acting: Principal, admin_id: int, password: str) -> Admin:
        """Set another admin's password and sign them out everywhere: whoever knew the old password
        keeps no token or session made with it. The delegation rule applies (never one's own here:
        changing one's own password needs the current one, a different path)."""
        admin = await self.require_manages(acting, admin_id, what="password reset")
        check_policy(password, min_length=self.settings.password_min_length, identifiers=(admin.username, admin.email))
        hashed = await self.passwords.hash(password)
        async with self.changes() as w:
            await repo.set_admin_password_hash(w.s, admin_id, hashed)
            self._audit(
                w, acting, audit.ACCOUNT_CHANGED, UserType.ADMIN, admin_id, admin.username, change="password reset"
            )
        await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="password reset")
        return admin

    async def rename_role(self, acting: Principal, role: str, new_name: str) -> Role:
        if not new_name.strip() or len(new_name) > 128:
            raise InvalidRequest("The role name must be 1 to 128 characters.")
        await self._require_role_within(acting, role, what="role rename")
        async with self.changes() as w:
            row = await _custom_role(w.s, role, "renamed")
            await repo.rename_role(w.s, row.id, new_name)
            updated = await repo.role_by_name(w.s, new_name)
            assert updated is not None
            details = {"role": updated.name, "renamed_from": row.name}
            self._record(w, acting, audit.ROLE_CHANGED, details=details)
        return updated

    async def delete_role(self, acting: Principal, role: str) -> None:
        """Delete a role no admin holds; refused (naming them) while any does, so deleting a role
        never silently takes rights away from someone."""
        await self._require_role_within(acting, role, what="role deletion")
        async with self.changes() as w:
            row = await _custom_role(w.s, role, "deleted")
            holders = await repo.admins_with_role(w.s, row.id)
            if holders:
                raise Conflict(
                    f"The role {row.name!r} is assigned to {len(holders)} admin(s) ({', '.join(holders[:5])}); "
                    "assign them another role first."
                )
            await repo.delete_role(w.s, row.id)
            w.changed("grants")
            self._record(w, acting, audit.ROLE_DELETED, details={"role": row.name})

    async def require_manages(
        self, acting: Principal, admin_id: int, *, what: str, own: str = delegation.OWN_GRANT
    ) -> Admin:
        """Another admin, whose role grants nothing the actor lacks. Else anyone holding acl_users
        could lock out, demote or re-enable an Administrator, or (accounts/totp.py) strip their
        second factor before trying their password."""
        behind = self.api_keys.by_id(acting.user_id) if acting.user_type == UserType.API_KEY else None
        acts_for = (UserType.ADMIN, behind.created_by) if behind is not None and behind.created_by else None
        delegation.require_not_self(acting, UserType.ADMIN, admin_id, message=own, acts_for=acts_for)
        async with self.db.session() as s:
            admin = await repo.admin_by_id(s, admin_id)
            role = await repo.role_by_id(s, admin.role_id) if admin and admin.role_id is not None else None
        if admin is None:
            raise NotFound("The admin user doesn't exist.")
        delegation.require_within(acting, role_grant(self.tree, role), what=what)
        return admin


def role_grant(tree: ResourceTree, role: Role | None) -> Grant:
    return Grant.expand(tree, role.resources if role is not None else ())


def _actor(acting: Principal | None) -> tuple[int | None, int | None]:
    fields = audit_actor(acting)
    return fields["actor_type"], fields["actor_id"]


async def _custom_role(s: AsyncSession, role: str, verb: str) -> Role:
    """A role the operator made (built-in ones are never renamed or deleted), in transaction `s`."""
    row = await repo.role_by_name(s, role)
    if row is None:
        raise NotFound(f"There is no role named {role!r}.")
    if row.builtin:
        raise InvalidRequest(f"A built-in role cannot be {verb}.")
    return row


def _check_email(email: str) -> None:
    email = email.strip()
    local, _, domain = email.rpartition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise InvalidRequest(f"{email!r} is not a valid email address.")
