"""One import run, whatever the source: each account the reader yields is created through the
account service as the operator (access/delegation.py), with its stored password hash kept as it
is (crypto/legacy_hashes.py verifies it at sign-in and upgrades it). Idempotent: a name Tillkey
already has is skipped with its reason, so a second run imports nothing; `dry_run` reports the
same without writing. Every real run is audited (`import.run`, with its report)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.api_keys import ApiKeys
from tillkey.accounts.integrations import Integrations
from tillkey.accounts.service import Accounts
from tillkey.crypto import legacy_hashes
from tillkey.errors import InvalidRequest, TillkeyError
from tillkey.oauth1.handshake import TokenPair
from tillkey.store import accounts as repo
from tillkey.store import api_keys as api_keys_repo
from tillkey.store import integrations as integrations_repo

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

ADMIN, CUSTOMER, INTEGRATION = "admin", "customer", "integration"
# Kinds named by their prefix: the audit refuses detail keys that name a key or a secret.
SECRET_KEY, PUBLISHABLE_KEY = "sk_", "pk_"


@dataclass(frozen=True, slots=True)
class Person:
    kind: str  # ADMIN or CUSTOMER
    username: str  # admins: the sign-in name; customers: the email
    email: str
    first_name: str
    last_name: str
    password: str | None  # the stored hash, verbatim
    active: bool = True
    role: str | None = None  # admins: a Tillkey role name (None: Administrators)
    problem: str | None = None  # the reader already knows it cannot be imported, and why


@dataclass(frozen=True, slots=True)
class Machine:
    """An integration with the credentials its callers already hold (secrets in the clear here,
    sealed by the integration service as it stores them)."""

    name: str
    email: str
    endpoint_url: str | None
    identity_link_url: str | None
    consumer_key: str
    consumer_secret: str | None  # None: it could not be read (problem says why)
    resources: tuple[str, ...]
    active: bool
    access_token: TokenPair | None
    problem: str | None = None
    kind: str = INTEGRATION


@dataclass(frozen=True, slots=True)
class Key:
    """A Medusa API key as Medusa stores it (a secret key: scrypt hex and salt; a publishable one:
    its text), acting for the admin imported under `creator` (the creating user's email)."""

    type: str  # store/api_keys.py SECRET or PUBLISHABLE
    title: str
    token: str
    salt: str
    redacted: str
    creator: str | None
    created_ms: int
    revoked_ms: int | None
    problem: str | None = None

    @property
    def kind(self) -> str:
        return SECRET_KEY if self.type == api_keys_repo.SECRET else PUBLISHABLE_KEY


Item = Person | Machine | Key


@dataclass(slots=True)
class Report:
    dry_run: bool
    imported: Counter[str] = field(default_factory=Counter)  # kind -> count
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, reason) -> count

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "imported": dict(self.imported),
            "skipped": [{"kind": k, "reason": r, "count": n} for (k, r), n in sorted(self.skipped.items())],
        }


def _problem(p: Item, schemes: frozenset[str]) -> str | None:
    if isinstance(p, Machine | Key):
        return p.problem
    if p.problem:
        return p.problem
    if not p.email or not p.username:
        return "no email"
    if p.password is None:
        return "no password"
    if legacy_hashes.scheme_of(p.password) not in schemes:
        return "invalid hash"
    return None


async def _exists(tk: Tillkey, p: Item) -> bool:
    async with tk.db.session() as s:
        if isinstance(p, Key):
            return await api_keys_repo.imported_exists(s, type=p.type, redacted=p.redacted, created_ms=p.created_ms)
        if isinstance(p, Machine):
            return (
                await integrations_repo.by_name(s, p.name) is not None
                or await integrations_repo.by_consumer_key(s, p.consumer_key) is not None
            )
        if p.kind == ADMIN:
            return await repo.admin_by_username(s, p.username) is not None
        return await repo.customer_by_email(s, p.email) is not None


async def _create(tk: Tillkey, p: Item) -> None:
    if isinstance(p, Key):
        creator = None
        if p.creator is not None:
            async with tk.db.session() as s:
                admin = await repo.admin_by_username(s, p.creator)
            if admin is None:
                raise InvalidRequest("its creator is not in Tillkey")
            creator = admin.id
        await ApiKeys(tk).import_existing(
            type=p.type, title=p.title, token=p.token, salt=p.salt, redacted=p.redacted, created_by=creator,
            created_ms=p.created_ms, revoked_ms=p.revoked_ms,
        )  # fmt: skip
        return
    if isinstance(p, Machine):
        assert p.consumer_secret is not None
        await Integrations(tk).import_existing(
            OPERATOR, name=p.name, email=p.email, endpoint_url=p.endpoint_url, identity_link_url=p.identity_link_url,
            consumer_key=p.consumer_key, consumer_secret=p.consumer_secret, resources=p.resources, active=p.active,
            access_token=p.access_token,
        )  # fmt: skip
        return
    assert p.password is not None
    accounts = Accounts(tk)
    if p.kind == CUSTOMER:
        await accounts.import_customer(
            email=p.email, password_hash=p.password, firstname=p.first_name, lastname=p.last_name
        )
        return
    admin = await accounts.import_admin(
        OPERATOR,
        username=p.username,
        email=p.email,
        password_hash=p.password,
        role=p.role,
        firstname=p.first_name,
        lastname=p.last_name,
    )
    if not p.active:
        await accounts.set_admin_active(OPERATOR, admin.id, False)


async def run(
    tk: Tillkey, source: str, people: AsyncIterator[Item], schemes: frozenset[str], *, dry_run: bool
) -> Report:
    report = Report(dry_run)
    async for p in people:
        problem = _problem(p, schemes) or ("already in Tillkey" if await _exists(tk, p) else None)
        if problem is None and not dry_run:
            try:
                await _create(tk, p)
            except TillkeyError as exc:  # a name Tillkey refuses (look-alike, bad email)
                problem = exc.text[:80]
        if problem is not None:
            report.skipped[(p.kind, problem)] += 1
        else:
            report.imported[p.kind] += 1
    if not dry_run:
        await tk.audit.record(audit.IMPORT_RUN, details={"source": source, **report.as_dict()})
        await tk.reload_grants()
        await tk.reload_integrations()
    return report
