"""Tamper-evident audit log of authentication events.

Every record carries `seq` (1, 2, 3 … without gaps), `prev_hash` (the previous record's hash; 64
zeros for the first) and `hash`: SHA-256 over the canonical JSON (sorted keys, no spaces, ASCII) of
{seq, prev_hash, created_ms, event, outcome, actor_type, actor_id, username, ip, user_agent,
request_id, details}. Editing a row breaks its hash; deleting one leaves a gap in seq, or a head
(audit_head) pointing past the end. `check()` names the first such record.

Limit: whoever can write the database can rewrite the whole chain from some record on. The
JSON-lines mirror (TILLKEY_AUDIT_FILE), shipped somewhere append-only, anchors it: each line has
the record's hash, and is the same object the hash was computed over (plus `hash` and `time`).

Field conventions, so that searches mean the same thing for every event:
- actor_type / actor_id: who acted (None: the local operator through the CLI, or not known);
- username: the login name involved: the one typed at a login, or the account acted on;
- details: event specifics. Never a secret: keys that name one are refused with ValueError (a
  careless call fails loudly in tests), and values that look like bearer tokens are redacted
  (tillkey.security.redaction).
  Failure reasons go here; they stay server-side (clients get one generic 401).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tillkey.clock import Clock
from tillkey.security.redaction import clean_details, clean_text
from tillkey.store import audit as repo
from tillkey.store.audit import AuditQuery, AuditRecord
from tillkey.store.db import Database

log = logging.getLogger("tillkey.audit")

# --- events ---------------------------------------------------------------------------------------

LOGIN_SUCCESS = "login.success"
LOGIN_FAILURE = "login.failure"  # details.reason: unknown user, wrong password, inactive, …
LOGIN_THROTTLED = "login.throttled"
ACCOUNT_LOCKED = "account.locked"
ACCOUNT_UNLOCKED = "account.unlocked"
TOKEN_ISSUED = "token.issued"  # noqa: S105 (an event name, not a secret)
TOKEN_REVOKED = "token.revoked"  # noqa: S105
TFA_ENROLMENT_STARTED = "tfa.enrolment_started"  # a new secret awaits its first code; details.forced
TFA_ENROLLED = "tfa.enrolled"
TFA_USED = "tfa.used"  # outcome failure for a wrong code
TFA_RESET = "tfa.reset"
ACCESS_DENIED = "access.denied"
ROLE_CREATED = "role.created"
ROLE_CHANGED = "role.changed"
ROLE_DELETED = "role.deleted"
ACCOUNT_CREATED = "account.created"
ACCOUNT_CHANGED = "account.changed"
ACCOUNT_DELETED = "account.deleted"
KEY_ROTATED = "key.rotated"
KEY_RETIRED = "key.retired"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
API_KEY_DELETED = "api_key.deleted"
API_KEY_REFUSED = "api_key.refused"  # a revoked key, or one whose creator is gone, was presented
SESSION_CREATED = "session.created"
SESSION_ENDED = "session.ended"
PASSWORD_RESET_REQUESTED = "password_reset.requested"  # noqa: S105 (event names)
PASSWORD_RESET_COMPLETED = "password_reset.completed"  # noqa: S105
INTEGRATION_CREATED = "integration.created"
INTEGRATION_ACTIVATED = "integration.activated"  # details.mode: manual, or endpoint (handshake posted)
INTEGRATION_CHANGED = "integration.changed"  # details.change: deactivated
INTEGRATION_DELETED = "integration.deleted"
OAUTH1_REFUSED = "oauth1.refused"  # a signed request or token exchange refused; details.reason
# OAuth 2: client registration, consent, and the two replay signals RFC 9700 asks to act on.
OAUTH2_CLIENT_CREATED = "oauth2.client.created"
OAUTH2_CLIENT_DELETED = "oauth2.client.deleted"
OAUTH2_CONSENT = "oauth2.consent"  # outcome failure: the user denied
REFRESH_REUSED = "token.refresh_reused"
CODE_REUSED = "oauth2.code_reused"  # an authorization code came back: its tokens revoked

# A typo in an event name would hide records from every search, so unknown names are refused.
EVENTS = frozenset({
    LOGIN_SUCCESS, LOGIN_FAILURE, LOGIN_THROTTLED, ACCOUNT_LOCKED, ACCOUNT_UNLOCKED, TOKEN_ISSUED,
    TOKEN_REVOKED, TFA_ENROLMENT_STARTED, TFA_ENROLLED, TFA_USED, TFA_RESET, ACCESS_DENIED, ROLE_CREATED,
    ROLE_CHANGED, ROLE_DELETED, ACCOUNT_CREATED, ACCOUNT_CHANGED, ACCOUNT_DELETED, KEY_ROTATED, KEY_RETIRED,
    API_KEY_CREATED, API_KEY_REVOKED, API_KEY_DELETED, API_KEY_REFUSED, SESSION_CREATED, SESSION_ENDED,
    PASSWORD_RESET_REQUESTED, PASSWORD_RESET_COMPLETED, INTEGRATION_CREATED, INTEGRATION_ACTIVATED,
    INTEGRATION_CHANGED, INTEGRATION_DELETED, OAUTH1_REFUSED,
    OAUTH2_CLIENT_CREATED, OAUTH2_CLIENT_DELETED, OAUTH2_CONSENT, REFRESH_REUSED, CODE_REUSED,
})  # fmt: skip

SUCCESS = "success"
FAILURE = "failure"
OUTCOMES = frozenset({SUCCESS, FAILURE})

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq", "prev_hash", "created_ms", "event", "outcome", "actor_type", "actor_id", "username", "ip",
    "user_agent", "request_id", "details",
)  # fmt: skip

# Column sizes (store/models.py); longer client-supplied text is cut, not refused.
USERNAME_MAX = 255
IP_MAX = 64
USER_AGENT_MAX = 256
REQUEST_ID_MAX = 128
DETAILS_MAX = 4096  # characters of canonical JSON
DETAILS_DEPTH = 4

QUEUE_SIZE = 10_000  # record_soon events waiting for the writer; beyond it they are dropped
BATCH_SIZE = 200  # records per transaction from the queue
# After the first queued record, the writer waits this long for more: one transaction then carries
# many records (a busy token endpoint queues hundreds a second), where without the wait each would
# cost a chain-extending commit of its own. Nobody awaits these records.
BATCH_LINGER = 0.01
VERIFY_PAGE = 1000
DROP_WARNING_EVERY = 60.0  # seconds
STOP_TIMEOUT = 10.0  # seconds stop() waits for the queue to drain


# --- records and their hashes -------------------------------------------------------------------


def canonical(obj: Any) -> str:
    """The one JSON encoding that hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"audit {name} must be an int, not {value!r}")
    return int(value)


