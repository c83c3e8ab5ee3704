"""Medusa-style API keys on the hot path: secret keys as a credential kind, publishable keys as the
gate on /store routes. Both are looked up in memory by keyed HMAC digest, never in the database.

Secret keys imported from Medusa (migrate/medusa.py) are known by Medusa's verifier until first
presented: a key no digest matches, whose redacted form names such a key, is checked with scrypt
as Medusa checks it (bounded: at most two at a time, past that 503), and on a match it gets the
keyed digest like any other key, here at once and in the database (`upgrade`), so the slow check
runs once per key. A key found neither way gets one catch-up with the change feed before it is
refused (credentials/freshness.py): created or imported a moment ago by another process.

Secret keys arrive as `Authorization: Basic base64("sk_…:")` (what @medusajs/js-sdk sends), as
`Basic sk_…` (Medusa 2.x accepts it too) or in the `x-medusa-access-token` header (Medusa's v1
documentation; 2.x itself no longer reads it). A key is refused once its revocation time has passed,
or once its creating admin is deactivated or deleted, on the very next call: every check is against
the in-memory state, which the change feed keeps current (kind "api_keys", and "grants").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from starlette.requests import Request

from tillkey.access.grants import GrantsState
from tillkey.audit import API_KEY_REFUSED, FAILURE, AuditLog
from tillkey.credentials.freshness import CatchUp
from tillkey.credentials.usage import UsageNotes
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import Unauthenticated, Unavailable
from tillkey.principal import Principal
from tillkey.store.api_keys import PUBLISHABLE, SECRET, ApiKey

log = logging.getLogger("tillkey.access")

SECRET_PREFIX = "sk_"  # noqa: S105 (a prefix, not a secret)
PUBLISHABLE_PREFIX = "pk_"
MAX_KEY_LENGTH = 128
REFUSAL_AUDIT_EVERY = 60.0  # seconds: a revoked key hammering the API is recorded, not a flood of rows
MEDUSA_SECRET = re.compile(r"sk_[0-9a-f]{64}")
# Medusa's secret-key hash: Node's crypto.scrypt defaults, 64 bytes, the salt's hex text as the salt.
_SCRYPT = {"n": 16384, "r": 8, "p": 1, "dklen": 64}
LEGACY_CHECKS_AT_ONCE = 2


def redact(raw: str) -> str:
    """Medusa's redacted form of a key (shown in listings; narrows the legacy look-up)."""
    return raw[:6] + "***" + raw[-3:]


def medusa_key_matches(raw: str, salt: str, stored_hex: str) -> bool:
    computed = hashlib.scrypt(raw.encode(), salt=salt.encode(), **_SCRYPT).hex()
    return hmac.compare_digest(computed, stored_hex)


@dataclass(frozen=True, slots=True)
class LiveKey:
    id: int
    type: str
    digest: str
    created_by: int | None
    resources: tuple[str, ...]
    revoked_ms: int | None  # may lie ahead: delayed revocation
    legacy: tuple[str, str] | None = None  # imported from Medusa, not yet presented: (salt, scrypt hex)
    redacted: str = ""

    def revoked(self, now: float) -> bool:
        return self.revoked_ms is not None and self.revoked_ms <= now * 1000


