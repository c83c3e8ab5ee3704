"""The audit writer: appends records to the chain (in the caller's transaction, awaited with group
commit, or queued for a background writer that never drops one), mirrors and anchors what is
committed, checks and searches the chain. See the package docstring for the conventions."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from tillkey import jsonlines
from tillkey.audit.anchor import AnchorError, AnchorFile
from tillkey.audit.chain import (
    FORMAT_KEYED,
    FORMAT_LEGACY,
    GENESIS,
    ChainBreak,
    ChainReport,
    canonical,
    check_chain,
    to_json,
    written_hash,
)
from tillkey.audit.events import (
    AUDIT_KEYED,
    CONCERNING_EVENTS,
    DETAILS_DEPTH,
    EVENTS,
    IP_MAX,
    OUTCOMES,
    REQUEST_ID_MAX,
    SUCCESS,
    USER_AGENT_MAX,
    USERNAME_MAX,
    fitted,
)
from tillkey.audit.query import mentions
from tillkey.audit.request_context import RequestInfo, current_request
from tillkey.clock import Clock
from tillkey.principal import UserType
from tillkey.security.redaction import clean_details, clean_text
from tillkey.store import audit as repo
from tillkey.store.audit import AuditQuery, AuditRecord
from tillkey.store.db import Database, after_commit

log = logging.getLogger("tillkey.audit")

# record_queued waits while this many records wait for the writer; record_soon (which cannot wait)
# still queues beyond it, and the writer then writes bigger batches: nothing is dropped.
QUEUE_SIZE = 10_000
BATCH_SIZE = 200  # records per transaction from the queue, while it is short
BATCH_MAX = 2000  # … and when a backlog has built up: fewer, bigger commits catch up faster
# After the first queued record, the writer waits this long for more: one transaction then carries
# many records (a busy token endpoint queues hundreds a second), where without the wait each would
# cost a chain-extending commit of its own. Nobody awaits these records.
BATCH_LINGER = 0.01
BACKLOG_WARNING_EVERY = 60.0  # seconds
STOP_TIMEOUT = 10.0  # seconds stop() keeps retrying a failing database before giving up
ANCHOR_INTERVAL = 60.0  # seconds between two anchors of the head this process wrote


def _int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"audit {name} must be an int, not {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A validated event waiting for its place in the chain."""

    created_ms: int
    event: str
    outcome: str
    actor_type: int | None
    actor_id: int | None
    username: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: str | None

    def chained(self, seq: int, prev_hash: str, key: bytes) -> AuditRecord:
        fields = (
            seq,
            self.created_ms,
            self.event,
            self.outcome,
            self.actor_type,
            self.actor_id,
            self.username,
            self.ip,
            self.user_agent,
            self.request_id,
            self.details,
            prev_hash,
        )
        # Hashed as the record without its hash, then built again with it.
        digest = written_hash(AuditRecord(*fields, "", FORMAT_KEYED), key)
        return AuditRecord(*fields, digest, FORMAT_KEYED)


def _chain(entries: Sequence[AuditEntry], last: int, prev: str, key: bytes) -> list[AuditRecord]:
    records = []
    for seq, entry in enumerate(entries, start=last - len(entries) + 1):
        records.append(entry.chained(seq, prev, key))
        prev = records[-1].hash
    return records


