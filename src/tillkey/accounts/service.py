"""Accounts: create admins and customers, check passwords, deactivate, manage roles.

Every change that affects who may do what writes a change-feed row in the same transaction,
so the hot-path state of every process follows; deactivation and deletion also revoke tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from tillkey.accounts.sessions import Sessions
from tillkey.crypto.passwords import check_policy
from tillkey.errors import Conflict, InvalidRequest, NotFound
from tillkey.principal import UserType
from tillkey.runtime import Tillkey
from tillkey.security import audit
from tillkey.store import accounts as repo
from tillkey.store import auth as auth_repo
from tillkey.store.accounts import Admin, Customer, Role

ADMINISTRATORS = "Administrators"


class Accounts:
    def __init__(self, tk: Tillkey) -> None:
        self.tk = tk

    # --- creation -----------------------------------------------------------------------------

    async def create_admin(
        self, *, username: str, email: str, password: str, role: str | None = None,
        firstname: str = "", lastname: str = "",
    ) -> Admin:  # fmt: skip
        username = username.strip()
        if not username or len(username) > 128:
            raise InvalidRequest("The username must be 1 to 128 characters.")
        _check_email(email)
        check_policy(password, min_length=self.tk.settings.password_min_length, identifiers=(username, email))
        hashed = await self.tk.passwords.hash(password)
        async with self.tk.db.transaction() as s:
            role_row = await repo.role_by_name(s, role or ADMINISTRATORS)
            if role_row is None:
                raise NotFound(f"There is no role named {role!r}.")
            admin = await repo.create_admin(
                s, username=username, email=email, password_hash=hashed, role_id=role_row.id,
                firstname=firstname, lastname=lastname,
            )  # fmt: skip
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
        await self.tk.reload_grants()
        await self._audit(audit.ACCOUNT_CREATED, UserType.ADMIN, admin.id, admin.username, role=role_row.name)
        return admin

    async def _audit(self, event: str, utype: UserType, user_id: int, username: str | None, **details: object) -> None:
        """Account and role changes come from the CLI (the operator) for now: no actor."""
        await self.tk.audit.record(
            event, username=username, details={"target_type": int(utype), "target_id": user_id, **details}
        )

    async def create_customer(self, *, email: str, password: str, firstname: str, lastname: str) -> Customer:
        _check_email(email)
        if not firstname.strip() or not lastname.strip():
            raise InvalidRequest("The first name and last name are required.")
        check_policy(password, min_length=self.tk.settings.password_min_length, identifiers=(email,))
        hashed = await self.tk.passwords.hash(password)
        async with self.tk.db.transaction() as s:
            customer = await repo.create_customer(
                s, email=email, firstname=firstname, lastname=lastname, password_hash=hashed
            )
        await self._audit(audit.ACCOUNT_CREATED, UserType.CUSTOMER, customer.id, customer.email)
        return customer

    # --- tokens -------------------------------------------------------------------------------

    async def issue_token(
        self, user_type: UserType, user_id: int, methods: tuple[str, ...] = ("pwd",), *,
        extra: Mapping[str, Any] | None = None, ttl: int | None = None,
    ) -> str:  # fmt: skip
        """Issue a login token. Waits out the current second if this user was revoked in it, so a
        fresh token (iat, whole seconds) is never born dead under the `iat <= revoke_before` rule.
        `extra` claims (Medusa's) make it a JWT whatever the configured format; `ttl` overrides
        the user type's lifetime."""
        async with self.tk.db.session() as s:
            before = await auth_repo.revoke_before_of(s, user_type, user_id)
        # asyncio's timer runs on the monotonic clock and may wake a hair before the wall clock
        # turns the second, so check the clock itself, not the sleep.
        while before is not None and self.tk.clock.now_int() <= before:  # noqa: ASYNC110 - waiting on time itself
            await asyncio.sleep(max(0.005, before + 1 - self.tk.clock.now()))
        ttl = ttl or self.tk.settings.ttl_for(user_type)
        if extra is not None:
            token = await self.tk.jwt_issuer.issue(user_type, user_id, ttl, methods, extra=extra)
        else:
            token = await self.tk.issuer.issue(user_type, user_id, ttl, methods)
        fmt = "jwt" if extra is not None else self.tk.settings.token_format.value
        self.tk.issued["access", fmt] += 1
        await self.tk.audit.record(
            audit.TOKEN_ISSUED, actor_type=int(user_type), actor_id=user_id,
            details={"methods": list(methods), "format": fmt, "ttl": ttl},
        )  # fmt: skip
        return token

    # --- lifecycle ----------------------------------------------------------------------------

    async def set_admin_active(self, admin_id: int, active: bool) -> Admin:
        async with self.tk.db.transaction() as s:
            admin = await repo.set_admin_active(s, admin_id, active)
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
        if not active:
            await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="account deactivated")
        await self.tk.reload_grants()
        change = "activated" if active else "deactivated"
        await self._audit(audit.ACCOUNT_CHANGED, UserType.ADMIN, admin_id, admin.username, change=change)
        return admin

    async def delete_admin(self, admin_id: int) -> None:
        async with self.tk.db.transaction() as s:
            admin = await repo.admin_by_id(s, admin_id)
            if admin is None:
                raise NotFound("The admin user doesn't exist.")
            await repo.delete_admin(s, admin_id)
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
        await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="account deleted")
        await self.tk.reload_grants()
        await self._audit(audit.ACCOUNT_DELETED, UserType.ADMIN, admin_id, admin.username)

    async def set_customer_active(self, customer_id: int, active: bool) -> Customer:
        async with self.tk.db.transaction() as s:
            customer = await repo.set_customer_active(s, customer_id, active)
        if not active:
            await self.sign_out_everywhere(UserType.CUSTOMER, customer_id, reason="account deactivated")
        change = "activated" if active else "deactivated"
        await self._audit(audit.ACCOUNT_CHANGED, UserType.CUSTOMER, customer_id, customer.email, change=change)
        return customer

    async def delete_customer(self, customer_id: int) -> None:
        async with self.tk.db.transaction() as s:
            customer = await repo.customer_by_id(s, customer_id)
            if customer is None:
                raise NotFound("The customer doesn't exist.")
            await repo.delete_customer(s, customer_id)
        await self.sign_out_everywhere(UserType.CUSTOMER, customer_id, reason="account deleted")
        await self._audit(audit.ACCOUNT_DELETED, UserType.CUSTOMER, customer_id, customer.email)

    async def sign_out_everywhere(
        self, utype: UserType, user_id: int, *, reason: str, by: tuple[int, int] | None = None
    ) -> int:
        """Revoke every token of the account and end its cookie sessions (console and API);
        answers how many sessions ended. The revocation alone would refuse the sessions too;
        ending them also takes them off every session listing."""
        await self.tk.revoker.revoke_for(utype, user_id)
        return await Sessions(self.tk).end_all(int(utype), user_id, reason=reason, by=by)

    # --- roles --------------------------------------------------------------------------------

    def _check_resources(self, resources: Iterable[str]) -> list[str]:
        resources = list(resources)
        unknown = self.tk.tree.unknown(resources)
        if unknown:
            raise InvalidRequest(f"Unknown resource id(s): {', '.join(unknown)}. See `tillkey role resources`.")
        return resources

    async def create_role(self, name: str, resources: Iterable[str] = ()) -> Role:
        if not name.strip() or len(name) > 128:
            raise InvalidRequest("The role name must be 1 to 128 characters.")
        res = self._check_resources(resources)
        async with self.tk.db.transaction() as s:
            role = await repo.create_role(s, name, res)
        await self.tk.audit.record(audit.ROLE_CREATED, details={"role": role.name, "resources": list(role.resources)})
        return role

    async def grant(self, role: str, resources: Iterable[str], *, revoke: bool = False) -> Role:
        res = self._check_resources(resources)
        async with self.tk.db.transaction() as s:
            row = await repo.role_by_name(s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            if revoke:
                await repo.revoke_grant(s, row.id, res)
            else:
                await repo.grant(s, row.id, res)
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
            updated = await repo.role_by_name(s, role)
        await self.tk.reload_grants()
        assert updated is not None
        return updated

    async def set_role_resources(self, role: str, resources: Iterable[str]) -> Role:
        """Make the role grant exactly these resources (the console's role editor)."""
        wanted = set(self._check_resources(resources))
        async with self.tk.db.session() as s:
            row = await repo.role_by_name(s, role)
        if row is None:
            raise NotFound(f"There is no role named {role!r}.")
        if row.builtin:
            raise InvalidRequest("A built-in role cannot be changed.")
        have = set(row.resources)
        if wanted - have:
            await self.grant(role, sorted(wanted - have))
        if have - wanted:
            await self.grant(role, sorted(have - wanted), revoke=True)
        changes = {"role": row.name, "added": sorted(wanted - have), "removed": sorted(have - wanted)}
        await self.tk.audit.record(audit.ROLE_CHANGED, details=changes)
        async with self.tk.db.session() as s:
            updated = await repo.role_by_name(s, role)
        assert updated is not None
        return updated

    async def assign_role(self, username: str, role: str) -> Admin:
        async with self.tk.db.transaction() as s:
            admin = await repo.admin_by_username(s, username)
            if admin is None:
                raise NotFound("The admin user doesn't exist.")
            row = await repo.role_by_name(s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            await repo.set_admin_role(s, admin.id, row.id)
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
        await self.tk.reload_grants()
        async with self.tk.db.session() as s:
            updated = await repo.admin_by_id(s, admin.id)
        assert updated is not None
        await self._audit(audit.ACCOUNT_CHANGED, UserType.ADMIN, admin.id, admin.username, change="role", role=role)
        return updated

    # --- operator: password reset, role rename and delete -----------------------------------------

    async def reset_admin_password(self, admin_id: int, password: str) -> Admin:
        """Set an admin's password (the operator's reset) and sign them out everywhere: whoever
        knew the old password keeps no token or session made with it."""
        async with self.tk.db.session() as s:
            admin = await repo.admin_by_id(s, admin_id)
        if admin is None:
            raise NotFound("The admin user doesn't exist.")
        check_policy(
            password, min_length=self.tk.settings.password_min_length, identifiers=(admin.username, admin.email)
        )
        hashed = await self.tk.passwords.hash(password)
        async with self.tk.db.transaction() as s:
            await repo.set_admin_password_hash(s, admin_id, hashed)
        await self.sign_out_everywhere(UserType.ADMIN, admin_id, reason="password reset")
        await self._audit(audit.ACCOUNT_CHANGED, UserType.ADMIN, admin_id, admin.username, change="password reset")
        return admin

    async def rename_role(self, role: str, new_name: str) -> Role:
        if not new_name.strip() or len(new_name) > 128:
            raise InvalidRequest("The role name must be 1 to 128 characters.")
        async with self.tk.db.transaction() as s:
            row = await repo.role_by_name(s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            if row.builtin:
                raise InvalidRequest("A built-in role cannot be renamed.")
            await repo.rename_role(s, row.id, new_name)
            updated = await repo.role_by_name(s, new_name)
        assert updated is not None
        await self.tk.audit.record(audit.ROLE_CHANGED, details={"role": updated.name, "renamed_from": row.name})
        return updated

    async def delete_role(self, role: str) -> None:
        """Delete a role no admin holds; refused (naming them) while any does, so deleting a role
        never silently takes rights away from someone."""
        async with self.tk.db.transaction() as s:
            row = await repo.role_by_name(s, role)
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            if row.builtin:
                raise InvalidRequest("A built-in role cannot be deleted.")
            holders = await repo.admins_with_role(s, row.id)
            if holders:
                raise Conflict(
                    f"The role {row.name!r} is assigned to {len(holders)} admin(s) ({', '.join(holders[:5])}); "
                    "assign them another role first."
                )
            await repo.delete_role(s, row.id)
            await auth_repo.record_change(s, "grants", self.tk.clock.now_int())
        await self.tk.audit.record(audit.ROLE_DELETED, details={"role": row.name})


def _check_email(email: str) -> None:
    email = email.strip()
    local, _, domain = email.rpartition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise InvalidRequest(f"{email!r} is not a valid email address.")
