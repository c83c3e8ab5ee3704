"""Tamper-evident audit log of authentication events: events.py (names, outcomes, field sizes),
chain.py (record format, hashes, the check), anchor.py (signed anchors outside the database),
writer.py (AuditLog: appending, mirror, anchoring), query.py (searches as people write them),
request_context.py (where the request being served comes from).

Every record carries `seq` (1, 2, 3 … without gaps), `prev_hash` (the previous record's hash; 64
zeros for the first), `v` (its format) and `hash`:

- format 2 (keyed, every record written since migration 0011): HMAC-SHA256, under a key derived
  from the master secret (`MasterSecret.derive("tillkey/audit-chain")`, which the database never
  holds), of the canonical JSON (sorted keys, no spaces, ASCII) of {v, seq, prev_hash, created_ms,
  event, outcome, actor_type, actor_id, username, ip, user_agent, request_id, details}. Whoever can
  write the database but lacks the master secret cannot compute a valid record.
- format 1 (legacy, records written before 0011): plain SHA-256 of the same object without `v`.

Migrating an existing chain (`migrate_legacy`, run at every start, acting once): the legacy
records are checked as they are, then one keyed `audit.keyed` record is appended whose prev_hash
is the last legacy hash and whose details name the legacy head and whether it was intact. Legacy
records are never rewritten (their hashes stay the ones already shipped in the mirror), and they
are protected from then on: changing any of them changes the last legacy hash, which the keyed
marker covers. `check()` accepts format 1 only as a prefix followed directly by that marker; a
legacy record after a keyed one, or a log that ends in legacy records, is a forgery (a chain
recomputed without the key).

Editing a row breaks its hash; deleting one leaves a gap in seq, or a head (audit_head) pointing
past the end. Cutting the tail and moving the head back leaves a valid chain, so the head is also
anchored outside the database: signed lines in TILLKEY_AUDIT_ANCHOR_FILE (anchor.py), which
`check()` holds the chain against. `check()` names the first such record. The format and the
check live in chain.py, the anchors in anchor.py, the writer in writer.py; the JSON-lines mirror
(TILLKEY_AUDIT_FILE) gets each committed record as the object its hash covers, plus `hash` and
`time`.

Writing: `record_in(session, …)` appends inside the caller's transaction (the change, its
change-feed entry and its audit record commit together, or none does; `prepare` + `append_in` do
the same for records built before the transaction, e.g. an opaque token group's); `record` appends in a
transaction of its own and waits; `record_soon` / `record_queued` queue for the background writer,
which never drops a record (record_queued waits while the queue is full: backpressure).

Field conventions, so that searches mean the same thing for every event:
- actor_type / actor_id: who acted (None: the local operator through the CLI, or not known);
- username: the login name involved: the one typed at a login, or the account acted on;
- details: event specifics. Never a secret: keys that name one are refused with ValueError (a
  careless call fails loudly in tests), and values that look like bearer tokens are redacted
  (tillkey.security.redaction). Details longer than DETAILS_MAX are cut by one rule (`fit`),
  never refused: the change they describe may already be decided.
  Failure reasons go here; they stay server-side (clients get one generic 401).
"""

