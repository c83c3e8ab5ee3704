"""The start's migration check (store/db.py): a database already at the newest revision is left
alone without Alembic; one behind it, or without the schema, is migrated by Alembic as before."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from tillkey.store import db as store_db

VERSIONS = Path(store_db.__file__).parent / "migrations" / "versions"


def _recorded(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


def test_head_is_the_last_script_of_the_chain() -> None:
    newest = max(p.name for p in VERSIONS.glob("[0-9]*.py"))
    assert store_db.head_revision() == newest.partition("_")[0]


def test_fresh_and_behind_databases_are_migrated_and_one_at_head_is_not(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def at_head() -> bool:
        engine = store_db.make_engine(url)
        try:
            return await store_db.at_head(engine)
        finally:
            await engine.dispose()

    assert not asyncio.run(at_head())  # no schema at all
    asyncio.run(store_db.upgrade_async(url))
    assert _recorded(path) == [store_db.head_revision()]
    assert asyncio.run(at_head())

    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    store_db.upgrade(url, "0008")  # an older schema: behind, so Alembic brings it up
    assert not asyncio.run(at_head())
    asyncio.run(store_db.upgrade_async(url))
    assert _recorded(path) == [store_db.head_revision()]
    assert asyncio.run(at_head())


def test_a_start_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    """In a process of its own (this one has imported Alembic already)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    store_db.upgrade(url)
    probe = (
        "import asyncio, sys\n"
        "from tillkey.store import db\n"
        f"asyncio.run(db.upgrade_async({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
