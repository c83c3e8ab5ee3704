"""`tillkey import medusa`: users and customers of a Medusa v2 database, with their emailpass
passwords (scrypt-kdf, verified as Medusa does and upgraded at first sign-in). Medusa users are
full admins: each becomes an admin named by its email, holding Administrators. Reads stream
(server-side cursor), so memory stays flat however many rows the shop has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tillkey.crypto import legacy_hashes
from tillkey.migrate.run import ADMIN, CUSTOMER, Person, Report, run

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

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


def async_url(dsn: str) -> str:
    """postgresql://… as SQLAlchemy's asyncpg URL."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


async def read(dsn: str) -> AsyncIterator[Person]:
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            for kind, query in ((ADMIN, USERS), (CUSTOMER, CUSTOMERS)):
                result = await conn.stream(text(query).execution_options(yield_per=1000))
                async for r in result:
                    email = r.email or ""
                    yield Person(kind, email, email, r.first_name or "", r.last_name or "", r.password)
    finally:
        await engine.dispose()


async def import_medusa(tk: Tillkey, dsn: str, *, dry_run: bool = False) -> Report:
    return await run(tk, "medusa", read(dsn), frozenset({legacy_hashes.MEDUSA_SCRYPT}), dry_run=dry_run)
