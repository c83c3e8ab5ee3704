"""The audit chain you can trust: keyed, anchored outside the database, written in the same
transaction as the change it records, and never dropping a record under load.

Attacks are played as someone holding the database but not the master secret: they know the
recipe (it is documented), edit and delete rows, recompute hashes, cut the tail and move the head.
`tillkey audit verify` (through Typer's CliRunner, against the same data directory) must name each.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests import inprocess
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.access.tree import ResourceTree
from tillkey.audit import AuditLog, fit
from tillkey.audit import chain as audit_chain
from tillkey.audit.anchor import ANCHOR_KEY_PURPOSE, AnchorFile
from tillkey.audit.chain import CHAIN_KEY_PURPOSE, GENESIS, canonical, legacy_hash, record_hash
from tillkey.audit.events import fitted
from tillkey.audit.writer import AuditEntry
from tillkey.cli import app as cli_app
from tillkey.clock import Clock
from tillkey.crypto.secrets import MasterSecret
from tillkey.store import audit as audit_repo
from tillkey.store import db as store_db
from tillkey.store.audit import AuditQuery, AuditRecord

KEY = b"c" * 32
PRODUCTS = "Magento_Catalog::products"


# --- helpers ------------------------------------------------------------------------------------


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def db_file(tmp_path: Path) -> Path:
    return data_dir(tmp_path) / "tillkey.db"


def verify(tmp_path: Path) -> tuple[int, str]:
    """`tillkey audit verify` against the harness's data directory: (exit code, output)."""
    env = {"TILLKEY_DATA_DIR": str(data_dir(tmp_path)), "TILLKEY_LOG_LEVEL": "ERROR"}
    res = CliRunner().invoke(cli_app, ["audit", "verify"], env=env)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.output.strip()


def rows(tmp_path: Path) -> list[AuditRecord]:
    with sqlite3.connect(db_file(tmp_path)) as conn:
        found = conn.execute(
            "SELECT seq, created_ms, event, outcome, actor_type, actor_id, username, ip, user_agent, request_id,"
            " details, prev_hash, hash, v FROM audit_events ORDER BY seq"
        ).fetchall()
    return [AuditRecord(*r) for r in found]


def sql(tmp_path: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(db_file(tmp_path)) as conn:
        conn.execute(statement, params)


def events(tmp_path: Path) -> list[str]:
    return [r.event for r in rows(tmp_path)]


async def some_events(t: inprocess.InProcess) -> None:
    await t.create_admin("alice", resources=[PRODUCTS])
    await t.admin_token("alice")
    await t.create_customer("ada@example.com")


def with_events(tmp_path: Path, **settings: Any) -> None:
    """Run the app once, long enough for a dozen records; anchors after every commit."""

    async def body() -> None:
        async with inprocess.running(tmp_path, audit_anchor_interval=0, **settings) as t:
            await some_events(t)

    inprocess.run(body)


def rewrite(tmp_path: Path, records: list[AuditRecord]) -> None:
    """Write records back over their rows, and move the head to the last one."""
    with sqlite3.connect(db_file(tmp_path)) as conn:
        for r in records:
            conn.execute(
                "UPDATE audit_events SET username = ?, details = ?, prev_hash = ?, hash = ?, v = ? WHERE seq = ?",
                (r.username, r.details, r.prev_hash, r.hash, r.v, r.seq),
            )
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (records[-1].seq, records[-1].hash))


# --- keyed chain --------------------------------------------------------------------------------


def test_records_are_keyed_under_the_master_secret_and_verify(tmp_path: Path) -> None:
    with_events(tmp_path)
    found = rows(tmp_path)
    assert len(found) >= 4 and {r.v for r in found} == {audit_chain.FORMAT_KEYED}
    key = MasterSecret.load("", data_dir(tmp_path)).derive(CHAIN_KEY_PURPOSE)
    prev = GENESIS
    for r in found:
        assert r.prev_hash == prev
        assert record_hash(r, key) == r.hash != legacy_hash(r)  # not recomputable from the database alone
        assert record_hash(r, b"x" * 32) != r.hash
        prev = r.hash
    code, out = verify(tmp_path)
    assert code == 0 and out == f"audit chain intact: {len(found)} records", out