class AuditLog:
    """Appends to the chain (in the caller's transaction with `record_in`, awaited with `record`,
    or queued with `record_soon` / `record_queued`), checks it, searches it. One per process; any
    number of processes may share the database.

    `key`: the chain key (`MasterSecret.derive(CHAIN_KEY_PURPOSE)`). `anchors`: where the head is
    anchored (None: nowhere), at most every `anchor_interval` seconds (0: after every commit)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        mirror: Path | None = None,
        *,
        key: bytes,
        anchors: AnchorFile | None = None,
        anchor_interval: float = ANCHOR_INTERVAL,
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if len(key) < 32:
            raise ValueError("the audit chain key must be at least 32 bytes")
        self.db = db
        self.clock = clock
        self.mirror = mirror
        self.anchors = anchors
        self._key = key
        self._anchor_interval = anchor_interval
        self.dropped = 0  # kept for the metric: nothing is dropped any more
        self.failed = 0  # queued records lost: the database refused them until stop() gave up
        self._pending: collections.deque[AuditEntry] = collections.deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._wake = asyncio.Event()  # the writer has work
        self._room = asyncio.Event()  # record_queued may queue
        self._room.set()
        self._stopping = False
        self._writer: asyncio.Task[None] | None = None
        # One appender per process at a time: they would only queue on the database lock, and
        # SQLite's busy handler polls with sleeps where this wakes the next one at once.
        self._lock = asyncio.Lock()
        self._last_backlog_warning = -math.inf
        # Records awaited by their callers (record()), committed together: group commit.
        self._group: list[tuple[AuditEntry, asyncio.Future[None]]] = []
        self._group_task: asyncio.Task[None] | None = None
        # The newest record this process committed, and the newest it anchored.
        self._head: tuple[int, str] = (0, GENESIS)
        self._anchored_seq = 0
        self._last_anchor = -math.inf
        self._anchor_timer: asyncio.TimerHandle | None = None

    # --- writing ------------------------------------------------------------------------------

    def _entry(
        self,
        event: str,
        outcome: str,
        actor_type: int | None,
        actor_id: int | None,
        username: str | None,
        ip: str | None,
        user_agent: str | None,
        request_id: str | None,
        details: dict[str, Any] | None,
    ) -> AuditEntry:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}; add it to tillkey.audit.events.EVENTS")
        if outcome not in OUTCOMES:
            raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        if details is not None and not isinstance(details, dict):
            raise ValueError("audit details must be a dict")
        encoded = fitted(clean_details(details, DETAILS_DEPTH)) if details else None
        current = current_request.get()
        if current is not None:
            ip, user_agent = ip or current.ip, user_agent or current.user_agent
            request_id = request_id or current.request_id
        return AuditEntry(
            int(self.clock.now() * 1000),
            event,
            outcome,
            _int("actor_type", actor_type),
            _int("actor_id", actor_id),
            clean_text(username, USERNAME_MAX),
            clean_text(ip, IP_MAX),
            clean_text(user_agent, USER_AGENT_MAX),
            clean_text(request_id, REQUEST_ID_MAX),
            encoded,
        )

    async def record_in(
        self,
        s: AsyncSession,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one record inside the caller's transaction (a session from `Database.transaction`):
        it commits with the change it describes, or rolls back with it. ValueError for a bad call,
        raised before anything is written, so the caller's transaction rolls back too.

        Call it last in the transaction: the chain's head row stays locked until the commit (row
        lock on PostgreSQL; SQLite has one writer anyway), which serializes every appender."""
        entry = self._entry(event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details)
        await self.append_in(s, [entry])

    def prepare(
        self,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """A checked record, not yet in the chain, for `append_in` (the request's origin filled
        in as `record` does). ValueError for a bad call."""
        return self._entry(event, outcome, actor_type, actor_id, None, None, None, None, details)

    async def append_in(self, s: AsyncSession, entries: Sequence[AuditEntry]) -> None:
        """`record_in` for prepared records: appended inside the caller's transaction, last."""
        if not entries:
            return
        records = await self._add_in(s, entries)
        # The mirror and the anchor only once the records are committed (never for a rollback).
        after_commit(s, lambda: self._committed(records))

    async def _add_in(self, s: AsyncSession, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """The records chained after the head and added, in `s`'s transaction (not yet committed)."""
        last, prev = await repo.claim(s, len(entries))  # a write first: it takes the head's lock
        records = _chain(entries, last, prev, self._key)
        await repo.add(s, records)
        return records

    def append_sync(self, conn: Connection, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """`append_in` on a synchronous connection, in the caller's transaction (Database.batch, on
        its thread): the records to hand to `committed` once that transaction has committed."""
        if not entries:
            return []
        last, prev = repo.claim_sync(conn, len(entries))
        records = _chain(entries, last, prev, self._key)
        repo.add_sync(conn, records)
        return records

    def committed(self, records: Sequence[AuditRecord]) -> None:
        """After `append_sync`'s transaction has committed: the mirror and the anchor."""
        if records:
            self._committed(records)

    async def record(
        self,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one record and wait until it is committed. ValueError for a bad call.

        Records awaited at the same time share one transaction (group commit): under load, a token
        endpoint would otherwise spend most of its time on one chain-extending commit per request,
        one after the other. Each caller still returns only once its own record is committed."""
        entry = self._entry(event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._group.append((entry, done))
        if self._group_task is None or self._group_task.done():
            self._group_task = asyncio.create_task(self._commit_groups(), name="tillkey-audit-group")
        await done

    async def _commit_groups(self) -> None:
        while self._group:
            group, self._group = self._group[: self._batch_size], self._group[self._batch_size :]
            try:
                await self._append([entry for entry, _ in group])
            except Exception as exc:
                for _, done in group:
                    if not done.done():  # a caller that went away (disconnect) no longer waits
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

    async def record_request(
        self,
        request: Request,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """`record`, with IP, user agent and request id taken from the request."""
        info = RequestInfo.from_request(request)
        await self.record(
            event,
            outcome=outcome,
            actor_type=actor_type,
            actor_id=actor_id,
            username=username,
            ip=info.ip,
            user_agent=info.user_agent,
            request_id=info.request_id,
            details=details,
        )

    def record_soon(
        self,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        request: Request | None = None,
    ) -> None:
        """Queue a record for the background writer and return at once (hot path: access.denied).

        The arguments are checked here, so a bad call still fails in its caller. Never dropped:
        past QUEUE_SIZE the record still queues (a caller that cannot wait cannot be slowed) and
        the writer catches up in bigger batches; callers that can wait use `record_queued`."""
        entry = self._entry_for(
            event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details, request
        )
        self._enqueue(entry)

    async def record_queued(
        self,
        event: str,
        *,
        outcome: str = SUCCESS,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        request: Request | None = None,
    ) -> None:
        """`record_soon` with backpressure: waits while QUEUE_SIZE records wait for the writer, so
        a flood (token issuance) slows to the speed the chain can be written at, losing nothing."""
        entry = self._entry_for(
            event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details, request
        )
        while len(self._pending) >= self._queue_size and self._writer is not None and not self._writer.done():
            self._room.clear()
            await self._room.wait()
        self._enqueue(entry)

    def _entry_for(
        self,
        event: str,
        outcome: str,
        actor_type: int | None,
        actor_id: int | None,
        username: str | None,
        ip: str | None,
        user_agent: str | None,
        request_id: str | None,
        details: dict[str, Any] | None,
        request: Request | None,
    ) -> AuditEntry:
        """The queued entry, the request's origin filling what the caller left out."""
        if request is not None:
            info = RequestInfo.from_request(request)
            ip, user_agent, request_id = ip or info.ip, user_agent or info.user_agent, request_id or info.request_id
        return self._entry(event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details)

    def _enqueue(self, entry: AuditEntry) -> None:
        self._pending.append(entry)
        self._wake.set()
        if len(self._pending) > self._queue_size:
            now = time.monotonic()
            if now - self._last_backlog_warning >= BACKLOG_WARNING_EVERY:
                self._last_backlog_warning = now
                log.warning("audit queue: %d records wait for the writer", len(self._pending))

    async def _append(self, entries: Sequence[AuditEntry]) -> None:
        async with self._lock, self.db.write_turn():
            if self.db.batches_in_one_trip:  # SQLite: the whole transaction in one trip to its thread
                records = await self.db.batch(partial(self.append_sync, entries=entries))
            else:
                async with self.db.transaction() as s:
                    records = await self._add_in(s, entries)
            # After the commit, so the file never holds a record the database rolled back.
            self._committed(records)

    def _committed(self, records: Sequence[AuditRecord]) -> None:
        self._write_mirror(records)
        if records and records[-1].seq > self._head[0]:
            self._head = (records[-1].seq, records[-1].hash)
            self._anchor_soon()

    def _write_mirror(self, records: Sequence[AuditRecord]) -> None:
        if self.mirror is None:
            return
        data = "".join(canonical(to_json(r)) + "\n" for r in records).encode("ascii")
        try:
            jsonlines.append(self.mirror, data)
        except OSError:
            # The database copy is committed and authoritative; a full disk here must not fail logins.
            log.exception("audit mirror %s: write failed", self.mirror)

    # --- anchoring the head -------------------------------------------------------------------

    def _anchor_soon(self) -> None:
        """Anchor the newest record this process wrote, at most once per anchor_interval: now if
        the last anchor is old enough, else when it is (a timer, so a quiet log is anchored too)."""
        if self.anchors is None:
            return
        wait = self._last_anchor + self._anchor_interval - self.clock.now()
        if wait <= 0:
            self.anchor_now()
        elif self._anchor_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._anchor_timer = loop.call_later(wait, self._anchor_due)

    def _anchor_due(self) -> None:
        self._anchor_timer = None
        self.anchor_now()

    def anchor_now(self) -> None:
        """Write a signed anchor of the newest record this process committed, if not yet anchored.
        Only records this process computed itself: anchoring a head read back from the database
        would vouch for whatever an attacker left there."""
        seq, hash_ = self._head
        if self.anchors is None or seq <= self._anchored_seq:
            return
        self.anchors.write(seq, hash_, int(self.clock.now() * 1000))
        self._anchored_seq = seq
        self._last_anchor = self.clock.now()

    # --- the background writer ----------------------------------------------------------------

    def start(self) -> None:
        """Start writing queued records (call from a running event loop)."""
        if self._writer is None:
            self._stopping = False
            self._writer = asyncio.create_task(self._drain(), name="tillkey-audit")

    async def stop(self) -> None:
        """Write everything queued, then stop the writer, and anchor the head."""
        writer, self._writer = self._writer, None
        self._stopping = True
        self._wake.set()
        self._room.set()  # record_queued callers queue without waiting now
        if writer is not None and not writer.done():
            await writer
        # Anything queued while no writer ran, or by a record_queued woken by this stop.
        await self._drain()
        if self._anchor_timer is not None:
            self._anchor_timer.cancel()
            self._anchor_timer = None
        self.anchor_now()

    async def _drain(self) -> None:
        """Write queued records in order until stopped and empty. A batch the database refuses is
        kept and retried (nothing is dropped); only at stop, after STOP_TIMEOUT of failures, is
        the rest given up, counted in `failed` and logged."""
        failing_since: float | None = None
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                if len(self._pending) < self._batch_size and not self._stopping:
                    await asyncio.sleep(BATCH_LINGER)
                continue
            size = self._batch_size if len(self._pending) <= self._queue_size // 2 else BATCH_MAX
            batch = [self._pending[i] for i in range(min(size, len(self._pending)))]
            try:
                await self._append(batch)
            except Exception:
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                log.exception("audit: writing %d records failed; %d wait", len(batch), len(self._pending))
                if self._stopping and now - failing_since >= STOP_TIMEOUT:
                    self.failed += len(self._pending)
                    log.error("audit writer stopping: %d records could not be written", len(self._pending))
                    self._pending.clear()
                    return
                await asyncio.sleep(min(2.0, 0.1 + now - failing_since))
                continue
            failing_since = None
            for _ in batch:
                self._pending.popleft()
            if len(self._pending) < self._queue_size:
                self._room.set()

    @property
    def backlog(self) -> int:
        """Records queued for the writer."""
        return len(self._pending)

    # --- migrating a legacy chain -------------------------------------------------------------

    async def migrate_legacy(self) -> bool:
        """Continue a legacy (SHA-256) chain keyed: check the legacy records, then append the
        `audit.keyed` marker after them. True if a marker was written. Safe to call on every
        start and from several processes at once: it acts only while the head is a legacy record."""
        async with self.db.session() as s:
            head_seq, _ = await repo.head(s)
            last = await repo.page(s, after=head_seq - 1, upto=head_seq, limit=1) if head_seq else []
        if not last or last[0].v != FORMAT_LEGACY:
            return False
        # Anchors are only ever written for a keyed chain: legacy records at its head now are a
        # downgrade (a chain recomputed with the public recipe), never to be blessed with a marker.
        try:
            anchored = bool(self.anchors.read()) if self.anchors is not None else False
        except AnchorError:
            anchored = True
        if anchored:
            log.error("audit: the chain ends in legacy records but was keyed before; run `tillkey audit verify`")
            return False
        report = await self.check(anchored=False, legacy_ok=True)
        if not report.ok:
            assert report.first_break is not None
            log.error("audit: the legacy chain is broken (%s); continuing it keyed anyway", report.first_break.reason)
        async with self._lock, self.db.transaction() as s:
            seq, prev = await repo.claim(s, 0)  # locks the head: one process writes the marker
            found = await repo.page(s, after=seq - 1, upto=seq, limit=1)
            if not found or found[0].v != FORMAT_LEGACY:
                return False
            entry = self._entry(
                AUDIT_KEYED,
                SUCCESS,
                None,
                None,
                None,
                None,
                None,
                None,
                {"legacy_seq": seq, "legacy_head": prev, "legacy_intact": report.ok},
            )
            last_seq, prev = await repo.claim(s, 1)
            records = _chain([entry], last_seq, prev, self._key)
            await repo.add(s, records)
        self._committed(records)
        self.anchor_now()  # at once: from here on the chain is known to be keyed
        log.info("audit: %d legacy records now continue in the keyed chain", seq)
        return True

    # --- reading ------------------------------------------------------------------------------

    async def search(self, query: AuditQuery) -> list[AuditRecord]:
        async with self.db.session() as s:
            return await repo.search(s, query)

    async def concerning(
        self, target_type: int, target_id: int, *, client_id: str | None = None, limit: int = 20
    ) -> list[AuditRecord]:
        """The newest records this account or credential made or that acted on it (changed, reset,
        revoked, created it…), newest first."""
        events = CONCERNING_EVENTS.get(UserType(target_type), frozenset()) if target_type in set(UserType) else ()
        async with self.db.session() as s:
            return await repo.concerning(
                s,
                actor_type=target_type,
                actor_id=target_id,
                events=sorted(events),
                mentions=mentions(target_type, target_id, client_id),
                limit=limit,
            )

    async def check(self, *, anchored: bool = True, legacy_ok: bool = False) -> ChainReport:
        """The chain as it is now, held against the anchors (chain.check_chain)."""
        return await check_chain(self.db, self._key, self.anchors if anchored else None, legacy_ok=legacy_ok)

    async def verify(self) -> ChainBreak | None:
        """The first altered or missing record, or None when the chain is intact."""
        return (await self.check()).first_break
