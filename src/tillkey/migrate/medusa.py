"""`tillkey import medusa`: users and customers of a Medusa v2 database, with their emailpass
passwords (scrypt-kdf, verified as Medusa does and upgraded at first sign-in: crypto/legacy_hashes.py).

Reads stream (server-side cursor), so memory stays flat however many rows the shop has. Accounts
are created through the account service as the operator (access/delegation.py: Medusa users are
full admins, so each gets Administrators, which only the operator may hand out). Idempotent: an
email (customers) or username (admins) Tillkey already has is skipped with its reason, so a
second run imports nothing; `dry_run` reports the same without writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import Accounts
from tillkey.crypto import legacy_hashes
from tillkey.errors import TillkeyError
from tillkey.runtime import Tillkey
from tillkey.security import audit
from tillkey.store import accounts as repo

# An actor's emailpass password: auth_identity.app_metadata names the actor, provider_identity
# holds the hash (medusa.md §5). Soft-deleted rows (deleted_at) are left behind.
_ACTORS = """
    SELECT a.email, a.first_name, a.last_name, p.provider_metadata ->> 'password' AS password
    FROM {table} a
    LEFT JOIN auth_identity i ON i.app_metadata ->> '{key}' = a.id AND i.deleted_at IS NULL
    LEFT JOIN provider_identity p
      ON p.auth_identity_id = i.id AND p.provider = 'emailpass' AND p.deleted_at IS NULL
    WHERE a.deleted_at IS NULL {only}
    ORDER BY a.id
"""
USERS = _ACTORS.format(table='"user"', key="user_id", only="")
CUSTOMERS = _ACTORS.format(table="customer", key="customer_id", only="AND a.has_account")


@dataclass(frozen=True, slots=True)
class Row:
    email: str
    first_name: str
    last_name: str
    password: str | None


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


def async_url(dsn: str) -> str:
    """postgresql://… as SQLAlchemy's asyncpg URL."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


async def read(dsn: str, query: str) -> AsyncIterator[Row]:
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            result = await conn.stream(text(query).execution_options(yield_per=1000))
            async for r in result:
                yield Row(r.email or "", r.first_name or "", r.last_name or "", r.password)
    finally:
        await engine.dispose()


def _problem(row: Row) -> str | None:
    if not row.email:
        return "no email"
    if row.password is None:
        return "no emailpass identity"
    if legacy_hashes.scheme_of(row.password) != legacy_hashes.MEDUSA_SCRYPT:
        return "invalid hash"
    return None


async def _one(tk: Tillkey, kind: str, row: Row, report: Report) -> None:
    problem = _problem(row)
    if problem is None:
        async with tk.db.session() as s:
            found = await (
                repo.admin_by_username(s, row.email) if kind == "user" else repo.customer_by_email(s, row.email)
            )
        problem = "already in Tillkey" if found is not None else None
    if problem is not None:
        report.skipped[(kind, problem)] += 1
        return
    if report.dry_run:
        report.imported[kind] += 1
        return
    assert row.password is not None
    accounts = Accounts(tk)
    try:
        if kind == "user":
            await accounts.import_admin(
                OPERATOR, username=row.email, email=row.email, password_hash=row.password,
                firstname=row.first_name, lastname=row.last_name,
            )  # fmt: skip
        else:
            await accounts.import_customer(
                email=row.email, password_hash=row.password, firstname=row.first_name, lastname=row.last_name
            )
    except TillkeyError as exc:  # a name Tillkey refuses (look-alike, bad email): skipped, with why
        report.skipped[(kind, exc.text[:80])] += 1
        return
    report.imported[kind] += 1


async def import_medusa(tk: Tillkey, dsn: str, *, dry_run: bool = False) -> Report:
    report = Report(dry_run)
    for kind, query in (("user", USERS), ("customer", CUSTOMERS)):
        async for row in read(dsn, query):
            await _one(tk, kind, row, report)
    if not dry_run:
        await tk.audit.record(audit.IMPORT_RUN, details={"source": "medusa", **report.as_dict()})
        await tk.reload_grants()
    return report
