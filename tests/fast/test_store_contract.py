"""The storage contract: what the store layer (src/tillkey/store/) promises its callers, on SQLite
and on PostgreSQL alike. The security sequences above it lean on these promises: a revocation
watermark never moves back, a TOTP step or a recovery code is spent once, a session bound holds,
a rolled-back transaction tells no one. Each test migrates a fresh database and calls the
repository functions directly (no app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tillkey.errors import Conflict
from tillkey.store import auth, sessions, throttle, totp
from tillkey.store.db import Database, upgrade_async
from tillkey.store.models import AdminRow
from tillkey.store.sessions import Session

ADMIN, CUSTOMER = 2, 3  # UserType values, as stored
NOW = datetime(2026, 12, 6, 12, 0)  # naive UTC, as the store keeps datetimes


@asynccontextmanager
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on `backend`."""
    with inprocess.database(backend, tmp_path) as settings:
        url = settings.get("database_url") or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        await upgrade_async(url)
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()


def run(backend: str, tmp_path: Path, body: Callable[[Database], Awaitable[None]]) -> None:
    async def main() -> None:
        async with store(backend, tmp_path) as db:
            await body(db)

    inprocess.run(main)


async def _admin(db: Database, username: str) -> int:
    async with db.transaction() as s:
        now = NOW
        row = AdminRow(
            username=username,
            username_key=username,
            email=f"{username}@example.com",
            password_hash="x",
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        await s.flush()
        return int(row.id)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_the_revocation_watermark_never_moves_back(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.transaction() as s:
            assert await auth.revoke_before_of(s, ADMIN, 1) is None
            await auth.set_revoke_before(s, ADMIN, 1, 1000)
            await auth.set_revoke_before(s, ADMIN, 1, 900)  # a slower process's older revocation
            await auth.set_revoke_before(s, CUSTOMER, 1, 500)
        async with db.session() as s:
            assert await auth.revoke_before_of(s, ADMIN, 1) == 1000
            assert await auth.all_revoke_before(s, 0) == {(ADMIN, 1): 1000, (CUSTOMER, 1): 500}
            assert await auth.all_revoke_before(s, 600) == {(ADMIN, 1): 1000}
        async with db.transaction() as s:
            await auth.set_revoke_before(s, ADMIN, 1, 1200)
        async with db.session() as s:
            assert await auth.revoke_before_of(s, ADMIN, 1) == 1200

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_revoked_and_opaque_tokens_live_until_they_expire(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        forever = auth.OpaqueToken("j-1", ADMIN, 7, 100, None, ("pwd", "otp"))
        oauth = auth.OpaqueToken("j-2", ADMIN, 7, 100, 200, ("pwd",), ("openid", "profile"), "client-1")
        async with db.transaction() as s:
            await auth.add_revoked_token(s, "a", 200)
            await auth.add_revoked_token(s, "a", 999)  # revoking twice keeps the first, no error
            await auth.add_revoked_token(s, "b", None)
            await auth.add_revoked_token(s, "c", 150)
            await auth.add_opaque_token(s, "digest-1", forever)
            await auth.add_opaque_token(s, "digest-2", oauth)
        async with db.session() as s:
            assert await auth.revoked_tokens(s, 100) == {"a": 200, "b": None, "c": 150}
            assert await auth.revoked_tokens(s, 150) == {"a": 200, "b": None}  # expired at 150: no longer listed
            assert await auth.revoked_tokens(s, 100, ["a", "zzz"]) == {"a": 200}
            assert await auth.opaque_token(s, "digest-1") == forever
            assert await auth.opaque_token(s, "digest-2") == oauth
            assert await auth.opaque_token(s, "digest-3") is None
        async with db.transaction() as s:
            await auth.purge_expired(s, 200)
        async with db.session() as s:
            assert await auth.revoked_tokens(s, 0) == {"b": None}  # a and c expired by 200: gone
            assert await auth.opaque_token(s, "digest-1") == forever
            assert await auth.opaque_token(s, "digest-2") is None

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_the_change_feed_is_ordered_and_told_only_after_commit(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        told: list[list[Any]] = []
        db.after_commit = told.append
        async with db.session() as s:
            assert await auth.last_change_seq(s) == 0
        async with db.transaction() as s:
            await auth.record_change(s, "grants", 100, user_type=ADMIN, user_id=1)
            await auth.record_change(s, "revocation", 100, user_type=CUSTOMER, user_id=2, ref="r")
        assert [[c.kind for c in batch] for batch in told] == [["grants", "revocation"]]
        with pytest.raises(RuntimeError):
            async with db.transaction() as s:
                await auth.record_change(s, "keys", 150)
                raise RuntimeError("rolled back")
        assert len(told) == 1  # a rolled-back change is told to no one
        async with db.transaction() as s:
            await auth.record_change(s, "keys", 300)
        async with db.session() as s:
            everything = await auth.changes_since(s, 0, 10**9)
            assert [(c.kind, c.user_type, c.user_id, c.ref) for c in everything] == [
                ("grants", ADMIN, 1, None),
                ("revocation", CUSTOMER, 2, "r"),
                ("keys", None, None, None),
            ]
            seqs = [c.seq for c in everything]
            assert seqs == sorted(seqs) and len(set(seqs)) == 3
            assert await auth.last_change_seq(s) == seqs[-1]
            assert [c.kind for c in await auth.changes_since(s, seqs[0], 10**9)] == ["revocation", "keys"]
            # A late commit (a lower seq that appears after a higher one was read) is caught by its time.
            assert [c.kind for c in await auth.changes_since(s, seqs[-1], 100)] == ["grants", "revocation", "keys"]
        async with db.transaction() as s:
            await auth.trim_changes(s, 200)
        async with db.session() as s:
            assert [c.kind for c in await auth.changes_since(s, 0, 10**9)] == ["keys"]

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_login_failures_count_lock_and_start_again_once_the_lock_ran_out(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.transaction() as s:
            assert await throttle.failures(s, "alice", ADMIN) == (0, 0)
            assert await throttle.add_failure(s, "alice", ADMIN, 100, 60) == 1
            assert await throttle.add_failure(s, "alice", ADMIN, 110, 60) == 2  # each failure extends the lock
            assert await throttle.add_failure(s, "alice", CUSTOMER, 110, 60) == 1  # another user type
        async with db.session() as s:
            assert await throttle.failures(s, "alice", ADMIN) == (2, 170)
        async with db.transaction() as s:
            assert await throttle.add_failure(s, "alice", ADMIN, 170, 60) == 1  # the lock ran out at 170
            await throttle.clear_failures(s, "alice", ADMIN)
        async with db.session() as s:
            assert await throttle.failures(s, "alice", ADMIN) == (0, 0)
            assert await throttle.failures(s, "alice", CUSTOMER) == (1, 170)

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_failures_of_one_name_at_once_all_count(backend: str, tmp_path: Path) -> None:
    """Failures of a name (and an account) with no row yet, in transactions at the same moment: the
    losing inserts count on the row the winner made; none fails."""

    async def body(db: Database) -> None:
        async def fail() -> None:
            async with db.transaction() as s:
                await throttle.add_failure(s, "bob", CUSTOMER, 100, 60)
                await throttle.add_account_failure(s, CUSTOMER, 7, 100, 1000, 600)

        await asyncio.gather(*(fail() for _ in range(6)))
        async with db.session() as s:
            assert await throttle.failures(s, "bob", CUSTOMER) == (6, 160)

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_an_account_locks_at_the_threshold_and_unlocks(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.transaction() as s:
            assert await throttle.account_lock(s, ADMIN, 1) == 0
            assert [await throttle.add_account_failure(s, ADMIN, 1, 100, 3, 600) for _ in range(3)] == [
                False,
                False,
                True,
            ]
        async with db.session() as s:
            assert await throttle.account_lock(s, ADMIN, 1) == 700
            assert await throttle.account_lock(s, ADMIN, 2) == 0
        async with db.transaction() as s:
            assert not await throttle.add_account_failure(s, ADMIN, 1, 200, 3, 600)  # counting starts again
            await throttle.reset_account(s, ADMIN, 1)  # a good password: the count, not the lock
        async with db.transaction() as s:
            assert await throttle.account_lock(s, ADMIN, 1) == 700
            assert not await throttle.add_account_failure(s, ADMIN, 1, 200, 2, 600)
            await throttle.unlock_account(s, ADMIN, 1)
        async with db.session() as s:
            assert await throttle.account_lock(s, ADMIN, 1) == 0

    run(backend, tmp_path, body)


def _session(
    digest: str, created: int, *, kind: str = "console", user_id: int = 1, ttl: int = 1000
) -> sessions.Session:
    return Session(digest, kind, ADMIN, user_id, None, "{}", created, created + ttl)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_sessions_are_bounded_per_account_and_kind(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.transaction() as s:
            for n in range(3):
                assert await sessions.add_bounded(s, _session(f"s{n}", 100 + n), limit=3, evict=True) == []
            await sessions.add(s, _session("other-kind", 100, kind="medusa"))
            await sessions.add(s, _session("other-user", 100, user_id=2))
        async with db.transaction() as s:
            evicted = await sessions.add_bounded(s, _session("s3", 200), limit=3, evict=True)
        assert [x.digest for x in evicted] == ["s0"]  # the oldest goes
        with pytest.raises(Conflict):
            async with db.transaction() as s:
                await sessions.add_bounded(s, _session("s4", 210), limit=3, evict=False)
        async with db.session() as s:
            mine = await sessions.of_user(s, 210, user_type=ADMIN, user_id=1, kind="console")
            assert [x.digest for x in mine] == ["s1", "s2", "s3"]  # the refused one wrote nothing
        # A lower rank goes first (a sign-in still waiting for its code), whatever its age.
        async with db.transaction() as s:
            evicted = await sessions.add_bounded(
                s, _session("s5", 220), limit=3, evict=True, rank=lambda x: 0 if x.digest == "s3" else 1
            )
        assert [x.digest for x in evicted] == ["s3"]

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_sessions_live_slide_and_end(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.transaction() as s:
            await sessions.add(s, _session("a", 100, ttl=100))
            await sessions.add(s, _session("b", 100, ttl=500, kind="medusa"))
        async with db.session() as s:
            assert {x.digest for x in await sessions.live(s, 150)} == {"a", "b"}
            assert [x.digest for x in await sessions.live(s, 150, ["b", "zzz"])] == ["b"]
            assert await sessions.count_live(s, 150) == {"console": 1, "medusa": 1}
            assert [x.digest for x in await sessions.of_kind(s, 150, "medusa")] == ["b"]
        async with db.transaction() as s:
            assert await sessions.extend(s, "a", 400, 150)
            assert not await sessions.extend(s, "gone", 400, 150)
            await sessions.record_seen(s, {"b": 180})
        async with db.session() as s:
            assert {x.digest for x in await sessions.live(s, 300)} == {"a", "b"}  # a slid past its first expiry
            assert await sessions.last_seen(s, ["a", "b"]) == {"a": 150, "b": 180}
        async with db.transaction() as s:
            assert await sessions.end(s, "a")
            assert not await sessions.end(s, "a")
            await sessions.purge_expired(s, 600)  # b expired at 600
        async with db.session() as s:
            assert await sessions.live(s, 0) == []

    run(backend, tmp_path, body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_a_totp_step_and_a_recovery_code_are_spent_once(backend: str, tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        admin = await _admin(db, "alice")
        now = NOW
        async with db.transaction() as s:
            assert await totp.get(s, admin) is None
            await totp.put_pending(s, admin, b"first", now)
            await totp.put_pending(s, admin, b"second", now)  # a new enrolment replaces a pending one
            assert not await totp.claim_step(s, admin, 10)  # not active yet
        async with db.transaction() as s:
            assert await totp.activate(s, admin, 10, ["d1", "d2"])
            assert not await totp.activate(s, admin, 11, ["d3"])  # already active
        async with db.transaction() as s:
            record = await totp.get(s, admin)
            assert record is not None and record.secret_enc == b"second" and record.active and record.last_step == 10
            with pytest.raises(Conflict):
                await totp.put_pending(s, admin, b"third", now)  # an active secret stays
        async with db.transaction() as s:
            assert not await totp.claim_step(s, admin, 10)  # spent by the activation
            assert await totp.claim_step(s, admin, 11)
            assert not await totp.claim_step(s, admin, 11)  # a replay
            assert not await totp.claim_step(s, admin, 9)  # an older step
            assert await totp.use_recovery_code(s, admin, "d1", now)
            assert not await totp.use_recovery_code(s, admin, "d1", now)
            assert not await totp.use_recovery_code(s, admin, "d3", now)  # never issued
            assert await totp.unused_recovery_codes(s, admin) == 1
        async with db.transaction() as s:
            assert await totp.delete_all(s, admin)
            assert not await totp.delete_all(s, admin)
            assert await totp.get(s, admin) is None and await totp.unused_recovery_codes(s, admin) == 0

    run(backend, tmp_path, body)
