"""Audit log searches as people write them (HTTP query string, CLI options), checked.

One parser for both surfaces, so `?since=` and `--since` accept the same things and refuse
the same mistakes; QueryError names the field at fault.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tillkey.audit.chain import canonical
from tillkey.audit.events import EVENTS, OUTCOMES, USERNAME_MAX
from tillkey.principal import UserType
from tillkey.store.audit import AuditQuery

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
EVENT_FAMILIES = frozenset(e.partition(".")[0] for e in EVENTS)


class QueryError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_time(value: str) -> int:
    """Unix seconds ("1767225600", "1767225600.5") or ISO 8601 (naive means UTC) → unix ms."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("expected unix seconds or an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
        raise ValueError("time out of range")
    return int(seconds * 1000)


def make_query(
    *,
    event: str | None = None,
    outcome: str | None = None,
    actor_type: int | None = None,
    actor_id: int | None = None,
    username: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> AuditQuery:
    exact = prefix = None
    if event is not None:
        if event.endswith(".*") and event[:-2] in EVENT_FAMILIES:
            prefix = event[:-1]
        elif event in EVENTS:
            exact = event
        else:
            known = ", ".join(sorted(EVENTS))
            raise QueryError("event", f"unknown event {event[:64]!r} (known: {known}; or a family such as login.*)")
    if outcome is not None and outcome not in OUTCOMES:
        raise QueryError("outcome", f"must be one of {', '.join(sorted(OUTCOMES))}")
    if actor_type is not None and actor_type not in set(UserType):
        raise QueryError("actor_type", "must be 1 (integration), 2 (admin), 3 (customer) or 4 (guest)")
    if actor_id is not None and not 0 <= actor_id < 2**63:
        raise QueryError("actor_id", "out of range")
    if username is not None and not 0 < len(username) <= USERNAME_MAX:
        raise QueryError("username", f"must be 1 to {USERNAME_MAX} characters")
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"must be from 1 to {MAX_LIMIT}")
    if not 0 <= offset <= 10**9:
        raise QueryError("offset", "must be from 0 to 1000000000")
    bounds: dict[str, int | None] = {"since": None, "until": None}
    for name, raw in (("since", since), ("until", until)):
        if raw is not None:
            try:
                bounds[name] = parse_time(raw)
            except ValueError as exc:
                raise QueryError(name, str(exc)) from None
    since_ms, until_ms = bounds["since"], bounds["until"]
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise QueryError("until", "is before since")
    return AuditQuery(
        event=exact,
        event_prefix=prefix,
        outcome=outcome,
        actor_type=actor_type,
        actor_id=actor_id,
        username=username,
        since_ms=since_ms,
        until_ms=until_ms,
        limit=limit,
        offset=offset,
    )


def mentions(target_type: int, target_id: int, client_id: str | None = None) -> tuple[str, ...]:
    """The fragments of a record's details (canonical JSON: sorted keys, no spaces) that name this
    account or credential as what the record acts on; an OAuth client also by its client_id."""
    target = canonical({"target_id": int(target_id), "target_type": int(target_type)})[1:-1]
    found: tuple[str, ...] = (target + ",", target + "}")
    if client_id is not None:
        found += ('"client_id":' + canonical(client_id) + ",", '"client_id":' + canonical(client_id) + "}")
    return found
