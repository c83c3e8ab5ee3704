"""An LDAP provider's sync (issue 15): the directory's members of mapped groups become accounts
with the mapped role; whoever left the directory or every mapped group is deactivated, which
revokes their tokens and ends their sessions (Accounts.set_admin_active / set_customer_active:
the revocation and change feed every process follows).

The same owners as an OpenID sign-in: accounts are made through Accounts (delegation: the role
map passed the rule when the operator saved it), identities linked by (provider, stable id)
(store/idps.py), roles set by Linking.map_role. A local account that happens to hold a directory
user's name or email is never taken over: that user is skipped, and counted.

One run at a time per provider, across processes: a lease row taken by a conditional update
(store/directory_syncs.py); a second run finds it held and returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import Vouched
from tillkey.errors import Conflict, InvalidRequest, NotFound, TillkeyError
from tillkey.federation import ldap as wire
from tillkey.federation.directory import PROTOCOL, config_of
from tillkey.federation.ldap import Connection, Person
from tillkey.federation.oidc import Assertion
from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import directory_syncs as syncs_repo
from tillkey.store import idps as repo
from tillkey.store.accounts import Admin, Customer
from tillkey.store.directory_syncs import Counts
from tillkey.store.idps import Provider

if TYPE_CHECKING:
    from tillkey.accounts.service import Accounts
    from tillkey.clock import Clock
    from tillkey.contracts import Audit
    from tillkey.federation.linking import Linking
    from tillkey.federation.providers import IdentityProviders
    from tillkey.store.db import Database
    from tillkey.store.unit_of_work import Work

log = logging.getLogger(__name__)
BATCH = 200  # accounts provisioned per transaction
LEASE_MS = 15 * 60 * 1000  # longer than any run; a crashed holder's lease expires by itself
_OWNER = f"{socket.gethostname()[:32]}:{os.getpid()}"


@dataclass(slots=True)
class Outcome:
    provider: str
    ran: bool
    members: int = 0
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    skipped: list[str] = field(default_factory=list)  # names not provisioned, and why
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ran": self.ran,
            "members": self.members,
            "created": self.created,
            "updated": self.updated,
            "deactivated": self.deactivated,
            "skipped": self.skipped[:50],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Member:
    person: Person
    group: str | None  # the role map's key (as the operator wrote it) that decides the role


def wanted(provider: Provider, config: wire.Config, conn: Connection) -> dict[str, Member]:
    """Who should have an account, by stable id. Admins: members of a mapped group (the map's
    order decides between groups, as for OpenID group claims). Customers: every user of the filter."""
    users = conn.users()
    if provider.actor == "customer":
        return {p.subject: Member(p, None) for p in users.values()}
    groups = conn.groups()
    found: dict[str, Member] = {}
    for group in provider.role_map:  # first listed wins: a later group never overwrites
        for dn in wire.members_of(groups, group, nested=config.nested_groups):
            person = users.get(dn)
            if person is not None and person.subject not in found:
                found[person.subject] = Member(person, group)
    return found


def _vouched(provider: Provider, utype: UserType, member: Member) -> Vouched:
    p = member.person
    if utype == UserType.ADMIN:
        role = provider.role_map[member.group or ""]
        return Vouched(email=p.email or "", firstname=p.name[:255], username=p.username, role=role)
    first, _, last = p.name.partition(" ")
    return Vouched(email=p.email or "", firstname=first[:255] or p.username, lastname=last[:255] or "-")


class DirectorySync:
    """Built once (wiring.py); `tk.services.directory_sync`."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        audit: Audit,
        providers: IdentityProviders,
        accounts: Accounts,
        linking: Linking,
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self.providers = providers
        self.accounts = accounts
        self.linking = linking

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def sync(self, name: str) -> Outcome:
        provider = await self.providers.get(name)
        if provider.protocol != PROTOCOL:
            raise InvalidRequest(f"{name} is not an LDAP provider: only directories are synced.")
        owner = f"{_OWNER}:{secrets.token_hex(4)}"
        async with self.db.transaction() as s:
            await syncs_repo.ensure(s, provider.id)
        async with self.db.transaction() as s:
            now = self._now_ms()
            won = await syncs_repo.take_lease(s, provider.id, owner, now, now + LEASE_MS)
        if not won:
            return Outcome(name, ran=False, error="another process is syncing this provider")
        outcome = Outcome(name, ran=True)
        try:
            if not provider.enabled:
                raise InvalidRequest("The provider is disabled.")
            config = config_of(self.providers, provider)
            members = await wire.run(config, lambda conn: wanted(provider, config, conn))
            await self._apply(provider, members, outcome, lambda: self._renew(provider, owner))
        except TillkeyError as exc:
            outcome.error = exc.detail or exc.message
        except Exception as exc:  # recorded as failed (not as a good run with partial counts), then raised
            outcome.error = f"internal error ({type(exc).__name__})"
            raise
        finally:
            await self._finish(provider, owner, outcome)
        return outcome

    async def _finish(self, provider: Provider, owner: str, outcome: Outcome) -> None:
        counts = (
            None if outcome.error else Counts(outcome.members, outcome.created, outcome.updated, outcome.deactivated)
        )
        async with self.db.transaction() as s:
            await syncs_repo.finish(s, provider.id, owner, self._now_ms(), counts, outcome.error)
            await self.audit.record_in(
                s,
                audit.IDP_SYNCED,
                outcome=audit.FAILURE if outcome.error else audit.SUCCESS,
                details={k: v for k, v in outcome.as_json().items() if k not in ("ran", "skipped")}
                | {"skipped": len(outcome.skipped)},
            )

    async def _renew(self, provider: Provider, owner: str) -> None:
        async with self.db.transaction() as s:
            if not await syncs_repo.renew(s, provider.id, owner, self._now_ms() + LEASE_MS):
                raise Conflict("The sync's lease was lost (the run took longer than the lease): stopped.")

    async def _apply(
        self, provider: Provider, members: dict[str, Member], outcome: Outcome, renew: Callable[[], Awaitable[None]]
    ) -> None:
        """Create, update, deactivate. Nothing is deactivated unless the directory answered in full
        (an error above raised before this). Accounts are read in bulk and written only when
        something changed, in batches (one grants change per batch, not per account), so a run
        that changes nothing costs a few queries."""
        utype = UserType.ADMIN if provider.actor == "admin" else UserType.CUSTOMER
        outcome.members = len(members)
        async with self.db.session() as s:
            linked = {i.subject: i for i in await repo.identities_from(s, provider.id, int(utype))}
            ids = [i.user_id for i in linked.values() if i.user_id is not None]
            accounts = await accounts_repo.accounts_by_ids(s, utype == UserType.ADMIN, ids)
            roles = {r.name: r.id for r in await accounts_repo.list_roles(s)}
            by_sync = await syncs_repo.deactivated(s, provider.id, int(utype))
        new: list[Member] = []
        back: list[int] = []  # deactivated by a sync, members again
        moved: list[tuple[Admin, Assertion]] = []
        for subject, member in members.items():
            identity = linked.get(subject)
            account = accounts.get(identity.user_id) if identity and identity.user_id is not None else None
            if account is None:
                new.append(member)
                continue
            if not account.is_active and account.id in by_sync:
                back.append(account.id)
            if isinstance(account, Admin) and member.group is not None:
                if roles.get(provider.role_map[member.group]) != account.role_id:
                    p = member.person
                    moved.append(
                        (account, Assertion(provider, p.subject, p.email, None, (member.group,), ("pwd",), p.name))
                    )
        for start in range(0, len(new), BATCH):
            await renew()
            await self._create(provider, utype, new[start : start + BATCH], outcome)
        gone = [
            a.id
            for subject, i in linked.items()
            if subject not in members and i.user_id is not None
            if (a := accounts.get(i.user_id)) is not None and a.is_active
        ]
        for start in range(0, max(len(back), len(moved), len(gone)), BATCH):
            await renew()
            await self._reactivate(provider, utype, back[start : start + BATCH])
            await self.linking.map_roles(provider, moved[start : start + BATCH])
            await self._deactivate(provider, utype, gone[start : start + BATCH])
        outcome.updated = len(set(back) | {a.id for a, _ in moved})
        outcome.deactivated = len(gone)

    async def _create(self, provider: Provider, utype: UserType, batch: list[Member], outcome: Outcome) -> None:
        """A batch in one transaction; when any of it is refused (a local account holds the name or
        email: never linked by name alone), each one alone, so only the refused are skipped."""
        ready = [m for m in batch if m.person.email]
        outcome.skipped.extend(f"{m.person.username}: no email in the directory" for m in batch if not m.person.email)
        try:
            outcome.created += await self._provision(provider, utype, ready)
            return
        except (Conflict, InvalidRequest, NotFound) as exc:
            if len(ready) == 1:
                outcome.skipped.append(f"{ready[0].person.username}: {exc.message}"[:200])
                return
        for member in ready:
            await self._create(provider, utype, [member], outcome)

    async def _provision(self, provider: Provider, utype: UserType, batch: list[Member]) -> int:
        if not batch:
            return 0
        people = [_vouched(provider, utype, m) for m in batch]

        async def link(w: Work, made: list[Admin | Customer]) -> None:
            for member, account in zip(batch, made, strict=True):
                await repo.link(
                    w.s,
                    provider_id=provider.id,
                    subject=member.person.subject,
                    user_type=int(utype),
                    user_id=account.id,
                    email=member.person.email,
                    auth_identity_id=None,
                    now_ms=self._now_ms(),
                )
                w.audit(
                    audit.IDENTITY_PROVISIONED,
                    actor_type=int(utype),
                    actor_id=account.id,
                    username=(member.person.email or "")[:255],
                    details={"provider": provider.name, "via": "directory sync"},
                )

        return len(await self.accounts.provision(OPERATOR, utype, people, then=link))

    async def _reactivate(self, provider: Provider, utype: UserType, ids: list[int]) -> None:
        """Members again, whom a sync deactivated (an operator's deactivation stands)."""
        if not ids:
            return
        await self.accounts.set_active_many(OPERATOR, utype, ids, True, reason=f"back in directory {provider.name}")
        async with self.db.transaction() as s:
            for user_id in ids:
                await syncs_repo.unmark(s, provider.id, int(utype), user_id)

    async def _deactivate(self, provider: Provider, utype: UserType, ids: list[int]) -> None:
        """Gone from the directory or every mapped group: the one deactivation owner (audited,
        tokens revoked, sessions ended, on every process), marked as the sync's doing."""
        if not ids:
            return
        reason = f"left directory {provider.name}"
        await self.accounts.set_active_many(OPERATOR, utype, ids, False, reason=reason)
        async with self.db.transaction() as s:
            for user_id in ids:
                await syncs_repo.mark_deactivated(s, provider.id, int(utype), user_id, self._now_ms())

    async def due(self) -> list[Outcome]:
        """Run every enabled LDAP provider whose interval has passed since its last start (the
        server's background task calls this; the lease keeps it to one process)."""
        now = self._now_ms()
        async with self.db.session() as s:
            providers = [p for p in await repo.listed(s) if p.protocol == PROTOCOL and p.enabled]
            health = await syncs_repo.health(s, now)
        ran = []
        for p in providers:
            interval_ms = int(p.settings.get("sync_interval", "300") or 0) * 1000
            h = health.get(p.id)
            if interval_ms <= 0 or (h and h.last_started_ms is not None and h.last_started_ms + interval_ms > now):
                continue
            ran.append(await self.sync(p.name))
        return ran

    async def loop(self, tick_s: float = 15.0) -> None:
        """The server's background task: `due` every tick; a failure is recorded, never fatal."""
        while True:
            try:
                await self.due()
            except Exception:  # the loop outlives any one run (each run records its own error)
                log.exception("directory sync failed")
            await asyncio.sleep(tick_s)