def test_a_chain_recomputed_without_the_key_is_named(tmp_path: Path) -> None:
    with_events(tmp_path)
    found = rows(tmp_path)
    # The attacker edits record 2 and recomputes every hash from there with the public recipe.
    forged, prev = [], found[0].hash
    for r in found[1:]:
        r = dataclasses.replace(r, prev_hash=prev, username="mallory" if r.seq == 2 else r.username)
        r = dataclasses.replace(r, hash=legacy_hash(r))
        forged.append(r)
        prev = r.hash
    rewrite(tmp_path, forged)
    code, out = verify(tmp_path)
    assert code == 1
    assert "broken at seq 2: record 2 was rewritten without the key: its hash is a plain SHA-256" in out


def test_a_chain_downgraded_to_the_legacy_format_is_named(tmp_path: Path) -> None:
    """Marking every record legacy (v 1, plain SHA-256) would make the recipe public again: a
    legacy record is only ever valid as a prefix followed by the keyed marker."""
    with_events(tmp_path)
    forged, prev = [], GENESIS
    for r in rows(tmp_path):
        r = dataclasses.replace(r, prev_hash=prev, v=audit_chain.FORMAT_LEGACY, username="mallory")
        r = dataclasses.replace(r, hash=legacy_hash(r))
        forged.append(r)
        prev = r.hash
    rewrite(tmp_path, forged)
    code, out = verify(tmp_path)  # the start refuses to migrate it (anchors say it was keyed) …
    assert code == 1 and "broken at seq 1: record 1 is not the record anchored at line 1" in out, out
    assert audit.AUDIT_KEYED not in events(tmp_path)  # … and blesses nothing

    # Only the newest records downgraded: a legacy record after keyed ones.
    with_events(tmp_path / "b")
    found = rows(tmp_path / "b")
    last = dataclasses.replace(found[-1], v=audit_chain.FORMAT_LEGACY)
    rewrite(tmp_path / "b", [dataclasses.replace(last, hash=legacy_hash(last))])
    code, out = verify(tmp_path / "b")
    assert code == 1 and f"record {last.seq} is in the unkeyed legacy format after keyed records" in out, out


def test_edited_and_deleted_rows_are_named(tmp_path: Path) -> None:
    with_events(tmp_path)
    original = rows(tmp_path)[2]
    sql(tmp_path, "UPDATE audit_events SET ip = '6.6.6.6' WHERE seq = 3")
    code, out = verify(tmp_path)
    assert (
        code == 1
        and out == "error: audit chain broken at seq 3: record 3 was altered: its contents do not match its hash"
    )
    sql(tmp_path, "UPDATE audit_events SET ip = ? WHERE seq = 3", original.ip)
    assert verify(tmp_path)[0] == 0  # put back: intact again
    sql(tmp_path, "DELETE FROM audit_events WHERE seq = 2")
    code, out = verify(tmp_path)
    assert code == 1 and "broken at seq 2: record 2 is missing (next is 3)" in out, out


# --- anchors ------------------------------------------------------------------------------------


def test_a_cut_tail_is_named_by_the_anchor(tmp_path: Path) -> None:
    with_events(tmp_path)
    found = rows(tmp_path)
    anchors = data_dir(tmp_path) / "audit-anchors.jsonl"
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert lines and lines[-1]["seq"] == found[-1].seq and lines[-1]["hash"] == found[-1].hash
    assert anchors.stat().st_mode & 0o777 == 0o600
    # Cut the last three records and move the head back: what remains is a valid keyed chain.
    keep = found[-4]
    sql(tmp_path, "DELETE FROM audit_events WHERE seq > ?", keep.seq)
    sql(tmp_path, "UPDATE audit_head SET seq = ?, hash = ?", keep.seq, keep.hash)
    code, out = verify(tmp_path)
    assert code == 1 and "the chain was cut" in out and f"vouches for record {found[-1].seq}" in out, out
    assert f"the log ends at {keep.seq}" in out

    # Without the anchors, nothing else would tell.
    async def unanchored() -> audit_chain.ChainReport:
        db = store_db.Database(f"sqlite+aiosqlite:///{db_file(tmp_path)}")
        try:
            key = MasterSecret.load("", data_dir(tmp_path)).derive(CHAIN_KEY_PURPOSE)
            return await AuditLog(db, Clock(), key=key).check()
        finally:
            await db.dispose()

    assert inprocess.run(unanchored).ok


