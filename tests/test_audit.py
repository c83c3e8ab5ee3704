"""The audit log: hash chain, tamper detection, no secrets, mirror, queue, concurrency, CLI, HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from typer.testing import Result

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Database, make_database
from tests.inprocess import InProcess
from tests.polling import eventually, until
from tillkey import audit
from tillkey.audit import GENESIS, AuditLog, record_hash, to_json
from tillkey.audit import chain as audit_chain
from tillkey.audit.query import QueryError, make_query, parse_time
from tillkey.clock import Clock
from tillkey.crypto.secrets import MasterSecret
from tillkey.security.redaction import REDACTED, names_secret
from tillkey.store import db as store_db
from tillkey.store.audit import AuditQuery, AuditRecord

T = TypeVar("T")
KEY = b"k" * 32  # the chain key (a deployment derives it from the master secret)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class FakeClock(Clock):
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        super().__init__()
        self.t = t

    def now(self) -> float:
        return self.t


def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    store_db.upgrade(url)
    return url


def with_log(
    url: str,
    fn: Callable[[AuditLog], Awaitable[T]],
    *,
    mirror: Path | None = None,
    clock: Clock | None = None,
    **kw: Any,
) -> T:
    """Run fn against a fresh AuditLog (and engine) in its own event loop."""

    async def main() -> T:
        db = store_db.Database(url)
        try:
            return await fn(AuditLog(db, clock or Clock(), mirror, **{"key": KEY, **kw}))
        finally:
            await db.dispose()

    return asyncio.run(main())


def all_records(url: str) -> list[AuditRecord]:
    return with_log(url, lambda log: log.search(AuditQuery(limit=100_000)))[::-1]


def sql(tmp_path: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        conn.execute(statement, params)


async def three_events(log: AuditLog) -> None:
    await log.record(
        audit.LOGIN_FAILURE,
        outcome=audit.FAILURE,
        actor_type=2,
        username="Alice",
        ip="10.0.0.1",
        user_agent="curl/8",
        request_id="r-1",
        details={"reason": "wrong password"},
    )
    await log.record(audit.LOGIN_SUCCESS, actor_type=2, actor_id=7, username="alice", ip="10.0.0.1")
    await log.record(audit.TOKEN_ISSUED, actor_type=2, actor_id=7, details={"jti": "abc", "ttl": 14400})


async def n_events(log: AuditLog, n: int) -> None:
    for i in range(n):
        await log.record(audit.LOGIN_SUCCESS, actor_type=3, actor_id=i, username=f"user{i}")


# --- the chain ----------------------------------------------------------------------------------


def test_records_form_a_hash_chain_from_genesis(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, three_events)
    records = all_records(url)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS == "0" * 64
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    for r in records:
        # The documented recipe, computed independently: HMAC-SHA256 under the chain key of the
        # canonical JSON of the record's object without `hash` and `time`.
        body = {k: v for k, v in to_json(r).items() if k not in ("hash", "time")}
        assert body["v"] == 2
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert hmac.new(KEY, canonical.encode(), hashlib.sha256).hexdigest() == r.hash
    first = to_json(records[0])
    assert first["details"] == {"reason": "wrong password"} and first["user_agent"] == "curl/8"
    report = with_log(url, lambda log: log.check())
    assert report.ok and report.count == 3
    assert with_log(url, lambda log: log.verify()) is None


def test_empty_log_verifies(tmp_path: Path) -> None:
    report = with_log(sqlite_url(tmp_path), lambda log: log.check())
    assert report.ok and report.count == 0


def test_altered_field_is_named(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, lambda log: n_events(log, 5))
    sql(tmp_path, "UPDATE audit_events SET username = 'mallory' WHERE seq = 3")
    report = with_log(url, lambda log: log.check())
    assert not report.ok and report.count == 2
    assert report.first_break is not None and report.first_break.seq == 3
    assert "altered" in report.first_break.reason


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("created_ms", 1),
        ("event", "login.failure"),
        ("outcome", "failure"),
        ("actor_id", 99),
        ("ip", "6.6.6.6"),
        ("details", '{"x":1}'),
        ("details", "not json"),
        ("prev_hash", "f" * 64),
    ],
)
def test_any_altered_column_is_detected(tmp_path: Path, column: str, value: Any) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, lambda log: n_events(log, 3))
    sql(tmp_path, f"UPDATE audit_events SET {column} = ? WHERE seq = 2", value)  # noqa: S608 (test-only column names)
    broken = with_log(url, lambda log: log.verify())
    assert broken is not None and broken.seq == 2 and "altered" in broken.reason


def test_record_rewritten_with_a_fresh_hash_breaks_the_next_link(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, lambda log: n_events(log, 4))
    second = all_records(url)[1]
    forged = dataclasses.replace(second, username="mallory")
    sql(tmp_path, "UPDATE audit_events SET username = 'mallory', hash = ? WHERE seq = 2", record_hash(forged, KEY))
    broken = with_log(url, lambda log: log.verify())
    assert broken is not None and broken.seq == 3 and "does not follow from record 2" in broken.reason


def test_deleted_middle_record_is_named(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, lambda log: n_events(log, 5))
    sql(tmp_path, "DELETE FROM audit_events WHERE seq = 3")
    report = with_log(url, lambda log: log.check())
    assert report.first_break is not None and report.first_break.seq == 3
    assert "missing" in report.first_break.reason and report.count == 2


def test_deleted_first_and_last_records_are_named(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with_log(url, lambda log: n_events(log, 5))
    sql(tmp_path, "DELETE FROM audit_events WHERE seq = 5")
    broken = with_log(url, lambda log: log.verify())
    assert broken is not None and broken.seq == 5 and "missing" in broken.reason and "head" in broken.reason
    sql(tmp_path, "DELETE FROM audit_events WHERE seq = 1")
    broken = with_log(url, lambda log: log.verify())
    assert broken is not None and broken.seq == 1 and "missing" in broken.reason


def test_chain_continues_across_restarts_and_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_chain, "VERIFY_PAGE", 7)  # several pages in one check
    url = sqlite_url(tmp_path)
    for _ in range(3):
        with_log(url, lambda log: n_events(log, 10))
    report = with_log(url, lambda log: log.check())
    assert report.ok and report.count == 30
    sql(tmp_path, "UPDATE audit_events SET actor_id = 1000 WHERE seq = 22")
    assert with_log(url, lambda log: log.verify()) == audit.ChainBreak(
        22, "record 22 was altered: its contents do not match its hash"
    )


# --- nothing secret, nothing malformed ----------------------------------------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"password": "x"},
        {"new_password": "x"},
        {"accessToken": "x"},
        {"refresh-token": "x"},
        {"client_secret": "x"},
        {"otp": "123456"},
        {"recovery_codes": ["a"]},
        {"Authorization": "Bearer x"},
        {"api_key": "x"},
        {"password_hash": "$argon2id$..."},
        {"cookie": "sid=1"},
        {"totp_secret": "x"},
        {"code": "x"},
        {"outer": {"inner": {"token": "x"}}},
        {"list": [{"pwd": "x"}]},
        {"accesstoken": "x"},
    ],
)
def test_details_naming_a_secret_are_refused_loudly(tmp_path: Path, details: dict[str, Any]) -> None:
    url = sqlite_url(tmp_path)

    async def go(log: AuditLog) -> None:
        with pytest.raises(ValueError, match="secret"):
            await log.record(audit.LOGIN_FAILURE, outcome=audit.FAILURE, details=details)
        with pytest.raises(ValueError, match="secret"):
            log.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, details=details)

    with_log(url, go)
    assert all_records(url) == []


def test_harmless_keys_pass() -> None:
    for key in ("reason", "jti", "method", "path", "resources", "role", "target_id", "expires_at", "ttl", "kid"):
        assert not names_secret(key), key


def test_credential_shaped_values_are_redacted_and_text_is_cleaned(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJ1aWQiOjF9.c2lnbmF0dXJl"

    async def go(log: AuditLog) -> None:
        await log.record(
            audit.ACCESS_DENIED,
            outcome=audit.FAILURE,
            user_agent="UA/" + "x" * 1000,
            username="eve\x00\nforged line \ud800",
            request_id="  ",
            details={"path": f"/rest/V1/x/{jwt}", "note": "Bearer tk_at_" + "a" * 40, "kind": {"jwt"}},
        )

    with_log(url, go)
    (r,) = all_records(url)
    assert r.user_agent is not None and len(r.user_agent) == audit.USER_AGENT_MAX
    assert r.username == "eve??forged line ?"
    assert r.request_id == "  "
    details = json.loads(r.details or "")
    assert details == {"path": f"/rest/V1/x/{REDACTED}", "note": REDACTED, "kind": ["jwt"]}
    assert jwt not in json.dumps(to_json(r))
    assert with_log(url, lambda log: log.verify()) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"event": "login.sucess"}, "unknown audit event"),
        ({"event": audit.LOGIN_SUCCESS, "outcome": "ok"}, "outcome"),
        ({"event": audit.LOGIN_SUCCESS, "details": ["x"]}, "dict"),
        ({"event": audit.LOGIN_SUCCESS, "details": {"x": float("nan")}}, "JSON"),
        ({"event": audit.LOGIN_SUCCESS, "details": {"x": object()}}, "JSON"),
        ({"event": audit.LOGIN_SUCCESS, "details": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "deep"),
        ({"event": audit.LOGIN_SUCCESS, "actor_id": "7"}, "int"),
    ],
)
def test_bad_calls_raise(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    url = sqlite_url(tmp_path)

    async def go(log: AuditLog) -> None:
        event = kwargs.pop("event")
        with pytest.raises(ValueError, match=match):
            await log.record(event, **kwargs)

    with_log(url, go)


# --- the JSON-lines mirror ----------------------------------------------------------------------


def test_mirror_gets_one_line_per_record(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    mirror = tmp_path / "logs" / "audit.jsonl"
    with_log(url, three_events, mirror=mirror)

    async def queued(log: AuditLog) -> None:
        log.start()
        for i in range(5):
            log.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_type=2, actor_id=i)
        await log.stop()

    with_log(url, queued, mirror=mirror)
    lines = [json.loads(line) for line in mirror.read_text().splitlines()]
    records = all_records(url)
    assert len(lines) == len(records) == 8
    assert lines == [to_json(r) for r in records]
    assert [line["seq"] for line in lines] == list(range(1, 9))
    assert lines[0]["time"].endswith("Z") and lines[0]["details"] == {"reason": "wrong password"}
    assert mirror.stat().st_mode & 0o777 == 0o600


def test_mirror_failure_does_not_fail_the_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = sqlite_url(tmp_path)
    (tmp_path / "adir").mkdir()
    with caplog.at_level(logging.ERROR, "tillkey.audit"):
        with_log(url, lambda log: n_events(log, 1), mirror=tmp_path / "adir")
    assert len(all_records(url)) == 1
    assert "audit mirror" in caplog.text


# --- the queue for the hot path -----------------------------------------------------------------


def test_record_soon_is_written_in_batches_and_stop_flushes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)

    async def go(log: AuditLog) -> int:
        log.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=0)  # before start: kept
        log.start()
        for i in range(1, 500):
            log.record_soon(
                audit.ACCESS_DENIED,
                outcome=audit.FAILURE,
                actor_type=2,
                actor_id=i,
                details={"path": "/rest/V1/orders"},
            )
        await asyncio.sleep(0)
        await log.stop()
        return log.dropped

    assert with_log(url, go, batch_size=50) == 0
    records = all_records(url)
    assert len(records) == 500 and sorted(r.actor_id or 0 for r in records) == list(range(500))
    assert with_log(url, lambda log: log.verify()) is None


def test_full_queue_keeps_everything_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = sqlite_url(tmp_path)

    async def go(log: AuditLog) -> int:
        for i in range(8):  # no writer running: the queue of 5 fills up, and nothing is dropped
            log.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=i)
        await log.stop()
        return log.dropped

    with caplog.at_level(logging.WARNING, "tillkey.audit"):
        assert with_log(url, go, queue_size=5) == 0
    assert [r.message for r in caplog.records].count("audit queue: 6 records wait for the writer") == 1
    assert len([r for r in caplog.records if "wait for the writer" in r.message]) == 1
    assert [r.actor_id for r in all_records(url)] == list(range(8))


# --- concurrency --------------------------------------------------------------------------------

APPENDER = """
import asyncio, os, sys, time
from tillkey.clock import Clock
from tillkey.audit import LOGIN_SUCCESS, AuditLog
from tillkey.store.db import Database

