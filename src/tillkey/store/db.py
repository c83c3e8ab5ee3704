"""Engine, sessions and migrations. SQLite (WAL) is the embedded default; PostgreSQL scales out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ClauseElement, Connection, CursorResult, Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    # Alembic (with Mako and its migration scripts) is loaded only when there is something to
    # migrate: every server start and CLI command checks first (`upgrade_async`).
    from alembic.config import Config


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes a CLI write wait for the
    # server's write instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


@functools.cache
def _insert_sql(table: Table, columns: tuple[str, ...], dialect_name: str, rows: int) -> str:
    """`INSERT … VALUES (…), (…), …` for `rows` rows, compiled once per table and row count."""
    from sqlalchemy.dialects import sqlite

    if dialect_name != "sqlite":
        raise ValueError("insert_many_sync compiles for SQLite only (Database.batch)")
    one = str(insert(table).compile(dialect=sqlite.dialect(), column_keys=list(columns)))
    head, _, values = one.partition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * rows)}"


@functools.cache
def _sqlite_compiled(statement: ClauseElement) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    from sqlalchemy.dialects import sqlite

    compiled = statement.compile(dialect=sqlite.dialect())
    assert isinstance(compiled, SQLCompiler)  # SQLite's compiler is positional: `?` in this order
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


def execute_sync(conn: Connection, statement: ClauseElement, params: dict[str, Any]) -> CursorResult[Any]:
    """A statement built once at import (a module constant: compiled once, kept for good), run by
    the driver on a batch's thread (Database.batch, SQLite) without SQLAlchemy's per-execution
    compile-cache lookup and parameter processing. Plain column types only."""
    sql, order, defaults = _sqlite_compiled(statement)
    values = defaults | params
    return conn.exec_driver_sql(sql, tuple(values[name] for name in order))


# Rows per statement, at most: bounds the compiled statements kept, and the parameters per statement
# (SQLite's limit, read from the connection, may be lower: as low as 999 before 3.32).
_ROWS_MAX = 128


def insert_many_sync(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]
) -> None:
    """Rows (tuples in `columns` order) in multi-row INSERTs compiled once per table and row count,
    run by the driver: on a batch's thread (Database.batch) SQLAlchemy's per-statement compile-cache
    lookup and parameter processing cost more than SQLite's own insert. One statement, not one per
    row as executemany runs them: the driver lets go of the GIL around every statement, and under
    load each row then waited for the busy event loop to hand it back (68 us of the batch thread's
    CPU per audit record, against 11 us for SQLite's own work). Plain column types only (no
    TypeDecorator: nothing here converts a value)."""
    if not rows:
        return
    driver = conn.connection.dbapi_connection
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if driver is not None else 999
    most = max(1, min(_ROWS_MAX, limit // len(columns)))
    at = 0
    while at < len(rows):
        # Chunks of a power of two rows: at most eight statement shapes per table, which stay in
        # the driver's cache of prepared statements (preparing a many-row INSERT costs more than
        # running it); a group of 37 rows is three statements (32, 4, 1).
        size = 1 << (min(most, len(rows) - at).bit_length() - 1)
        chunk = rows[at : at + size]
        params = tuple(value for row in chunk for value in row)
        conn.exec_driver_sql(_insert_sql(table, columns, conn.dialect.name, size), params)
        at += size


def _create_private(url: str) -> None:
    """Create a new SQLite file readable by its owner only (it holds password hashes and the audit
    log); SQLite gives its -wal and -shm files the same mode."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        _create_private(url)
        # SQLite connections are cheap, and readers never wait for the writer in WAL mode: a roomy
        # pool keeps reads flowing while logins queue for the single write lock. No reset on return:
        # every session and connection here ends its own transaction (commit, or the rollback of
        # close()), so the pool's extra rollback would only cost one more trip to aiosqlite's thread
        # per session, each waiting for a turn of a busy event loop (a read made 6 trips, now 5; an
        # opaque token group 15, now 14).
        engine = create_async_engine(
            url, connect_args={"timeout": 10}, pool_size=20, max_overflow=20, pool_reset_on_return=None
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


T = TypeVar("T")


# Session.info key under which store/auth.add_change notes the change-feed rows of a transaction.
CHANGES = "tillkey.changes"
# Session.info key of callbacks to run once the transaction has committed (never on rollback).
AFTER_COMMIT = "tillkey.after_commit"


def after_commit(s: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the transaction of `s` (from Database.transaction) has committed: work
    outside the database that must never describe a rolled-back change (the audit mirror)."""
    s.info.setdefault(AFTER_COMMIT, []).append(callback)


class Database:
    """Owns the engine and hands out sessions; one per process.

    `after_commit`, if set, is called with the change-feed rows of every transaction that wrote
    some, once it has committed (never for one rolled back): other processes may be told then,
    as the change is visible to them (store/broadcast.py)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit: Callable[[list[Any]], None] | None = None
        # SQLite has one write lock per file, and its busy handler waits for it with sleeps (1, 2,
        # 5 … 100 ms): this process's batch writers (the audit writer, opaque token groups) take
        # turns here instead, where the next one wakes as soon as the last commit is done.
        self._write_turn = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None
        # SQLite batch writes (`batch`): a synchronous engine driven from one thread of its own.
        database = make_url(url).database if self._write_turn is not None else None
        on_disk = database and database != ":memory:" and not database.startswith("file:")
        self._batch_path = database if on_disk else None
        self._batch_engine: Engine | None = None
        self._batch_thread: ThreadPoolExecutor | None = None

    def write_turn(self) -> AbstractAsyncContextManager[Any]:
        """Hold while writing a batch: a turn on SQLite's single write lock, nothing elsewhere
        (PostgreSQL writes rows side by side)."""
        return self._write_turn if self._write_turn is not None else contextlib.nullcontext()

    @property
    def batches_in_one_trip(self) -> bool:
        """Whether `batch` is available: SQLite in a file (PostgreSQL writes through the async engine)."""
        return self._batch_path is not None

    async def batch(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction on SQLite, all of it on one database thread: a batch of
        statements costs one trip from the event loop instead of three per statement through
        aiosqlite (each trip waits for a turn of a busy loop). Commits if `work` returns, rolls back
        if it raises. Hold `write_turn` around it. SQLite only (`batches_in_one_trip`)."""
        if self._batch_engine is None:
            sync_url = make_url(self.url).set(drivername="sqlite")
            self._batch_engine = create_engine(sync_url, connect_args={"timeout": 10, "check_same_thread": False})
            event.listen(self._batch_engine, "connect", _sqlite_pragmas)
            self._batch_thread = ThreadPoolExecutor(1, thread_name_prefix="tillkey-sqlite-batch")
        engine, thread = self._batch_engine, self._batch_thread
        assert thread is not None

        def run() -> T:
            with engine.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(thread, run)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s:
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self._sessions() as s:
            async with s.begin():
                yield s
            changes = s.info.pop(CHANGES, None)
            if changes and self.after_commit is not None:
                self.after_commit(changes)
            for callback in s.info.pop(AFTER_COMMIT, ()):
                callback()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._batch_thread is not None:
            assert self._batch_engine is not None
            engine = self._batch_engine
            await asyncio.get_running_loop().run_in_executor(self._batch_thread, engine.dispose)
            self._batch_thread.shutdown(wait=False)
            self._batch_engine = self._batch_thread = None


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    script_dir = importlib_resources.files("tillkey.store").joinpath("migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(script_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic). Safe to call on every start."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


_REVISION = re.compile(r"""^(down_revision|revision) = (?:None|["']([^"']+)["'])$""", re.MULTILINE)


@functools.cache
def head_revision() -> str | None:
    """The newest migration's id, read from the scripts' `revision` and `down_revision` lines
    without Alembic: the one revision no other script follows. None unless that is exactly one
    (a branch, or a script this cannot read): then Alembic decides."""
    revisions: set[str] = set()
    followed: set[str] = set()
    versions = importlib_resources.files("tillkey.store").joinpath("migrations", "versions")
    for script in versions.iterdir():
        if not script.name.endswith(".py") or script.name.startswith("_"):
            continue
        found = dict((m.group(1), m.group(2)) for m in _REVISION.finditer(script.read_text()))
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            followed.add(found["down_revision"])
    heads = revisions - followed
    return heads.pop() if len(heads) == 1 else None


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database records the newest migration as applied (alembic_version). Any
    failure (no such table, no database, no connection) is a no: Alembic then runs and reports."""
    head = head_revision()
    if head is None:
        return False
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except Exception:
        return False
    return list(rows) == [head]


async def upgrade_async(url: str, engine: AsyncEngine | None = None) -> None:
    """`upgrade` to head, unless the database is there already (`engine`: one on `url` to check
    with, else a short-lived one): a start then neither loads Alembic nor reads every migration."""
    checker = engine or make_engine(url)
    try:
        if await at_head(checker):
            return
    finally:
        if engine is None:
            await checker.dispose()
    # Alembic's async env runs its own event loop, so it goes to a worker thread.
    await asyncio.to_thread(upgrade, url)
