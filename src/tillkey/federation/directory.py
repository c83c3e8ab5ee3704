"""LDAP / Active Directory providers (issue 15): the password check the sign-in state machine
asks for a directory account, `idp test`, and each provider's health.

A directory account is one with an identity linked from an enabled LDAP provider (the sync makes
them, federation/directory_sync.py). Its password is checked by the directory, never stored here:
the service account finds the entry by the linked stable id (entryUUID / objectGUID, so a renamed
or recycled login name reaches no one else's account), then a bind as that entry proves the
password. Everything else of the sign-in (limits, throttle, lockout, second factor, audit, what
is issued) is the state machine's, unchanged (accounts/signin/machine.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tillkey.federation import ldap as wire
from tillkey.federation.ldap import Connection, DirectoryDown, Person
from tillkey.principal import UserType
from tillkey.store import directory_syncs as syncs_repo
from tillkey.store import idps as repo
from tillkey.store.accounts import Admin
from tillkey.store.idps import Provider

if TYPE_CHECKING:
    from tillkey.accounts.signin.factors import Account
    from tillkey.clock import Clock
    from tillkey.federation.providers import IdentityProviders
    from tillkey.store.db import Database

PROTOCOL = "ldap"


def config_of(providers: IdentityProviders, provider: Provider) -> wire.Config:
    return wire.settings_of(provider, providers.client_secret(provider) or "")


def _by_subject(config: wire.Config, subject: str) -> str:
    """A filter for the entry with this stable id: OpenLDAP's entryUUID, or AD's objectGUID as
    its 16 bytes (little-endian GUID), each byte escaped (RFC 4515); the user filter keeps it
    within the users the provider admits."""
    try:
        guid = "".join(f"\\{b:02x}" for b in uuid.UUID(subject).bytes_le)
    except ValueError:
        guid = ""
    by_id = f"(entryUUID={wire.escape(subject)})"
    if guid:
        by_id = f"(|{by_id}(objectGUID={guid}))"
    return f"(&{config.every_user}{by_id})"


def _check(config: wire.Config, subject: str, password: str) -> Callable[[Connection], bool]:
    def work(conn: Connection) -> bool:
        found = list(conn.search(config.user_base, _by_subject(config, subject), list(wire.ID_ATTRS)))
        if len(found) != 1:
            return False
        return conn.user_bind(found[0][0], password)

    return work


@dataclass(frozen=True, slots=True)
class TestResult:
    ok: bool
    detail: str
    person: Person | None = None
    password_ok: bool | None = None


class Directory:
    """Built once (wiring.py); `tk.services.directory`. The state machine's password factor asks
    `check_password` (accounts/signin/factors.py DirectoryCheck)."""

    def __init__(self, *, db: Database, clock: Clock, providers: IdentityProviders) -> None:
        self.db = db
        self.clock = clock
        self.providers = providers

    async def _directory_of(self, user_type: UserType, account_id: int) -> tuple[Provider, str] | None:
        async with self.db.session() as s:
            for linked in await repo.identities_of(s, int(user_type), account_id):
                provider = await repo.by_id(s, linked.provider_id)
                if provider is not None and provider.protocol == PROTOCOL:
                    return provider, linked.subject
        return None

    async def check_password(self, account: Account, password: str) -> bool | None:
        """None: not a directory account (the stored hash decides). Else whether the directory
        accepted the password; DirectoryDown (503) when it did not answer. A disabled provider
        accepts nobody (its accounts have no password of their own)."""
        utype = UserType.ADMIN if isinstance(account, Admin) else UserType.CUSTOMER
        found = await self._directory_of(utype, account.id)
        if found is None:
            return None
        provider, subject = found
        if not provider.enabled or not password:
            return False  # an empty password never reaches a bind (RFC 4513 5.1.2)
        config = config_of(self.providers, provider)
        return await wire.run(config, _check(config, subject, password))

    async def test(self, name: str, username: str | None = None, password: str | None = None) -> TestResult:
        """Connect and bind as the service account, read the groups; with a username, find it and
        (with a password) bind as it. Provisions and changes nothing."""
        provider = await self.providers.get(name)
        if provider.protocol != PROTOCOL:
            return TestResult(False, f"{name} is not an LDAP provider")
        config = config_of(self.providers, provider)

        def work(conn: Connection) -> TestResult:
            groups = conn.groups()
            mapped = sum(1 for g in provider.role_map if wire.normal_dn(g) in groups)
            detail = f"service bind ok; {len(groups)} groups, {mapped} of {len(provider.role_map)} mapped found"
            if username is None:
                return TestResult(True, detail)
            person = conn.find(username)
            if person is None:
                return TestResult(False, f"{detail}; no single user matches the name")
            if password is None:
                return TestResult(True, f"{detail}; user found", person)
            ok = conn.user_bind(person.dn, password)
            return TestResult(ok, f"{detail}; user found; password {'accepted' if ok else 'refused'}", person, ok)

        try:
            return await wire.run(config, work)
        except DirectoryDown as exc:
            return TestResult(False, exc.detail or exc.message)

    async def health(self) -> dict[str, dict[str, Any]]:
        """Each LDAP provider's last sync, by name (the console and `idp list`)."""
        now_ms = int(self.clock.now() * 1000)
        async with self.db.session() as s:
            providers = [p for p in await repo.listed(s) if p.protocol == PROTOCOL]
            rows = await syncs_repo.health(s, now_ms)
        found: dict[str, dict[str, Any]] = {}
        for p in providers:
            h = rows.get(p.id)
            found[p.name] = {
                "running": bool(h and h.running),
                "last_sync_ms": h.last_finished_ms if h else None,
                "last_ok_ms": h.last_ok_ms if h else None,
                "last_error": h.last_error if h else None,
                "members": h.members if h else 0,
                "created": h.created if h else 0,
                "updated": h.updated if h else 0,
                "deactivated": h.deactivated if h else 0,
            }
        return found