url, name, n, tasks, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

async def main():
    db = Database(url)
    log = AuditLog(db, Clock(), key=b"k" * 32)
    async def worker(w):
        for i in range(n // tasks):
            await log.record(LOGIN_SUCCESS, username=f"{name}-{w}-{i}")
            # A pause between records: this process then appends over a quarter second or more
            # instead of in one burst, which could end before the other's SQLite busy handler
            # (sleeping up to 100 ms between tries) first looked again; with them, they interleave.
            await asyncio.sleep(0.002)
    async with db.engine.connect() as conn:  # connected before the go, so neither starts late
        await conn.exec_driver_sql("SELECT 1")
    if db.batches_in_one_trip:  # and SQLite's batch thread and engine, where the records go
        await db.batch(lambda c: c.exec_driver_sql("SELECT 1"))
    open(go + "." + name, "w").close()  # ready: connected, about to wait for the go
    while not os.path.exists(go):  # start together
        time.sleep(0.002)
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    await db.dispose()

asyncio.run(main())
"""


def _backend_url(backend: str, tmp_path: Path) -> tuple[str, Database | None]:
    if backend == "sqlite":
        return sqlite_url(tmp_path), None
    database = make_database("postgres", tmp_path)
    store_db.upgrade(database.url)
    return database.url, database


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_appenders_in_one_process_keep_one_chain(backend: str, tmp_path: Path) -> None:
    url, database = _backend_url(backend, tmp_path)
    try:

        async def main() -> None:
            # Separate engines, as separate processes would have: only the database serializes them.
            dbs = [store_db.Database(url) for _ in range(4)]
            logs = [AuditLog(db, Clock(), key=KEY) for db in dbs]
            try:
                await asyncio.gather(*(n_events(log, 10) for log in logs for _ in range(3)))
                soon = logs[0]
                soon.start()
                for i in range(50):
                    soon.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=i)
                await asyncio.gather(soon.stop(), *(n_events(log, 5) for log in logs[1:]))
            finally:
                for db in dbs:
                    await db.dispose()

        asyncio.run(main())
        report = with_log(url, lambda log: log.check())
        assert report.ok, report.first_break
        assert report.count == 4 * 3 * 10 + 50 + 3 * 5
        assert [r.seq for r in all_records(url)] == list(range(1, report.count + 1))
    finally:
        if database:
            database.drop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_appending_at_once_keep_one_chain(backend: str, tmp_path: Path) -> None:
    url, database = _backend_url(backend, tmp_path)
    go = tmp_path / "go"
    try:
        procs = [
            # Enough records that the two overlap even though each process commits its five
            # workers' records together (group commit).
            subprocess.Popen([sys.executable, "-c", APPENDER, url, name, "600", "5", str(go)])
            for name in ("proc-a", "proc-b")
        ]
        # Both imported and waiting, then go: the two append at once.
        eventually(
            lambda: all((tmp_path / f"go.{name}").exists() for name in ("proc-a", "proc-b")),
            within=60,
            what="both appenders ready",
        )
        go.touch()
        for p in procs:
            assert p.wait(120) == 0
        report = with_log(url, lambda log: log.check())
        assert report.ok, report.first_break
        assert report.count == 1200
        owners = [(r.username or "").split("-")[1] for r in all_records(url)]
        assert owners.count("a") == owners.count("b") == 600
        switches = sum(1 for x, y in itertools.pairwise(owners) if x != y)
        assert switches >= 2, "the two processes did not overlap; the test proves nothing"
    finally:
        if database:
            database.drop()


# --- search -------------------------------------------------------------------------------------


def test_search_filters_newest_first(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    clock = FakeClock(1_800_000_000.0)

    async def go(log: AuditLog) -> dict[str, list[int]]:
        await three_events(log)  # seq 1-3 at t0
        clock.t += 3600
        await log.record(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_type=3, actor_id=5, username="bob")
        await log.record(audit.ROLE_CREATED, details={"role": "Sales"})  # seq 5, from the CLI: no actor

        async def seqs(**kw: Any) -> list[int]:
            return [r.seq for r in await log.search(make_query(**kw))]

        return {
            "all": await seqs(),
            "event": await seqs(event="login.success"),
            "family": await seqs(event="login.*"),
            "outcome": await seqs(outcome="failure"),
            "actor": await seqs(actor_type=2, actor_id=7),
            "type": await seqs(actor_type=2),
            "username": await seqs(username="ALICE"),
            "since": await seqs(since=str(1_800_000_000 + 60)),
            "until": await seqs(until="2027-01-15T08:00:00+00:00"),
            "page": await seqs(limit=2, offset=1),
        }

    got = with_log(url, go, clock=clock)
    assert got == {
        "all": [5, 4, 3, 2, 1],
        "event": [2],
        "family": [2, 1],
        "outcome": [4, 1],
        "actor": [3, 2],
        "type": [3, 2, 1],
        "username": [2, 1],
        "since": [5, 4],
        "until": [3, 2, 1],
        "page": [4, 3],
    }


def test_query_parsing() -> None:
    assert parse_time("1800000000") == 1_800_000_000_000
    assert parse_time("1800000000.25") == 1_800_000_000_250
    assert parse_time("2027-01-15T08:00:00Z") == parse_time("2027-01-15T08:00:00") == 1_800_000_000_000
    assert parse_time("2027-01-15T09:00:00+01:00") == 1_800_000_000_000
    for bad in ("yesterday", "nan", "-5", "1e300", ""):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert make_query(event="tfa.*").event_prefix == "tfa."
    for kwargs, field in [
        ({"event": "nope"}, "event"),
        ({"event": "nope.*"}, "event"),
        ({"outcome": "maybe"}, "outcome"),
        ({"actor_type": 9}, "actor_type"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": "soon"}, "since"),
        ({"since": "200", "until": "100"}, "until"),
        ({"username": ""}, "username"),
    ]:
        with pytest.raises(QueryError) as err:
            make_query(**kwargs)
        assert err.value.field == field


def test_migration_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command

    url = sqlite_url(tmp_path)
    command.downgrade(store_db.alembic_config(url), "0002")
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "audit_events" not in tables and "audit_head" not in tables and "login_failures" in tables
    store_db.upgrade(url)
    with_log(url, lambda log: n_events(log, 2))
    assert with_log(url, lambda log: log.check()).count == 2


# --- the CLI ------------------------------------------------------------------------------------
# The CLI runs in this process (CliRunner, tests/inprocess.py) on a data directory of the test's own.


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inprocess.cli_environment(monkeypatch, tmp_path)
    tillkey("db", "upgrade")  # the CLI needs no running server
    return tmp_path / "data"


def tillkey(*args: str, check: bool = True) -> Result:
    """`tillkey ARGS` for a synchronous test (no app runs beside it)."""
    return asyncio.run(inprocess.cli(*args, check=check))


def cli_key(data_dir: Path) -> bytes:
    """The chain key the CLI derives from the deployment's master secret."""
    return MasterSecret.load("", data_dir).derive(audit_chain.CHAIN_KEY_PURPOSE)


def test_cli_verify_tail_and_search(data_dir: Path) -> None:
    url = f"sqlite+aiosqlite:///{data_dir / 'tillkey.db'}"
    key = cli_key(data_dir)
    with_log(url, three_events, key=key)
    denied = audit.ACCESS_DENIED
    with_log(url, lambda log: log.record(denied, outcome=audit.FAILURE, actor_type=3, actor_id=4), key=key)

    res = tillkey("audit", "verify")
    assert res.stdout.strip() == "audit chain intact: 4 records"

    tail = [json.loads(line) for line in tillkey("audit", "tail", "-n", "2", "--json").stdout.splitlines()]
    assert [t["seq"] for t in tail] == [3, 4]  # oldest first, as tail does
    assert tail[1]["event"] == "access.denied" and tail[1]["outcome"] == "failure"

    human = tillkey("audit", "tail").stdout
    for word in ("login.failure", "login.success", "token.issued", "access.denied", "admin:7", "customer:4"):
        assert word in human, word

    def search(*args: str) -> list[int]:
        out = tillkey("audit", "search", *args, "--json").stdout
        return [json.loads(line)["seq"] for line in out.splitlines()]

    assert search("--event", "login.*") == [2, 1]
    assert search("--username", "ALICE", "--outcome", "success") == [2]
    now = int(time.time())
    assert search(
        "--actor-type",
        "2",
        "--actor-id",
        "7",
        "--limit",
        "1",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        str(now + 60),
    ) == [3]
    assert search("--since", str(now + 3600)) == []
    for args, message in [
        (("--event", "login.sucess"), "event: unknown event"),
        (("--since", "last tuesday"), "since: expected unix seconds"),
    ]:
        bad = tillkey("audit", "search", *args, check=False)
        assert bad.exit_code == 1 and bad.stderr.startswith(f"error: {message}"), bad.stderr


def test_cli_verify_names_the_altered_or_missing_record(data_dir: Path) -> None:
    url = f"sqlite+aiosqlite:///{data_dir / 'tillkey.db'}"
    with_log(url, lambda log: n_events(log, 5), key=cli_key(data_dir))
    with sqlite3.connect(data_dir / "tillkey.db") as conn:
        conn.execute("UPDATE audit_events SET username = 'nobody' WHERE seq = 2")
    res = tillkey("audit", "verify", check=False)
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip() == (
        "error: audit chain broken at seq 2: record 2 was altered: its contents do not match its hash"
    )
    with sqlite3.connect(data_dir / "tillkey.db") as conn:
        conn.execute("DELETE FROM audit_events WHERE seq IN (1, 2)")
    res = tillkey("audit", "verify", check=False)
    assert res.exit_code == 1 and "broken at seq 1: record 1 is missing" in res.stderr


# --- over HTTP (the app in this process, tests/inprocess.py) -------------------------------------


async def _events(client: httpx.AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/tillkey/v1/audit", params=params, headers=InProcess.bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def test_http_route_is_protected_and_shows_denials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "audit.jsonl"
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("TILLKEY_AUDIT_FILE", str(mirror))  # the CLI's records go to the same mirror

    async def body() -> None:
        async with inprocess.running(tmp_path, audit_file=mirror) as t:
            cli, cli_json = inprocess.cli, inprocess.cli_json
            await cli(
                "admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD
            )
            await cli("role", "create", "Catalog", "--resource", "Magento_Catalog::catalog")
            carol = await cli_json(
                "admin",
                "create",
                "--username",
                "carol",
                "--email",
                "carol@example.com",
                "--password",
                ADMIN_PASSWORD,
                "--role",
                "Catalog",
            )
            customer = await cli_json(
                "customer",
                "create",
                "--email",
                "c@example.com",
                "--password",
                CUSTOMER_PASSWORD,
                "--first-name",
                "C",
                "--last-name",
                "D",
            )
            alice_token = await t.admin_token("alice")
            carol_token = await t.admin_token("carol")
            customer_token = await t.customer_token("c@example.com")
            c = t.client

            r = await c.get("/tillkey/v1/audit")
            assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="tillkey"'
            assert (await c.get("/rest/V1/orders")).status_code == 401  # guests are not recorded
            carol_h = t.bearer(carol_token)
            assert (await c.get("/tillkey/v1/audit", headers=carol_h)).status_code == 403  # no Tillkey::audit
            assert (await c.get("/tillkey/v1/audit/verify", headers=carol_h)).status_code == 403
            r = await c.get(
                "/rest/V1/orders", headers={**carol_h, "User-Agent": "audit-test/1.0", "X-Request-ID": "req-123"}
            )
            assert r.status_code == 403
            assert (await c.get("/rest/V1/orders", headers=t.bearer(customer_token))).status_code == 403

            async def four_denials() -> list[dict[str, Any]]:
                found = await _events(c, alice_token, event="access.denied")
                return found if len(found) >= 4 else []

            # Written by the background writer, within moments.
            denied = await until(four_denials, what="four access.denied records")
            assert len(denied) == 4
            orders = next(e for e in denied if e["request_id"] == "req-123")
            assert orders["actor_type"] == 2 and orders["actor_id"] == carol["id"] and orders["outcome"] == "failure"
            assert orders["ip"] == "127.0.0.1" and orders["user_agent"] == "audit-test/1.0"
            assert orders["details"]["path"] == "/rest/V1/orders" and orders["details"]["method"] == "GET"
            assert orders["details"]["resources"] == ["Magento_Sales::actions_view"]
            assert {(e["actor_type"], e["actor_id"]) for e in denied} == {(2, carol["id"]), (3, customer["id"])}
            assert {e["details"]["path"] for e in denied} == {
                "/tillkey/v1/audit",
                "/tillkey/v1/audit/verify",
                "/rest/V1/orders",
            }
            alice_h = t.bearer(alice_token)
            text = (await c.get("/tillkey/v1/audit", headers=alice_h)).text
            assert carol_token not in text and customer_token not in text and ADMIN_PASSWORD not in text

            params: dict[str, Any] = {"actor_type": 2, "actor_id": carol["id"], "limit": 1}
            page = (await c.get("/tillkey/v1/audit", params=params, headers=alice_h)).json()
            assert len(page["events"]) == 1 and page["next_offset"] == 1
            window = {"since": "2000-01-01T00:00:00Z", "until": str(int(time.time()) + 60)}
            assert len(await _events(c, alice_token, event="access.denied", outcome="failure", **window)) == 4
            assert await _events(c, alice_token, event="access.denied", since=str(int(time.time()) + 3600)) == []
            assert await _events(c, alice_token, actor_type=4) == []  # no guest was recorded
            everything = await _events(c, alice_token, limit=500)

            for params in [
                {"limit": "0"},
                {"limit": "501"},
                {"limit": "ten"},
                {"offset": "-1"},
                {"since": "garbage"},
                {"until": "1e999"},
                {"actor_type": "9"},
                {"actor_id": "x"},
                {"event": "nope"},
                {"outcome": "meh"},
                {"colour": "blue"},
                {"limit": ["1", "2"]},
                {"actor_id": "9" * 30},
            ]:
                r = await c.get("/tillkey/v1/audit", params=params, headers=alice_h)
                assert r.status_code == 400, (params, r.status_code, r.text)
                assert r.json()["error"] == "InvalidRequest", r.text

            v = (await c.get("/tillkey/v1/audit/verify", headers=alice_h)).json()
            assert v == {"ok": True, "first_bad_seq": None, "reason": None, "count": len(everything)}

            with sqlite3.connect(tmp_path / "data" / "tillkey.db") as conn:
                conn.execute("UPDATE audit_events SET ip = '10.9.9.9' WHERE seq = ?", (orders["seq"],))
            v = (await c.get("/tillkey/v1/audit/verify", headers=alice_h)).json()
            assert v["ok"] is False and v["first_bad_seq"] == orders["seq"] and "altered" in v["reason"]
            assert v["count"] == orders["seq"] - 1

            spec = (await c.get("/openapi.json", headers=alice_h)).json()["paths"]
            assert spec["/tillkey/v1/audit"]["get"]["x-tillkey-resources"] == ["Tillkey::audit"]
            assert spec["/tillkey/v1/audit/verify"]["get"]["x-tillkey-resources"] == ["Tillkey::audit"]

        # The app and the CLI append to the same mirror; it holds what the database holds.
        lines = [json.loads(line) for line in mirror.read_text().splitlines()]
        assert sorted(line["seq"] for line in lines) == sorted(e["seq"] for e in everything)
        assert [line for line in lines if line["seq"] == orders["seq"]] == [orders]

    inprocess.run(body)