@pytest.mark.parametrize("edit", ["signature", "hash", "garbage"])
def test_a_forged_or_edited_anchor_line_is_refused(tmp_path: Path, edit: str) -> None:
    with_events(tmp_path)
    anchors = data_dir(tmp_path) / "audit-anchors.jsonl"
    line = json.loads(anchors.read_text().splitlines()[-1])
    if edit == "signature":  # a made-up head, signed with a guessed key
        line = {"seq": line["seq"] + 100, "hash": "0" * 64, "time_ms": line["time_ms"], "mac": "ab" * 32}
    elif edit == "hash":
        line["seq"] -= 1
    else:
        line = {"seq": "x"}
    with anchors.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    code, out = verify(tmp_path)
    assert code == 1 and "anchor file line" in out and "the anchors cannot be trusted" in out, out


def test_anchors_are_signed_with_a_key_the_database_does_not_hold(tmp_path: Path) -> None:
    path = tmp_path / "anchors.jsonl"
    AnchorFile(path, b"a" * 32).write(5, "f" * 64, 1000)
    assert [a.seq for a in AnchorFile(path, b"a" * 32).read()] == [5]
    with pytest.raises(ValueError, match="line 1: its signature does not match"):
        AnchorFile(path, b"b" * 32).read()
    master = MasterSecret(b"m" * 32)
    assert master.derive(ANCHOR_KEY_PURPOSE) != master.derive(CHAIN_KEY_PURPOSE)


def test_anchors_are_written_at_most_once_per_interval_and_at_stop(tmp_path: Path) -> None:
    async def body() -> list[int]:
        async with inprocess.running(tmp_path, audit_anchor_interval=3600) as t:
            await some_events(t)
            await t.create_role([PRODUCTS])
        anchors = AnchorFile(data_dir(tmp_path) / "audit-anchors.jsonl", b"")
        return [json.loads(line)["seq"] for line in anchors.path.read_text().splitlines()]

    seqs = inprocess.run(body)
    last = rows(tmp_path)[-1].seq
    assert seqs[0] == 1 and seqs[-1] == last and len(seqs) == 2  # the first commit, then the stop


# --- one unit of work ---------------------------------------------------------------------------


def test_a_change_and_its_record_commit_together_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            name = await t.create_role([PRODUCTS], name="kept")
            created = await t.tk.audit.search(AuditQuery(event=audit.ROLE_CREATED))
            assert [json.loads(r.details or "")["role"] for r in created] == [name]

            real_add = audit_repo.add

            async def failing_add(s: Any, records: Any) -> None:
                raise RuntimeError("the audit insert failed")

            monkeypatch.setattr(audit_repo, "add", failing_add)
            with pytest.raises(RuntimeError, match="audit insert failed"):
                await t.create_role([PRODUCTS], name="lost")
            with pytest.raises(RuntimeError):
                await t.accounts.create_customer(
                    email="x@example.com", password="Pass-word-1234", firstname="X", lastname="Y"
                )
            monkeypatch.setattr(audit_repo, "add", real_add)
            # Neither the rows nor the change-feed entries exist: the failed records rolled them back.
            with pytest.raises(Exception, match="no role"):
                await t.accounts.grant(OPERATOR, "lost", [PRODUCTS])
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": "x@example.com", "password": "Pass-word-1234"}
            )
            assert r.status_code == 401
            assert (await t.tk.audit.check()).ok

    inprocess.run(body)


