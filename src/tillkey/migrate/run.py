"""One import run, whatever the source. Admins, integrations and API keys (a shop has few) are
created one by one through their services as the operator (access/delegation.py); customers (a
shop has millions) in batches, one transaction each, with their stored password hashes kept as
they are (crypto/legacy_hashes.py verifies them at sign-in and upgrades them).

- Idempotent: what Tillkey already has is a conflict, skipped with its reason (`--on-conflict
  skip`), updated (`update`), or the end of the run (`fail`, before the batch holding it is
  written). `update` makes it as the source has it now, and never rolls back what changed here:
  people's names, role and active flag, and the password hash only while Tillkey's copy is still
  the imported one; an integration's name, email, URLs, status, grant and secrets (its access
  token only while Tillkey has issued none itself); a key's title, creator, grant and revocation
  (added or brought forward, never lifted). An integration or key the source has not changed is
  skipped as unchanged; rows the source does not name are left alone.
- Resumable: each customer batch commits with an `import.checkpoint` audit record naming the last
  source row it holds; a run of the same source that finds a checkpoint newer than the source's
  last finished run (`import.run`) starts after it (the few admins, integrations and keys, read
  before the customers, were all done by then).
- `dry_run` reports the same without writing. Readers hand over a page or a partition at a time,
  so memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit, names
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import ADMINISTRATORS
from tillkey.crypto import legacy_hashes
from tillkey.errors import Conflict, InvalidRequest, TillkeyError
from tillkey.oauth1.handshake import TokenPair
from tillkey.principal import UserType
from tillkey.store import accounts as repo
from tillkey.store import api_keys as api_keys_repo
from tillkey.store import integrations as integrations_repo
from tillkey.store.audit import AuditQuery

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

ADMIN, CUSTOMER, INTEGRATION = "admin", "customer", "integration"
SKIP, UPDATE, FAIL = "skip", "update", "fail"
ON_CONFLICT = (SKIP, UPDATE, FAIL)
EXISTS = "already in Tillkey"
# Kinds named by their prefix: the audit refuses detail keys that name a key or a secret.
SECRET_KEY, PUBLISHABLE_KEY = "sk_", "pk_"


SHOP = repo.Standing()  # a customer's standing when its source has none (Medusa): the shop's defaults


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
    position: str | None = None  # customers: where the source's customer stream resumes after this one
    totp_secret: str | None = field(default=None, repr=False)  # an active TOTP secret (base32)
    standing: repo.Standing | None = None  # customers: website, store, group, active flag (None: none known)
    locked_until: int | None = None  # customers: the source's lock (unix seconds), kept while it runs


@dataclass(frozen=True, slots=True)
class Machine:
    """An integration with the credentials its callers already hold (secrets in the clear here,
    sealed by the integration service as it stores them)."""

    name: str
    email: str
    endpoint_url: str | None
    identity_link_url: str | None
    consumer_key: str
    consumer_secret: str | None = field(repr=False)  # None: it could not be read (problem says why)
    resources: tuple[str, ...]
    active: bool
    access_token: TokenPair | None = field(repr=False)
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
    updated: Counter[str] = field(default_factory=Counter)  # kind -> count (--on-conflict update)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, reason) -> count
    resumed_after: str | None = None  # the checkpoint a resumed run started after

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "imported": dict(self.imported),
            "updated": dict(self.updated),
            "skipped": [{"kind": k, "reason": r, "count": n} for (k, r), n in sorted(self.skipped.items())],
            "resumed": self.resumed_after is not None,
        }


class ImportConflict(Conflict):
    """`--on-conflict fail` met something Tillkey already has: the run stops before writing it."""


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    on_conflict: str = SKIP
    batch: int = 5000  # customers per transaction (and per checkpoint): a commit costs a sync to disk
    progress: Callable[[int], None] | None = None  # told how many more source rows were handled


# A reader: the items of a source, starting after a customer checkpoint when given one.
Reader = Callable[[str | None], AsyncGenerator[Item, None]]


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


@dataclass(frozen=True, slots=True)
class Found:
    """What Tillkey already has for an integration or a key: the row an update refreshes (None:
    only another integration of the same name, which an update leaves alone, `problem` says why)."""

    id: int | None
    problem: str | None = None


OTHER_CREDENTIALS = "another integration of this name, with other credentials, is in Tillkey"
UNCHANGED = f"{EXISTS}, unchanged"


async def _exists(tk: Tillkey, p: Item) -> repo.Admin | repo.Customer | Found | bool:
    async with tk.db.session() as s:
        if isinstance(p, Key):
            key_id = await api_keys_repo.imported_id(s, type=p.type, redacted=p.redacted, created_ms=p.created_ms)
            return False if key_id is None else Found(key_id)
        if isinstance(p, Machine):
            same = await integrations_repo.by_consumer_key(s, p.consumer_key)
            if same is not None:
                return Found(same.id)
            named = await integrations_repo.by_name(s, p.name)
            return False if named is None else Found(None, OTHER_CREDENTIALS)
        if p.kind == ADMIN:
            return await repo.admin_by_username(s, p.username) or False
        return await repo.customer_by_email(s, p.email) or False


async def _create(tk: Tillkey, p: Item) -> None:
    if isinstance(p, Key):
        await tk.services.api_keys.import_existing(
            type=p.type,
            title=p.title,
            token=p.token,
            salt=p.salt,
            redacted=p.redacted,
            created_by=await _creator(tk, p),
            created_ms=p.created_ms,
            revoked_ms=p.revoked_ms,
        )
        return
    if isinstance(p, Machine):
        assert p.consumer_secret is not None
        await tk.services.integrations.import_existing(
            OPERATOR,
            name=p.name,
            email=p.email,
            endpoint_url=p.endpoint_url,
            identity_link_url=p.identity_link_url,
            consumer_key=p.consumer_key,
            consumer_secret=p.consumer_secret,
            resources=p.resources,
            active=p.active,
            access_token=p.access_token,
        )
        return
    assert p.password is not None
    accounts = tk.services.accounts
    if p.kind == CUSTOMER:
        customer = await accounts.import_customer(
            email=p.email, password_hash=p.password, firstname=p.first_name, lastname=p.last_name
        )
        async with tk.db.transaction() as s:
            await _update_customer(tk, s, p, customer.id, None)
        if p.totp_secret:  # (Medusa's customers can have one)
            await tk.services.totp_for(UserType.CUSTOMER).import_active(customer.id, p.totp_secret)
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
    if p.totp_secret:
        await tk.services.totp.import_active(admin.id, p.totp_secret)
    if not p.active:
        await accounts.set_admin_active(OPERATOR, admin.id, False)


async def _update_admin(tk: Tillkey, p: Person, admin: repo.Admin) -> None:
    """`--on-conflict update` for an admin: role, active flag, and the hash while still imported."""
    accounts = tk.services.accounts
    await accounts.assign_role(OPERATOR, admin.username, p.role or ADMINISTRATORS)
    if admin.is_active != p.active:
        await accounts.set_admin_active(OPERATOR, admin.id, p.active)
    async with tk.db.transaction() as s:
        current = await repo.admin_by_id(s, admin.id)
        if current is not None and p.password and legacy_hashes.scheme_of(current.password_hash) is not None:
            await repo.set_admin_password_hash(s, admin.id, p.password)


async def _creator(tk: Tillkey, p: Key) -> int | None:
    """The admin a Medusa key acts for: the one its creator (an email) was imported as."""
    if p.creator is None:
        return None
    async with tk.db.session() as s:
        admin = await repo.admin_by_username(s, p.creator)
    if admin is None:
        raise InvalidRequest("its creator is not in Tillkey")
    return admin.id


async def _refresh(tk: Tillkey, p: Machine | Key, key_id: int, dry_run: bool) -> list[str]:
    """`--on-conflict update` for an integration or a key imported before: what the source
    changed since (services/…refresh_imported decide, write and audit)."""
    if isinstance(p, Key):
        return await tk.services.api_keys.refresh_imported(
            key_id, title=p.title, created_by=await _creator(tk, p), revoked_ms=p.revoked_ms, dry_run=dry_run
        )
    assert p.consumer_secret is not None
    # A token Tillkey issued itself since (activated or reauthorized here) is not rolled back.
    issued = await tk.audit.search(
        AuditQuery(event=audit.TOKEN_ISSUED, actor_type=int(UserType.INTEGRATION), actor_id=key_id, limit=1)
    )
    return await tk.services.integrations.refresh_imported(
        OPERATOR,
        key_id,
        name=p.name,
        email=p.email,
        endpoint_url=p.endpoint_url,
        identity_link_url=p.identity_link_url,
        consumer_secret=p.consumer_secret,
        resources=p.resources,
        active=p.active,
        access_token=p.access_token,
        keep_tokens=bool(issued),
        dry_run=dry_run,
    )


async def _lock(tk: Tillkey, s: AsyncSession, p: Person, customer_id: int) -> None:
    """A customer locked in the source stays locked here until its lock runs out."""
    if p.locked_until is not None and p.locked_until > tk.clock.now_int():
        await tk.services.login_budget.carry_lock(s, UserType.CUSTOMER, customer_id, p.locked_until)


async def _update_customer(tk: Tillkey, s: AsyncSession, p: Person, customer_id: int, stored: str | None) -> None:
    """A customer's names, standing (website, store, group, active flag) and lock as the source has
    them, and its hash (`stored`: Tillkey's, None when just imported) while still the imported one.
    One deactivated here is then signed out by the caller (accounts.set_customer_active)."""
    keep = stored is None or legacy_hashes.scheme_of(stored) is None  # signed in here since: Tillkey's stays
    await repo.update_imported_customer(
        s,
        customer_id,
        firstname=p.first_name,
        lastname=p.last_name,
        password_hash=None if keep else p.password,
        standing=p.standing,
    )
    await _lock(tk, s, p, customer_id)


async def _one(tk: Tillkey, p: Item, problem: str | None, report: Report, opts: Options) -> None:
    """One admin, integration or key (or a customer the batch path leaves out)."""
    existing = await _exists(tk, p) if problem is None else False
    if existing:
        if opts.on_conflict == FAIL:
            raise ImportConflict(f"An imported {p.kind} is already in Tillkey (--on-conflict fail).")
        if opts.on_conflict == SKIP:
            report.skipped[(p.kind, EXISTS)] += 1
            return
        if isinstance(existing, repo.Admin) and isinstance(p, Person):
            if not opts.dry_run:
                await _update_admin(tk, p, existing)
            report.updated[p.kind] += 1
            return
        if isinstance(existing, repo.Customer) and isinstance(p, Person):  # one the batches left to this path
            if not opts.dry_run:
                async with tk.db.transaction() as s:
                    await _update_customer(tk, s, p, existing.id, existing.password_hash)
                if existing.is_active and p.standing is not None and not p.standing.is_active:
                    await tk.services.accounts.set_customer_active(existing.id, False)
            report.updated[p.kind] += 1
            return
        if isinstance(existing, Found) and isinstance(p, Machine | Key) and existing.id is not None:
            try:
                changed = await _refresh(tk, p, existing.id, opts.dry_run)
            except TillkeyError as exc:  # a name another integration holds, a creator not imported
                report.skipped[(p.kind, exc.text[:80])] += 1
                return
            if changed:
                report.updated[p.kind] += 1
            else:
                report.skipped[(p.kind, UNCHANGED)] += 1
            return
        report.skipped[(p.kind, existing.problem if isinstance(existing, Found) and existing.problem else EXISTS)] += 1
        return
    if problem is None and not opts.dry_run:
        try:
            await _create(tk, p)
        except TillkeyError as exc:  # a name Tillkey refuses (look-alike, bad email)
            problem = exc.text[:80]
    if problem is not None:
        report.skipped[(p.kind, problem)] += 1
    else:
        report.imported[p.kind] += 1


async def _customers(
    tk: Tillkey, batch: list[Person], schemes: frozenset[str], report: Report, opts: Options, checkpoint: dict[str, Any]
) -> None:
    """One batch of customers in one transaction, with its checkpoint."""
    fresh: dict[str, tuple[names.Name, Person]] = {}
    alone: list[Person] = []  # a non-ASCII email: the one-by-one path checks look-alikes
    for p in batch:
        problem = _problem(p, schemes)
        if problem is None:
            try:
                name = names.email(p.email)
            except TillkeyError as exc:
                problem = exc.text[:80]
            else:
                if names.skeleton_matters(name, is_email=True) or p.totp_secret:
                    alone.append(p)  # (and one with a second factor: it comes with the customer)
                elif name.key in fresh:
                    problem = "same email on another website"
                else:
                    fresh[name.key] = (name, p)
        if problem is not None:
            report.skipped[(CUSTOMER, problem)] += 1
    deactivated: list[int] = []  # deactivated by the source since: signed out once committed
    async with tk.db.transaction() as s:
        existing = await repo.customers_by_email_key(s, list(fresh))
        if existing and opts.on_conflict == FAIL:
            raise ImportConflict(f"{len(existing)} imported customer(s) already in Tillkey (--on-conflict fail).")
        for key, (customer_id, stored, active) in existing.items():
            _name, p = fresh.pop(key)
            if opts.on_conflict == SKIP:
                report.skipped[(CUSTOMER, EXISTS)] += 1
                continue
            if not opts.dry_run:
                await _update_customer(tk, s, p, customer_id, stored)
                if active and p.standing is not None and not p.standing.is_active:
                    deactivated.append(customer_id)
            report.updated[CUSTOMER] += 1
        if not opts.dry_run:
            await repo.insert_customers(
                s, [(n, p.first_name, p.last_name, p.password or "", p.standing or SHOP) for n, p in fresh.values()]
            )
            locked = {key: p for key, (_n, p) in fresh.items() if p.locked_until is not None}
            if locked:  # few: looked up again for their new ids
                for key, (customer_id, _hash, _on) in (await repo.customers_by_email_key(s, list(locked))).items():
                    await _lock(tk, s, locked[key], customer_id)
        if fresh:
            report.imported[CUSTOMER] += len(fresh)
        position = batch[-1].position
        if not opts.dry_run and position is not None:
            await tk.audit.record_in(
                s,
                audit.IMPORT_CHECKPOINT,
                details={**checkpoint, "position": position, "imported": report.imported[CUSTOMER]},
            )
    for customer_id in deactivated:
        await tk.services.accounts.set_customer_active(customer_id, False)
    for p in alone:
        await _one(tk, p, None, report, opts)


def where(dsn: str) -> str:
    """A source database as the audit names it: host, port and database, never the credentials."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or ''}:{parts.port or ''}{parts.path}"


async def last_checkpoint(tk: Tillkey, source: str, where: str) -> str | None:
    """The position after which an unfinished run of this source stops, if any: a checkpoint
    newer than the source's last finished run."""
    found = await tk.audit.search(AuditQuery(event_prefix="import.", limit=200))
    for r in found:  # newest first
        details = json.loads(r.details or "{}")
        if details.get("source") != source or details.get("from") != where:
            continue
        if r.event == audit.IMPORT_RUN and not details.get("dry_run"):
            return None
        if r.event == audit.IMPORT_CHECKPOINT:
            position = details.get("position")
            return position if isinstance(position, str) else None
    return None


async def run(tk: Tillkey, source: str, where: str, read: Reader, schemes: frozenset[str], opts: Options) -> Report:
    """`source` names the system ("magento"), `where` the database (host/name, no credentials).

    A customer batch is written while the next one is read (one write in flight): the source's
    rows arrive while Tillkey's database inserts and commits (in its driver's thread or server).
    Everything else waits for that write, so admins, integrations and keys keep their order."""
    report = Report(opts.dry_run)
    if not opts.dry_run:
        report.resumed_after = await last_checkpoint(tk, source, where)
    checkpoint = {"source": source, "from": where}
    batch: list[Person] = []
    step = opts.progress or (lambda _n: None)
    writing: asyncio.Task[None] | None = None

    async def write(batch: list[Person]) -> None:
        await _customers(tk, batch, schemes, report, opts, checkpoint)
        step(len(batch))

    async def written() -> None:
        nonlocal writing
        if writing is not None:
            task, writing = writing, None
            await task

    try:
        # aclosing: a run that stops (--on-conflict fail) closes the source's stream in this task.
        async with contextlib.aclosing(read(report.resumed_after)) as items:
            async for item in items:
                if isinstance(item, Person) and item.kind == CUSTOMER:
                    batch.append(item)
                    if len(batch) >= opts.batch:
                        await written()
                        writing = asyncio.create_task(write(batch))
                        batch = []
                    continue
                await written()
                await _one(tk, item, _problem(item, schemes), report, opts)
                step(1)
            await written()
            if batch:
                await write(batch)
    finally:
        if writing is not None:  # the read failed: let the batch in flight commit or roll back
            with contextlib.suppress(Exception):
                await asyncio.shield(writing)
    if not opts.dry_run:
        await tk.audit.record(audit.IMPORT_RUN, details={**checkpoint, **report.as_dict()})
        await tk.reload_grants()
        await tk.reload_integrations()
        await tk.reload_api_keys()
    return report