class ApiKeyState:
    """Every key that is not deleted, by digest (revoked ones too, so their use can be audited)."""

    def __init__(self, master: MasterSecret, usage_interval: float) -> None:
        self._master = master
        self._by_digest: dict[str, LiveKey] = {}
        self._legacy: dict[str, list[LiveKey]] = {}  # redacted form -> imported keys not yet presented
        self._legacy_slots = asyncio.Semaphore(LEGACY_CHECKS_AT_ONCE)
        self.version = 0  # counts changes: a look-up after a catch-up that changed nothing is skipped
        # Set by wiring.py: write a legacy key's new digest (once, whichever process sees it first).
        self.upgrade: Callable[[int, str], Awaitable[None]] | None = None
        self.usage: UsageNotes[int] = UsageNotes(usage_interval)
        # key id -> (principal, grants version it was built from)
        self._principals: dict[int, tuple[Principal | None, int]] = {}

    @staticmethod
    def _live(k: ApiKey) -> LiveKey:
        return LiveKey(k.id, k.type, k.digest, k.created_by, k.resources, k.revoked_ms, k.legacy, k.redacted)

    def load(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {k.digest: self._live(k) for k in keys}
        self._index_legacy()
        self._principals = {}

    def _index_legacy(self) -> None:
        """After every change of the keys: the imported ones not yet presented, by redacted form."""
        self.version += 1
        legacy: dict[str, list[LiveKey]] = {}
        for k in self._by_digest.values():
            if k.legacy is not None:
                legacy.setdefault(k.redacted, []).append(k)
        self._legacy = legacy

    def put(self, key: ApiKey) -> None:
        """Apply one change to this process at once (the change feed brings it to the others)."""
        self._by_digest = {d: k for d, k in self._by_digest.items() if k.id != key.id}
        if key.deleted_ms is None:
            self._by_digest[key.digest] = self._live(key)
        self._index_legacy()
        self._principals.pop(key.id, None)

    def find(self, raw: str, type: str) -> LiveKey | None:
        if len(raw) > MAX_KEY_LENGTH:
            return None
        digest = self._master.digest(raw)
        found = self._by_digest.get(digest)
        # The dict finds it by a keyed digest (timing says nothing about the key); the final
        # comparison is constant-time all the same.
        if found is None or found.type != type or not hmac.compare_digest(found.digest, digest):
            return None
        return found

    async def find_secret(self, raw: str) -> LiveKey | None:
        """`find` for a secret key, and an imported Medusa key's first presentation (see above)."""
        found = self.find(raw, SECRET)
        if found is not None or not self._legacy or not MEDUSA_SECRET.fullmatch(raw):
            return found
        candidates = self._legacy.get(redact(raw))
        if not candidates:
            return None
        if self._legacy_slots.locked():
            raise Unavailable(headers={"Retry-After": "1"}, detail="imported api key checks are busy")
        async with self._legacy_slots:
            for candidate in candidates:
                assert candidate.legacy is not None
                salt, stored = candidate.legacy
                if await asyncio.to_thread(medusa_key_matches, raw, salt, stored):
                    break
            else:
                return None
        digest = self._master.digest(raw)
        current = self.by_id(candidate.id)
        if current is None or current.legacy is None:  # upgraded or deleted meanwhile
            return current if current is not None and current.digest == digest else None
        upgraded = replace(current, digest=digest, legacy=None)
        self._by_digest = {d: k for d, k in self._by_digest.items() if k.id != current.id}
        self._by_digest[digest] = upgraded
        self._index_legacy()
        if self.upgrade is not None:
            try:
                await self.upgrade(current.id, digest)
            except Exception:  # the key works here; the next presentation elsewhere tries again
                log.exception("could not record an imported api key's new digest")
        return upgraded

    def by_id(self, key_id: int) -> LiveKey | None:
        for k in self._by_digest.values():
            if k.id == key_id:
                return k
        return None

    def principal(self, key: LiveKey, grants: GrantsState) -> Principal | None:
        cached = self._principals.get(key.id)
        if cached is not None and cached[1] == grants.version:
            return cached[0]
        found = grants.api_key_principal(key.id, key.created_by, key.resources) if key.created_by else None
        self._principals[key.id] = (found, grants.version)
        return found


def secret_from_headers(authorization: str | None, access_token: str | None) -> str | None:
    """The secret key a request presents, or None when it presents none (then other kinds look)."""
    if access_token:
        return access_token.strip()
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    value = value.strip()
    if not value.startswith(SECRET_PREFIX):
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        value = value.removesuffix(":")
    return value if value.startswith(SECRET_PREFIX) else None


class SecretApiKeys:
    """Credential kind: a secret API key. Produces Principal(API_KEY, key id, the key's grant)."""

    name = "api_key"

    def __init__(
        self,
        state: ApiKeyState,
        grants: GrantsState,
        audit: AuditLog,
        now: Callable[[], float] = time.time,
        catch_up: CatchUp | None = None,
    ) -> None:
        self._state = state
        self._catch_up = catch_up
        self._grants = grants
        self._audit = audit
        self._now = now
        self._refusals_noted: dict[int, float] = {}

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        raw = secret_from_headers(authorization, request.headers.get("x-medusa-access-token"))
        if raw is None:
            return None
        seen = self._state.version
        key = await self._state.find_secret(raw)  # memory only (an imported key's first use: scrypt)
        if key is None and self._catch_up is not None and await self._catch_up.refresh(raw):
            # Created or imported a moment ago elsewhere? Unchanged keys: no second scrypt check.
            if self._state.version != seen:
                key = await self._state.find_secret(raw)
            if key is None:
                self._catch_up.unknown(raw)
        if key is None:
            raise Unauthenticated(detail="unknown api key")
        now = self._now()
        if key.revoked(now):
            self._note_refusal(key, request, now, "revoked")
            raise Unauthenticated(detail="revoked api key", reason="revoked")
        principal = self._state.principal(key, self._grants)
        if principal is None:
            self._note_refusal(key, request, now, "creator inactive")
            raise Unauthenticated(detail="api key creator is inactive", reason="inactive")
        self._state.usage.touch(key.id, now)
        return principal

    def _note_refusal(self, key: LiveKey, request: Request, now: float, reason: str) -> None:
        if now - self._refusals_noted.get(key.id, -1e18) < REFUSAL_AUDIT_EVERY:
            return
        self._refusals_noted[key.id] = now
        self._audit.record_soon(
            API_KEY_REFUSED,
            outcome=FAILURE,
            request=request,
            details={"target_type": 5, "target_id": key.id, "reason": reason, "path": request.url.path[:256]},
        )


def publishable_key_valid(state: ApiKeyState, raw: str, now: float) -> bool:
    """Is this an active publishable key? (The gate on /store routes; not an identity.)"""
    key = state.find(raw.strip(), PUBLISHABLE)
    return key is not None and not key.revoked(now)