def test_a_record_in_the_callers_transaction_rolls_back_with_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            before = (await t.tk.audit.check()).count
            with pytest.raises(ZeroDivisionError):
                async with t.tk.db.transaction() as s:
                    await t.tk.audit.record_in(s, audit.ROLE_CREATED, details={"role": "ghost"})
                    raise ZeroDivisionError
            report = await t.tk.audit.check()
            assert report.ok and report.count == before
            async with t.tk.db.transaction() as s:
                await t.tk.audit.record_in(s, audit.ROLE_CREATED, details={"role": "one"})
                await t.tk.audit.record_in(s, audit.ROLE_CHANGED, details={"role": "one", "added": []})
            report = await t.tk.audit.check()
            assert report.ok and report.count == before + 2

    inprocess.run(body)


def test_overlong_details_are_cut_by_rule_never_a_500_after_commit(tmp_path: Path) -> None:
    """A client name of 255 emoji (12 characters each in ASCII JSON) and every scope made
    oauth2.client.created's details too long, which raised after the client had committed: a 500,
    a client, no record. Now the details are cut by rule and commit with the client."""
    scopes = sorted(str(n) for n in ResourceTree.load().nodes)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("root")
            token = await t.admin_token("root")
            r = await t.client.post(
                "/tillkey/v1/oauth2/clients",
                headers=t.bearer(token),
                json={
                    "name": "\U0001f600" * 255,
                    "type": "confidential",
                    "grant_types": ["client_credentials"],
                    "scopes": scopes,
                },
            )
            assert r.status_code == 201, r.text
            (record,) = await t.tk.audit.search(AuditQuery(event=audit.OAUTH2_CLIENT_CREATED))
            assert record.details is not None and len(record.details) <= audit.DETAILS_MAX
            details = json.loads(record.details)
            assert details["client_id"] == r.json()["client_id"] and details["truncated"] > audit.DETAILS_MAX
            assert details["name"].endswith("…") and details["scopes"][-1].endswith("more")

            big = [f"Vendor_Module::resource_{i}" for i in range(400)]
            async with t.tk.db.transaction() as s:
                await t.tk.audit.record_in(s, audit.ROLE_CHANGED, details={"role": "r", "added": big, "removed": []})
            (changed,) = await t.tk.audit.search(AuditQuery(event=audit.ROLE_CHANGED))
            details = json.loads(changed.details or "")
            assert details["role"] == "r" and details["removed"] == [] and details["added"][0] == big[0]
            assert (await t.tk.audit.check()).ok

    inprocess.run(body)


def test_fit_keeps_short_details_and_always_fits() -> None:
    short = {"a": 1, "b": "x" * 100}
    assert fit(short) is short
    for details in ({"k": "y" * 10_000}, {f"key{i}": "z" * 600 for i in range(200)}, {"n": {"m": ["q" * 900] * 9}}):
        assert len(canonical(fit(details))) <= audit.DETAILS_MAX
        assert fitted(details) == canonical(fit(details))  # the writer's one-encoding path
    assert fitted(short) == canonical(short)


@pytest.mark.parametrize(
    "details",
    [
        None,
        {},
        {"client_id": "tkc_x", "ttl": 3600, "refresh": False, "ratio": 0.1, "none": None},
        {"nested": {"b": [1, "é", "\u2028"], "a": {"z": -1}}, "quote": '","details":null,"event":"x'},
        {"unicode": "日本語 ✓ \ud800".encode("utf-8", "replace").decode("utf-8"), "big": 2**70},
    ],
)
def test_the_writers_hash_is_the_hash_verify_computes(details: dict[str, Any] | None) -> None:
    """`written_hash` skips parsing and re-encoding the details it made itself; it must give the
    digest `record_hash` (what verify recomputes from the stored row) gives, or the chain would break."""
    entry = AuditEntry(
        1_700_000_000_123,
        "token.issued",
        "success",
        5,
        7,
        'user"name',
        "127.0.0.1",
        'agent ","details":null,"event":',
        "req-1",
        None if details is None else canonical(details),
    )
    record = entry.chained(42, "ab" * 32, KEY)
    assert record.hash == record_hash(record, KEY)
    assert record.hash != record_hash(dataclasses.replace(record, seq=43), KEY)