from tillkey.audit.chain import GENESIS, ChainBreak, ChainReport, iso_time, record_hash, to_json
from tillkey.audit.events import (
    ACCESS_DENIED,
    ACCOUNT_CHANGED,
    ACCOUNT_CREATED,
    ACCOUNT_DELETED,
    ACCOUNT_LOCKED,
    ACCOUNT_UNLOCKED,
    API_KEY_CHANGED,
    API_KEY_CREATED,
    API_KEY_DELETED,
    API_KEY_REFUSED,
    API_KEY_REHASHED,
    API_KEY_REVOKED,
    AUDIT_KEYED,
    CODE_REUSED,
    DETAILS_DEPTH,
    DETAILS_MAX,
    DETAILS_VALUE_MAX,
    EVENTS,
    FAILURE,
    IDENTITY_LINKED,
    IDENTITY_PROVISIONED,
    IDENTITY_UNLINKED,
    IDP_CHANGED,
    IDP_SYNCED,
    IMPORT_CHECKPOINT,
    IMPORT_RUN,
    INTEGRATION_ACTIVATED,
    INTEGRATION_CHANGED,
    INTEGRATION_CREATED,
    INTEGRATION_DELETED,
    IP_MAX,
    KEY_RETIRED,
    KEY_ROTATED,
    LOGIN_EXTERNAL,
    LOGIN_FAILURE,
    LOGIN_SUCCESS,
    LOGIN_THROTTLED,
    OAUTH1_REFUSED,
    OAUTH2_CLIENT_CREATED,
    OAUTH2_CLIENT_DELETED,
    OAUTH2_CONSENT,
    OUTCOMES,
    PASSKEY_REGISTERED,
    PASSKEY_REMOVED,
    PASSKEY_RENAMED,
    PASSKEY_USED,
    PASSWORD_REHASHED,
    PASSWORD_RESET_COMPLETED,
    PASSWORD_RESET_REQUESTED,
    REFRESH_REUSED,
    REQUEST_ID_MAX,
    ROLE_CHANGED,
    ROLE_CREATED,
    ROLE_DELETED,
    SESSION_CREATED,
    SESSION_ENDED,
    SUCCESS,
    TFA_ENROLLED,
    TFA_ENROLMENT_STARTED,
    TFA_RESET,
    TFA_USED,
    TOKEN_ISSUED,
    TOKEN_REVOKED,
    USER_AGENT_MAX,
    USERNAME_MAX,
    fit,
)
from tillkey.audit.request_context import RequestInfo, info_from_scope
from tillkey.audit.writer import AuditLog

__all__ = [
    "ACCESS_DENIED",
    "ACCOUNT_CHANGED",
    "ACCOUNT_CREATED",
    "ACCOUNT_DELETED",
    "ACCOUNT_LOCKED",
    "ACCOUNT_UNLOCKED",
    "API_KEY_CHANGED",
    "API_KEY_CREATED",
    "API_KEY_DELETED",
    "API_KEY_REFUSED",
    "API_KEY_REHASHED",
    "API_KEY_REVOKED",
    "AUDIT_KEYED",
    "CODE_REUSED",
    "DETAILS_DEPTH",
    "DETAILS_MAX",
    "DETAILS_VALUE_MAX",
    "EVENTS",
    "FAILURE",
    "GENESIS",
    "IDENTITY_LINKED",
    "IDENTITY_PROVISIONED",
    "IDENTITY_UNLINKED",
    "IDP_CHANGED",
    "IDP_SYNCED",
    "IMPORT_CHECKPOINT",
    "IMPORT_RUN",
    "INTEGRATION_ACTIVATED",
    "INTEGRATION_CHANGED",
    "INTEGRATION_CREATED",
    "INTEGRATION_DELETED",
    "IP_MAX",
    "KEY_RETIRED",
    "KEY_ROTATED",
    "LOGIN_EXTERNAL",
    "LOGIN_FAILURE",
    "LOGIN_SUCCESS",
    "LOGIN_THROTTLED",
    "OAUTH1_REFUSED",
    "OAUTH2_CLIENT_CREATED",
    "OAUTH2_CLIENT_DELETED",
    "OAUTH2_CONSENT",
    "OUTCOMES",
    "PASSKEY_REGISTERED",
    "PASSKEY_REMOVED",
    "PASSKEY_RENAMED",
    "PASSKEY_USED",
    "PASSWORD_REHASHED",
    "PASSWORD_RESET_COMPLETED",
    "PASSWORD_RESET_REQUESTED",
    "REFRESH_REUSED",
    "REQUEST_ID_MAX",
    "ROLE_CHANGED",
    "ROLE_CREATED",
    "ROLE_DELETED",
    "SESSION_CREATED",
    "SESSION_ENDED",
    "SUCCESS",
    "TFA_ENROLLED",
    "TFA_ENROLMENT_STARTED",
    "TFA_RESET",
    "TFA_USED",
    "TOKEN_ISSUED",
    "TOKEN_REVOKED",
    "USERNAME_MAX",
    "USER_AGENT_MAX",
    "AuditLog",
    "ChainBreak",
    "ChainReport",
    "RequestInfo",
    "fit",
    "info_from_scope",
    "iso_time",
    "record_hash",
    "to_json",
]