def record_hash(r: AuditRecord) -> str:
    """SHA-256 over the canonical JSON of every field but the hash itself."""
    body = {name: getattr(r, name) for name in HASHED_FIELDS}
    body["details"] = json.loads(r.details) if r.details is not None else None
    return hashlib.sha256(canonical(body).encode("ascii")).hexdigest()


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json(r: AuditRecord) -> dict[str, Any]:
    """A record as one JSON object (API, CLI, mirror): the hashed fields, plus `hash` and `time`."""
    out: dict[str, Any] = {name: getattr(r, name) for name in HASHED_FIELDS}
    try:
        out["details"] = json.loads(r.details) if r.details is not None else None
    except ValueError:
        out["details"] = r.details  # a tampered row is still shown, as it is
    out["hash"] = r.hash
    out["time"] = iso_time(r.created_ms)
    return out


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where an event came from. The IP is the peer Starlette reports, which is the client only as
    far as trusted proxies say (proxy headers are applied before routing, if configured)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def from_request(cls, request: Request) -> RequestInfo:
        client = request.client
        headers = request.headers
        return cls(client.host if client else None, headers.get("user-agent"), headers.get("x-request-id"))


# Where the request being served comes from: every record made while serving it (a sign-in, a
# token issued deep in a service, a session started) carries its IP and user agent without each
# call site having to pass them, so no issuance path can forget them (issue 21).
_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("tillkey_audit_request", default=None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """Notes each HTTP request's client (as the trusted-proxy rules resolved it: install this
    inside ProxyHeadersMiddleware), user agent and request id for the audit records it causes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        info = RequestInfo(
            client[0] if client else None, _header(scope, b"user-agent"), _header(scope, b"x-request-id")
        )
        token = _current.set(info)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


@dataclass(frozen=True, slots=True)
class _Entry:
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

    def chained(self, seq: int, prev_hash: str) -> AuditRecord:
        r = AuditRecord(
            seq, self.created_ms, self.event, self.outcome, self.actor_type, self.actor_id, self.username,
            self.ip, self.user_agent, self.request_id, self.details, prev_hash, "",
        )  # fmt: skip
        return replace(r, hash=record_hash(r))


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    count: int  # records checked and found intact: all of them when ok
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


# --- the log ------------------------------------------------------------------------------------


class AuditLog:
    """Appends to the chain (awaited with `record`, or queued with `record_soon`), checks it,
    searches it. One per process; any number of processes may share the database."""

    def __init__(
        self, db: Database, clock: Clock, mirror: Path | None = None, *, queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
    ) -> None:  # fmt: skip
        self.db = db
        self.clock = clock
        self.mirror = mirror
        self.dropped = 0  # record_soon events refused because the queue was full
        self.failed = 0  # queued events lost after the database refused them repeatedly
        self._queue: asyncio.Queue[_Entry | None] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._writer: asyncio.Task[None] | None = None
        # One appender per process at a time: they would only queue on the database lock, and
        # SQLite's busy handler polls with sleeps where this wakes the next one at once.
        self._lock = asyncio.Lock()
        self._last_drop_warning = -math.inf
        # Records awaited by their callers (record()), committed together: group commit.
        self._group: list[tuple[_Entry, asyncio.Future[None]]] = []
        self._group_task: asyncio.Task[None] | None = None

    # --- writing ------------------------------------------------------------------------------

    def _entry(
        self, event: str, outcome: str, actor_type: int | None, actor_id: int | None, username: str | None,
        ip: str | None, user_agent: str | None, request_id: str | None, details: dict[str, Any] | None,
    ) -> _Entry:  # fmt: skip
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}; add it to tillkey.security.audit.EVENTS")
        if outcome not in OUTCOMES:
            raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        if details is not None and not isinstance(details, dict):
            raise ValueError("audit details must be a dict")
        encoded = canonical(clean_details(details, DETAILS_DEPTH)) if details else None
        current = _current.get()
        if current is not None:
            ip, user_agent = ip or current.ip, user_agent or current.user_agent
            request_id = request_id or current.request_id
        if encoded is not None and len(encoded) > DETAILS_MAX:
            raise ValueError(f"audit details are {len(encoded)} characters; at most {DETAILS_MAX}")
        return _Entry(
            int(self.clock.now() * 1000), event, outcome, _int("actor_type", actor_type), _int("actor_id", actor_id),
            clean_text(username, USERNAME_MAX), clean_text(ip, IP_MAX), clean_text(user_agent, USER_AGENT_MAX),
            clean_text(request_id, REQUEST_ID_MAX), encoded,
        )  # fmt: skip

    async def record(
        self, event: str, *, outcome: str = SUCCESS, actor_type: int | None = None, actor_id: int | None = None,
        username: str | None = None, ip: str | None = None, user_agent: str | None = None,
        request_id: str | None = None, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
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
        self, request: Request, event: str, *, outcome: str = SUCCESS, actor_type: int | None = None,
        actor_id: int | None = None, username: str | None = None, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """`record`, with IP, user agent and request id taken from the request."""
        info = RequestInfo.from_request(request)
        await self.record(
            event, outcome=outcome, actor_type=actor_type, actor_id=actor_id, username=username, ip=info.ip,
            user_agent=info.user_agent, request_id=info.request_id, details=details,
        )  # fmt: skip

    def record_soon(
        self, event: str, *, outcome: str = SUCCESS, actor_type: int | None = None, actor_id: int | None = None,
        username: str | None = None, ip: str | None = None, user_agent: str | None = None,
        request_id: str | None = None, details: dict[str, Any] | None = None, request: Request | None = None,
    ) -> None:  # fmt: skip
        """Queue a record for the background writer and return at once (hot path: access.denied).

        The arguments are checked here, so a bad call still fails in its caller. If the queue is
        full the record is dropped and counted in `dropped`: a flood of denials must not grow
        memory without bound or slow the requests being denied."""
        if request is not None:
            info = RequestInfo.from_request(request)
            ip, user_agent, request_id = ip or info.ip, user_agent or info.user_agent, request_id or info.request_id
        entry = self._entry(event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details)
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning >= DROP_WARNING_EVERY:
                self._last_drop_warning = now
                log.warning("audit queue full: %d events dropped so far", self.dropped)

    async def _append(self, entries: Sequence[_Entry]) -> None:
        async with self._lock:
            async with self.db.transaction() as s:
                last, prev = await repo.claim(s, len(entries))  # first statement: takes the lock
                records = []
                for seq, entry in enumerate(entries, start=last - len(entries) + 1):
                    records.append(entry.chained(seq, prev))
                    prev = records[-1].hash
                await repo.add(s, records)
            # After the commit, so the file never holds a record the database rolled back.
            self._write_mirror(records)

    def _write_mirror(self, records: Sequence[AuditRecord]) -> None:
        if self.mirror is None:
            return
        data = "".join(canonical(to_json(r)) + "\n" for r in records).encode("ascii")
        try:
            self.mirror.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND and one write per batch: lines from several processes never interleave.
            # Reopened every time, so a rotated file is followed; 0600, as it holds IPs and names.
            fd = os.open(self.mirror, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
        except OSError:
            # The database copy is committed and authoritative; a full disk here must not fail logins.
            log.exception("audit mirror %s: write failed", self.mirror)

    # --- the background writer ----------------------------------------------------------------

    def start(self) -> None:
        """Start writing queued records (call from a running event loop)."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="tillkey-audit")

    async def stop(self) -> None:
        """Write everything queued, then stop the writer."""
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            try:
                await asyncio.wait_for(self._queue.put(None), STOP_TIMEOUT)
                await asyncio.wait_for(writer, STOP_TIMEOUT)
            except TimeoutError:
                writer.cancel()
                log.error("audit writer did not finish within %.0f s; %d events lost", STOP_TIMEOUT,
                          self._queue.qsize())  # fmt: skip
                return
        # Anything queued while no writer ran.
        pending = [e for e in self._drain_nowait() if e is not None]
        for i in range(0, len(pending), self._batch_size):
            await self._write_batch(pending[i : i + self._batch_size])

    def _drain_nowait(self) -> list[_Entry | None]:
        items: list[_Entry | None] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            batch: list[_Entry] = []
            stopping = item is None
            if item is not None:
                batch.append(item)
                if self._queue.empty():
                    await asyncio.sleep(BATCH_LINGER)
            while not stopping and len(batch) < self._batch_size and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                await self._write_batch(batch)
            if stopping:
                return

    async def _write_batch(self, batch: list[_Entry]) -> None:
        for attempt in range(3):
            try:
                await self._append(batch)
                return
            except Exception:
                log.exception("audit: writing %d records failed (attempt %d)", len(batch), attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))
        self.failed += len(batch)
        log.error("audit: %d records lost after repeated write failures (%d so far)", len(batch), self.failed)

    # --- reading ------------------------------------------------------------------------------

    async def search(self, query: AuditQuery) -> list[AuditRecord]:
        async with self.db.session() as s:
            return await repo.search(s, query)

    async def check(self) -> ChainReport:
        """Walk the chain up to the head as it is now; stop at the first bad record.

        Records are checked in seq order: a missing seq, a record whose contents no longer match
        its hash, a record whose prev_hash is not its predecessor's hash (one of the two was
        rewritten with a fresh hash), and finally the head: records cut from the end leave it
        pointing past the last one."""
        async with self.db.session() as s:
            head_seq, head_hash = await repo.head(s)
            expected, prev = 1, GENESIS
            while expected <= head_seq:
                rows = await repo.page(s, after=expected - 1, upto=head_seq, limit=VERIFY_PAGE)
                if not rows:
                    break
                for r in rows:
                    if r.seq != expected:
                        return ChainReport(
                            expected - 1, ChainBreak(expected, f"record {expected} is missing (next is {r.seq})")
                        )
                    try:
                        intact = record_hash(r) == r.hash
                    except ValueError:  # details no longer JSON
                        intact = False
                    if not intact:
                        why = f"record {r.seq} was altered: its contents do not match its hash"
                        return ChainReport(expected - 1, ChainBreak(r.seq, why))
                    if r.prev_hash != prev:
                        why = (
                            f"record {r.seq} does not follow from record {r.seq - 1}: its prev_hash is not that "
                            "record's hash (one of them was rewritten)"
                        )
                        return ChainReport(expected - 1, ChainBreak(r.seq, why))
                    prev = r.hash
                    expected += 1
        if expected <= head_seq:
            why = f"record {expected} is missing: the chain head counts {head_seq}, the log ends at {expected - 1}"
            return ChainReport(expected - 1, ChainBreak(expected, why))
        if prev != head_hash:
            return ChainReport(
                head_seq - 1, ChainBreak(head_seq, f"record {head_seq} was replaced: the chain head holds another hash")
            )
        return ChainReport(head_seq, None)

    async def verify(self) -> ChainBreak | None:
        """The first altered or missing record, or None when the chain is intact."""
        return (await self.check()).first_break