# --- load: nothing dropped ------------------------------------------------------------------------


def test_a_flood_of_queued_records_and_token_issues_loses_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.tk.audit._queue_size = 50  # a tiny queue: the flood has to wait for room, not be dropped
            reg = await t.tk.services.clients.create(
                OPERATOR,
                name="feed",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=[PRODUCTS],
            )
            basic = base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()

            async def issue() -> None:
                r = await t.client.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {basic}"},
                )
                assert r.status_code == 200, r.text

            for i in range(3000):  # cannot wait: queued beyond the limit, still kept
                t.tk.audit.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=i)
            waiters = [
                t.tk.audit.record_queued(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=10_000 + i)
                for i in range(1000)
            ]
            await asyncio.gather(*waiters, *(issue() for _ in range(200)))
        # The app has stopped: everything queued is written.
        async with inprocess.running(tmp_path) as t:
            denied = await t.tk.audit.search(AuditQuery(event=audit.ACCESS_DENIED, limit=100_000))
            assert sorted(r.actor_id or 0 for r in denied) == [*range(3000), *range(10_000, 11_000)]
            issued = await t.tk.audit.search(AuditQuery(event=audit.TOKEN_ISSUED, limit=100_000))
            assert len(issued) == 200
            assert t.tk.audit.dropped == 0 and t.tk.audit.failed == 0
            report = await t.tk.audit.check()
            assert report.ok and report.count == len(rows(tmp_path))

    inprocess.run(body)


# --- migrating a legacy chain -------------------------------------------------------------------


def write_legacy_chain(tmp_path: Path, n: int) -> list[AuditRecord]:
    """A database at the schema before 0011 with n records in the old format (plain SHA-256)."""
    data_dir(tmp_path).mkdir(parents=True)
    url = f"sqlite+aiosqlite:///{db_file(tmp_path)}"
    store_db.upgrade(url, "0008")
    records, prev = [], GENESIS
    for seq in range(1, n + 1):
        r = AuditRecord(
            seq,
            1_700_000_000_000 + seq,
            audit.LOGIN_SUCCESS,
            audit.SUCCESS,
            2,
            seq,
            f"old{seq}",
            None,
            None,
            None,
            json.dumps({"n": seq}),
            prev,
            "",
            audit_chain.FORMAT_LEGACY,
        )
        body = {k: getattr(r, k) for k in audit_chain.HASHED_FIELDS} | {"details": {"n": seq}}
        r = dataclasses.replace(r, hash=hashlib.sha256(canonical(body).encode()).hexdigest())  # the old recipe
        records.append(r)
        prev = r.hash
    with sqlite3.connect(db_file(tmp_path)) as conn:
        conn.executemany(
            "INSERT INTO audit_events (seq, created_ms, event, outcome, actor_type, actor_id, username, ip,"
            " user_agent, request_id, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [dataclasses.astuple(r)[:13] for r in records],
        )
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (n, prev))
    return records


