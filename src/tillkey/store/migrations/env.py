"""Alembic environment: async engine; on PostgreSQL an advisory lock makes concurrent starts safe."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tillkey.store.db import make_engine
from tillkey.store.models import Base

# Any constant works; it only has to be the same in every Tillkey process.
_MIGRATION_LOCK_ID = 0x7117_4E1


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # One process migrates; the others wait here, then find nothing left to do.
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID})
            connection.commit()


async def _main() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `tillkey db upgrade`")
asyncio.run(_main())
