"""The audit chain's record format and its check: what a record's hash covers, in which format,
and how a chain (with its anchors) is walked. writer.py writes records; this module
only judges them, so `tillkey audit verify`, the API and the console share one verdict.

Formats: 1 (legacy, before migration 0011) is SHA-256 of the canonical JSON of the hashed fields;
2 (keyed) is HMAC-SHA256 under `MasterSecret.derive(CHAIN_KEY_PURPOSE)` of the same object plus
`v`. A legacy record is valid only in the prefix the `audit.keyed` marker continues.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tillkey.audit.anchor import Anchor, AnchorError, AnchorFile
from tillkey.store import audit as repo
from tillkey.store.audit import AuditRecord
from tillkey.store.db import Database

MARKER_EVENT = "audit.keyed"  # the keyed record that continues a legacy chain
VERIFY_PAGE = 1000  # records read per query while checking

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "prev_hash",
    "created_ms",
    "event",
    "outcome",
    "actor_type",
    "actor_id",
    "username",
    "ip",
    "user_agent",
    "request_id",
    "details",
)
FORMAT_LEGACY = 1  # plain SHA-256, before migration 0011
FORMAT_KEYED = 2  # HMAC-SHA256 under CHAIN_KEY_PURPOSE
CHAIN_KEY_PURPOSE = "tillkey/audit-chain"


def canonical(obj: Any) -> str:
    """The one JSON encoding that hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _body(r: AuditRecord) -> dict[str, Any]:
    body = {name: getattr(r, name) for name in HASHED_FIELDS}
    body["details"] = json.loads(r.details) if r.details is not None else None
    return body


def legacy_hash(r: AuditRecord) -> str:
    """Format 1: SHA-256 over the canonical JSON of every field but the hash (and `v`)."""
    return hashlib.sha256(canonical(_body(r)).encode("ascii")).hexdigest()


def record_hash(r: AuditRecord, key: bytes) -> str:
    """The hash a record must carry, by its format. ValueError if its details are not JSON."""
    if r.v == FORMAT_LEGACY:
        return legacy_hash(r)
    if r.v != FORMAT_KEYED:
        raise ValueError(f"unknown audit record format {r.v}")
    body = _body(r) | {"v": r.v}
    return hmac.new(key, canonical(body).encode("ascii"), hashlib.sha256).hexdigest()


# Where the details sit in a keyed record's canonical body: after created_ms (always an integer),
# before event. At the top level of the object, so no string value can hold this text unescaped.
_DETAILS_SLOT = ',"details":null,"event":'


def written_hash(r: AuditRecord, key: bytes) -> str:
    """`record_hash` of a keyed record the writer builds, whose details are canonical JSON already
    (`canonical` made them): the same digest without parsing the details and encoding them again.
    Checking a stored record uses `record_hash`, which makes no such assumption."""
    body = {name: getattr(r, name) for name in HASHED_FIELDS}
    body["details"] = None
    body["v"] = r.v
    text = canonical(body)
    if r.details is not None:
        text = text.replace(_DETAILS_SLOT, f',"details":{r.details},"event":', 1)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    count: int  # records checked and found intact: all of them when ok
    first_break: ChainBreak | None
    anchors: int = 0  # anchors the chain was held against

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _altered(r: AuditRecord, key: bytes) -> str | None:
    """Why a record's hash is wrong, or None when it is right."""
    try:
        if hmac.compare_digest(record_hash(r, key), r.hash):
            return None
        if r.v == FORMAT_KEYED and legacy_hash(r) == r.hash:
            return f"record {r.seq} was rewritten without the key: its hash is a plain SHA-256, not the keyed MAC"
    except ValueError:  # details no longer JSON, or an unknown format
        pass
    return f"record {r.seq} was altered: its contents do not match its hash"


