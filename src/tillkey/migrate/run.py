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
from tillkey.crypto import legacy_hashes
from tillkey.errors import TillkeyError
from tillkey.store import accounts as repo

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

ADMIN, CUSTOMER = "admin", "customer"


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


def _problem(p: Person, schemes: frozenset[str]) -> str | None:
    if p.problem:
        return p.problem
    if not p.email or not p.username:
        return "no email"
    if p.password is None:
        return "no password"
    if legacy_hashes.scheme_of(p.password) not in schemes:
        return "invalid hash"
    return None


async def _exists(tk: Tillkey, p: Person) -> bool:
    async with tk.db.session() as s:
        if p.kind == ADMIN:
            return await repo.admin_by_username(s, p.username) is not None
        return await repo.customer_by_email(s, p.email) is not None


async def _create(tk: Tillkey, p: Person) -> None:
    assert p.password is not None
    accounts = tk.services.accounts
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
    tk: Tillkey, source: str, people: AsyncIterator[Person], schemes: frozenset[str], *, dry_run: bool
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
    return report