def test_a_legacy_chain_is_checked_and_continued_keyed(tmp_path: Path) -> None:
    legacy = write_legacy_chain(tmp_path, 5)

    async def body() -> None:
        async with inprocess.running(tmp_path, audit_anchor_interval=0) as t:
            await t.create_role([PRODUCTS])

    inprocess.run(body)
    found = rows(tmp_path)
    assert [r.hash for r in found[:5]] == [r.hash for r in legacy]  # never rewritten
    assert [r.v for r in found] == [1] * 5 + [2] * (len(found) - 5)
    marker = found[5]
    assert marker.event == audit.AUDIT_KEYED and marker.prev_hash == legacy[-1].hash
    assert json.loads(marker.details or "") == {"legacy_seq": 5, "legacy_head": legacy[-1].hash, "legacy_intact": True}
    assert events(tmp_path).count(audit.AUDIT_KEYED) == 1
    code, out = verify(tmp_path)  # a second start does not add another marker
    assert code == 0 and out == f"audit chain intact: {len(found)} records"
    assert events(tmp_path).count(audit.AUDIT_KEYED) == 1

    # From now on the legacy records are covered by the key: recomputing them fails at the marker.
    forged, prev = [], GENESIS
    for r in legacy:
        r = dataclasses.replace(r, prev_hash=prev, username="mallory" if r.seq == 3 else r.username)
        r = dataclasses.replace(r, hash=legacy_hash(r))
        forged.append(r)
        prev = r.hash
    with sqlite3.connect(db_file(tmp_path)) as conn:
        for r in forged:
            conn.execute(
                "UPDATE audit_events SET username = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (r.username, r.prev_hash, r.hash, r.seq),
            )
    code, out = verify(tmp_path)
    assert code == 1 and "broken at seq 6: record 6 does not follow from record 5" in out, out

    # Dropping the marker (and all that follows) to pass the legacy chain off as complete fails too.
    sql(tmp_path, "DELETE FROM audit_events WHERE seq > 5")
    sql(tmp_path, "UPDATE audit_head SET seq = 5, hash = ?", forged[-1].hash)
    code, out = verify(tmp_path)
    assert code == 1 and "record 5 is in the unkeyed legacy format and no keyed record follows" in out, out


def test_a_broken_legacy_chain_is_continued_but_still_reported(tmp_path: Path) -> None:
    write_legacy_chain(tmp_path, 4)
    with sqlite3.connect(db_file(tmp_path)) as conn:
        conn.execute("UPDATE audit_events SET username = 'edited' WHERE seq = 2")
    code, out = verify(tmp_path)  # the CLI's start migrates, then checks
    assert code == 1 and "broken at seq 2: record 2 was altered" in out, out
    marker = rows(tmp_path)[4]
    assert marker.event == audit.AUDIT_KEYED and json.loads(marker.details or "")["legacy_intact"] is False


# --- the head under concurrency, on both databases ----------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_transactional_appends_from_several_engines_keep_one_chain(backend: str, tmp_path: Path) -> None:
    """record_in claims the head last in its transaction and holds it to the commit (PostgreSQL's
    row lock, SQLite's single writer): interleaved with group commits and the background writer
    of other processes' engines, the chain has no gap, no fork, and every change has its record."""
    from tests.conftest import make_database
    from tillkey.store import auth as auth_repo

    database = make_database(backend, tmp_path)
    url = database.url or f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    store_db.upgrade(url)
    try:

        async def main() -> None:
            dbs = [store_db.Database(url) for _ in range(3)]
            logs = [AuditLog(db, Clock(), key=KEY) for db in dbs]

            async def change(log: AuditLog, i: int) -> None:
                async with log.db.transaction() as s:
                    await auth_repo.record_change(s, "grants", 1_800_000_000, ref=f"c{i}")
                    await log.record_in(s, audit.ROLE_CHANGED, details={"role": f"r{i}", "added": []})

            try:
                for log in logs:
                    log.start()
                for i in range(100):
                    logs[i % 3].record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=i)
                await asyncio.gather(
                    *(change(logs[i % 3], i) for i in range(60)),
                    *(logs[i % 3].record(audit.LOGIN_SUCCESS, actor_id=i) for i in range(60)),
                )
                for log in logs:
                    await log.stop()
                report = await logs[0].check()
                assert report.ok, report.first_break
                assert report.count == 220
                changed = await logs[0].search(AuditQuery(event=audit.ROLE_CHANGED, limit=1000))
                assert sorted(json.loads(r.details or "")["role"] for r in changed) == sorted(
                    f"r{i}" for i in range(60)
                )
            finally:
                for db in dbs:
                    await db.dispose()

        inprocess.run(main)
    finally:
        database.drop()