async def check_chain(
    db: Database, key: bytes, anchors_file: AnchorFile | None, *, legacy_ok: bool = False
) -> ChainReport:
    """Walk the chain up to the head as it is now; stop at the first bad record.

    Records are checked in seq order: a missing seq, a record whose contents no longer match
    its (keyed) hash, a record whose prev_hash is not its predecessor's hash (one of the two was
    rewritten with a fresh hash), legacy records anywhere but before the `audit.keyed` marker,
    and finally the head: records cut from the end leave it pointing past the last one. Then
    the anchors (if a file is given): every anchored record must exist with its anchored hash; a
    shorter chain was cut. `legacy_ok`: a log ending in legacy records is not yet migrated
    (AuditLog.migrate_legacy's own check), not a forgery."""
    try:
        anchors = anchors_file.read() if anchors_file is not None else []
    except AnchorError as exc:
        return ChainReport(0, ChainBreak(0, f"{exc}: the anchors cannot be trusted"))
    vouched: dict[int, Anchor] = {}
    for a in anchors:
        vouched.setdefault(a.seq, a)
    async with db.session() as s:
        head_seq, head_hash = await repo.head(s)
        expected, prev, prev_v = 1, GENESIS, 0
        while expected <= head_seq:
            rows = await repo.page(s, after=expected - 1, upto=head_seq, limit=VERIFY_PAGE)
            if not rows:
                break
            for r in rows:
                why = _break(r, key, expected, prev, prev_v, vouched.get(r.seq))
                if why is not None:
                    return ChainReport(expected - 1, ChainBreak(min(r.seq, expected), why), len(anchors))
                prev, prev_v = r.hash, r.v
                expected += 1
    if expected <= head_seq:
        why = f"record {expected} is missing: the chain head counts {head_seq}, the log ends at {expected - 1}"
        return ChainReport(expected - 1, ChainBreak(expected, why), len(anchors))
    if prev != head_hash:
        why = f"record {head_seq} was replaced: the chain head holds another hash"
        return ChainReport(head_seq - 1, ChainBreak(head_seq, why), len(anchors))
    if prev_v == FORMAT_LEGACY and not legacy_ok:
        why = (
            f"record {head_seq} is in the unkeyed legacy format and no keyed record follows: the chain was "
            "recomputed without the key (or never migrated: start Tillkey once)"
        )
        return ChainReport(head_seq - 1, ChainBreak(head_seq, why), len(anchors))
    beyond = max(anchors, key=lambda a: a.seq, default=None)
    if beyond is not None and beyond.seq > head_seq:
        why = (
            f"the chain was cut: anchor line {beyond.line} ({iso_time(beyond.time_ms)}) vouches for record "
            f"{beyond.seq}, the log ends at {head_seq}"
        )
        return ChainReport(head_seq, ChainBreak(head_seq + 1, why), len(anchors))
    return ChainReport(head_seq, None, len(anchors))


def _break(r: AuditRecord, key: bytes, expected: int, prev: str, prev_v: int, anchor: Anchor | None) -> str | None:
    if r.seq != expected:
        return f"record {expected} is missing (next is {r.seq})"
    altered = _altered(r, key)
    if altered is not None:
        return altered
    if r.prev_hash != prev:
        return (
            f"record {r.seq} does not follow from record {r.seq - 1}: its prev_hash is not that record's hash "
            "(one of them was rewritten)"
        )
    if r.v == FORMAT_LEGACY and prev_v == FORMAT_KEYED:
        return f"record {r.seq} is in the unkeyed legacy format after keyed records: recomputed without the key"
    if r.v == FORMAT_KEYED and prev_v == FORMAT_LEGACY and r.event != MARKER_EVENT:
        return f"record {r.seq} follows legacy records without the {MARKER_EVENT} marker"
    if anchor is not None and anchor.hash != r.hash:
        return (
            f"record {r.seq} is not the record anchored at line {anchor.line} ({iso_time(anchor.time_ms)}): "
            "the chain was rewritten from there"
        )
    return None


def to_json(r: AuditRecord) -> dict[str, Any]:
    """A record as one JSON object (API, CLI, mirror): the hashed fields and `v`, plus `hash` and
    `time`."""
    out: dict[str, Any] = {name: getattr(r, name) for name in HASHED_FIELDS}
    try:
        out["details"] = json.loads(r.details) if r.details is not None else None
    except ValueError:
        out["details"] = r.details  # a tampered row is still shown, as it is
    out["v"] = r.v
    out["hash"] = r.hash
    out["time"] = iso_time(r.created_ms)
    return out
