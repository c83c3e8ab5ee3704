"""The one token issuer: every token Tillkey signs or stores is minted here.

- login tokens (Magento's password logins and Medusa's emailpass): a JWT with Magento's claims
  (uid, utypid, iat, exp) plus jti, iss, amr, or an opaque `tk_at_` token;
- OAuth 2 access tokens: a JWT in the RFC 9068 profile (`typ: at+jwt`) or an opaque `tk_at_` token;
- OpenID Connect ID tokens (Core §2, §3.1.3.6): `typ: JWT` and no uid/utypid, so no reader ever
  takes one for an access token.

One place picks the signing key (the current one, its `kid` in the header, the algorithm pinned to
it), draws the `jti`, stores opaque tokens by digest, waits out a revoke-before second (a token born
in the second its user was revoked would be born dead) and counts what was minted. Refresh tokens are
not minted here: they are rotation state, owned by tokens/refresh.py.

The surface a login token was issued for travels in the `tk_surface` claim, set by this module and by
nothing else (callers' extra claims can never set it): `/auth/token/refresh` and `/auth/session`
renew only tokens that carry `tk_surface: medusa`, checked on the verified claims, never by sniffing
a token's shape. The original sign-in time travels in `auth_time` through every renewal.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import jwt
from sqlalchemy import Connection

from tillkey.access.stepup import acr_of
from tillkey.audit.writer import AuditEntry, AuditLog
from tillkey.crypto.secrets import MasterSecret, random_token
from tillkey.errors import Unavailable
from tillkey.principal import UserType
from tillkey.store import auth as repo
from tillkey.store.audit import AuditRecord
from tillkey.store.db import Database
from tillkey.tokens.contracts import SURFACE_CLAIM, TokenClaims
from tillkey.tokens.keys import Keyring, SigningKey
from tillkey.tokens.opaque import PREFIX as OPAQUE_PREFIX

MEDUSA = "medusa"
# Claims only the issuer itself sets: extra claims can never forge identity, time, issuer or surface.
RESERVED = frozenset(
    {"uid", "utypid", "iat", "exp", "nbf", "jti", "iss", "amr", "acr", "aud", "sub", "auth_time", "cnf", SURFACE_CLAIM}
)
SUBJECT_PREFIX = {UserType.ADMIN: "admin", UserType.CUSTOMER: "customer", UserType.OAUTH_CLIENT: "client"}
# Opaque token rows committed in one transaction at most (`OpaqueStore.add`).
GROUP_MAX = 500
log = logging.getLogger(__name__)
# OIDC Core §3.1.3.6: at_hash uses the hash of the JOSE algorithm; Ed25519 signs with SHA-512.
_HASH = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "HS256": hashlib.sha256, "EdDSA": hashlib.sha512}


def subject(user_type: int, user_id: int) -> str:
    """OIDC `sub`: stable, unique per issuer, never reassigned (ids are not reused)."""
    return f"{SUBJECT_PREFIX.get(UserType(user_type), str(user_type))}:{user_id}"


def at_hash(access_token: str, alg: str) -> str:
    """Base64url of the left half of the hash of the access token's ASCII octets."""
    digest = _HASH[alg](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Minted:
    """A token and what its holder may need to know of it without reading it back."""

    token: str
    jti: str
    issued_at: int
    expires_at: int | None
    format: str  # "jwt" | "opaque"
    audited: bool = False  # its audit record was committed with it (`access_token`'s `audit_of`)


class OpaqueStore:
    """Where opaque tokens live: their keyed digest and record, never the token itself.

    New tokens are committed in groups (`add`): the rows of issuances that arrive while a commit is
    in flight go together into the next transaction, so a burst costs one commit (one disk sync on
    SQLite, one round trip on PostgreSQL) instead of one per token queued on the write lock. Each
    caller returns only once the transaction holding its row has committed, so a token handed out
    is in the database; if that commit fails, every caller of its group gets `Unavailable` (503).

    A token's audit record (`add`'s `audit`) goes into the same transaction, appended to the chain
    after the group's rows: one commit (one disk sync, one turn on SQLite's write lock) stores the
    tokens and their records, instead of a token group and an audit batch taking turns."""

    def __init__(
        self, db: Database, master: MasterSecret, audit: AuditLog | None = None, *, group_max: int = GROUP_MAX
    ) -> None:
        self.db = db
        self.master = master
        self.audit = audit
        self._group_max = group_max
        self._waiting: list[tuple[str, repo.OpaqueToken, AuditEntry | None, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def add(self, token: str, record: repo.OpaqueToken, audit: AuditEntry | None = None) -> None:
        """Store a new token (and its audit record) and return once committed. `Unavailable` if not."""
        if audit is not None and self.audit is None:
            raise RuntimeError("an audit record for an opaque token needs the store's audit log")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((self.master.digest(token), record, audit, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups(), name="tillkey-opaque-group")
        await done

    async def _commit_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self._group_max], self._waiting[self._group_max :]
            rows = [(digest, record) for digest, record, _, _ in group]
            entries = [entry for _, _, entry, _ in group if entry is not None]
            try:
                async with self.db.write_turn():
                    if self.db.batches_in_one_trip:
                        records = await self.db.batch(partial(self._write_sync, rows=rows, entries=entries))
                        if self.audit is not None:
                            self.audit.committed(records)
                    else:
                        async with self.db.transaction() as s:
                            await repo.add_opaque_tokens(s, rows)
                            if entries and self.audit is not None:
                                await self.audit.append_in(s, entries)  # last: the chain's head stays locked briefly
            except BaseException as exc:
                # The error's class only: a driver's message can carry the statement's parameters.
                why = type(exc).__name__
                log.warning("opaque tokens not stored (%d refused): %s", len(group), why)
                for *_, done in group:
                    if not done.done():  # a caller that went away (disconnect) no longer waits
                        done.set_exception(Unavailable(headers={"Retry-After": "1"}, detail=f"opaque tokens: {why}"))
                if not isinstance(exc, Exception):  # cancelled (shutdown): nobody is left waiting forever
                    for *_, done in self._waiting:
                        if not done.done():
                            done.set_exception(Unavailable(headers={"Retry-After": "1"}, detail="shutting down"))
                    self._waiting = []
                    raise
            else:
                for *_, done in group:
                    if not done.done():
                        done.set_result(None)

    def _write_sync(
        self, conn: Connection, rows: list[tuple[str, repo.OpaqueToken]], entries: list[AuditEntry]
    ) -> list[AuditRecord]:
        """A group on SQLite, on the database thread (Database.batch): rows, then their records."""
        repo.add_opaque_tokens_sync(conn, rows)
        if not entries or self.audit is None:
            return []
        return self.audit.append_sync(conn, entries)

    async def find(self, token: str) -> TokenClaims | None:
        """The claims of a stored opaque token (tokens/opaque.py `OpaqueTokens`)."""
        async with self.db.session() as s:
            rec = await repo.opaque_token(s, self.master.digest(token))
        if rec is None:
            return None
        return TokenClaims(
            rec.user_type,
            rec.user_id,
            rec.issued_at,
            rec.expires_at,
            rec.jti,
            "opaque",
            rec.auth_methods,
            scope=rec.scope,
            client_id=rec.client_id,
            auth_time=rec.auth_time,
            cnf=confirmation(rec.cnf_jkt, rec.cnf_x5t),
        )


def confirmation(jkt: str | None, x5t: str | None) -> dict[str, str] | None:
    """A token's `cnf` (RFC 7800): its DPoP key's and/or its client certificate's thumbprint."""
    cnf = {**({} if jkt is None else {"jkt": jkt}), **({} if x5t is None else {"x5t#S256": x5t})}
    return cnf or None


class Issuer:
    def __init__(
        self,
        keyring: Callable[[], Keyring],
        issuer: str,
        now: Callable[[], float],
        *,
        store: OpaqueStore | None = None,
        revoked_before: Callable[[int, int], Awaitable[int | None]] | None = None,
    ) -> None:
        """`revoked_before(user_type, user_id)`: the user's revoke-before second, if any (the
        runtime reads it from the database, so a revocation by another process counts at once)."""
        self._keyring = keyring
        self._issuer = issuer
        self._now = now
        self._store = store
        self._revoked_before = revoked_before
        # Tokens minted, by (kind, format): a plain tally the metrics read when scraped.
        self.issued: Counter[tuple[str, str]] = Counter()

    def _now_int(self) -> int:
        return int(self._now())

    def _signer(self, iat: int) -> SigningKey:
        key = self._keyring().signer(iat)
        if key is None:
            raise RuntimeError("no active signing key")
        return key

    def _sign(self, payload: dict[str, Any], *, iat: int, typ: str | None = None) -> tuple[str, str]:
        """(token, alg): signed with the current key, its kid in the header."""
        key = self._signer(iat)
        headers: dict[str, Any] = {"kid": key.kid}
        if typ is not None:
            headers["typ"] = typ
        return jwt.encode(payload, key.signing_key, algorithm=key.alg, headers=headers), key.alg

    async def _opaque(
        self,
        record_of: Callable[[str, int], repo.OpaqueToken],
        audit_of: Callable[[int, int | None], AuditEntry] | None = None,
    ) -> tuple[str, repo.OpaqueToken]:
        if self._store is None:
            raise RuntimeError("opaque tokens need a store")
        token = OPAQUE_PREFIX + random_token(32)
        record = record_of(secrets.token_hex(16), self._now_int())
        audit = None if audit_of is None else audit_of(record.issued_at, record.expires_at)
        await self._store.add(token, record, audit)
        return token, record

    async def wait_past_revocation(self, user_type: int, user_id: int) -> None:
        """`wait_past` the user's revoke-before second as the database has it now."""
        before = None if self._revoked_before is None else await self._revoked_before(user_type, user_id)
        await self.wait_past(before)

    async def wait_past(self, before: int | None) -> None:
        """A token whose iat equals the user's revoke_before second would be born dead (the
        `iat <= revoke_before` rule, whole seconds): wait for the clock to pass that second.
        asyncio's timer runs on the monotonic clock and may wake a hair before the wall clock turns
        the second, so check the clock itself, not the sleep."""
        while before is not None and self._now_int() <= before:  # noqa: ASYNC110 - waiting on time itself
            await asyncio.sleep(max(0.005, before + 1 - self._now()))

    # --- login tokens ---------------------------------------------------------------------------

    async def issue(
        self, user_type: int, user_id: int, ttl: int | None, auth_methods: tuple[str, ...] = ("pwd",)
    ) -> str:
        """A JWT login token (the TokenIssuer contract)."""
        return (await self.login_token(user_type, user_id, ttl, auth_methods)).token

    async def login_token(
        self,
        user_type: int,
        user_id: int,
        ttl: int | None,
        auth_methods: tuple[str, ...] = ("pwd",),
        *,
        opaque: bool = False,
        extra: Mapping[str, Any] | None = None,
        surface: str | None = None,
        auth_time: int | None = None,
        not_after: int | None = None,
        jkt: str | None = None,
    ) -> Minted:
        """A login token. `extra`: further claims (Medusa's actor_id, …), never replacing ours, and
        they make it a JWT. `surface`: the issuing surface, for tokens that surface renews (a JWT).
        `auth_time`: the original sign-in time (both formats keep it, for step-up's max_age).
        `not_after`: no expiry later than this (the sign-in's absolute end). `jkt`: DPoP-bound to
        this key (`cnf`, RFC 9449 §6)."""
        jwt_needed = extra is not None or surface is not None
        if opaque and not jwt_needed:
            token, rec = await self._opaque(
                lambda jti, iat: repo.OpaqueToken(
                    jti,
                    user_type,
                    user_id,
                    iat,
                    _exp(iat, ttl, not_after),
                    auth_methods,
                    auth_time=auth_time,
                    cnf_jkt=jkt,
                )
            )
            self.issued["access", "opaque"] += 1
            return Minted(token, rec.jti, rec.issued_at, rec.expires_at, "opaque")
        iat = self._now_int()
        exp = _exp(iat, ttl, not_after)
        # Magento's claim order first (uid, utypid, iat, exp), then ours.
        payload: dict[str, Any] = {"uid": user_id, "utypid": user_type, "iat": iat}
        if exp is not None:
            payload["exp"] = exp
        jti = secrets.token_hex(16)
        payload.update({"jti": jti, "iss": self._issuer, "amr": list(auth_methods)})
        if auth_time is not None:
            payload["auth_time"] = auth_time
        if jkt is not None:
            payload["cnf"] = {"jkt": jkt}
        if surface is not None:
            payload[SURFACE_CLAIM] = surface
        if extra:
            payload.update({k: v for k, v in extra.items() if k not in payload and k not in RESERVED})
        token, _alg = self._sign(payload, iat=iat)
        self.issued["access", "jwt"] += 1
        return Minted(token, jti, iat, exp, "jwt")

    # --- OAuth 2 access tokens (RFC 9068) ---------------------------------------------------------

    async def access_token(
        self,
        *,
        user_type: int,
        user_id: int,
        client_id: str,
        scope: tuple[str, ...],
        ttl: int,
        opaque: bool,
        auth_time: int | None = None,
        amr: tuple[str, ...] = (),
        not_after: int | None = None,
        audit_of: Callable[[int, int | None], AuditEntry] | None = None,
        jkt: str | None = None,
        x5t: str | None = None,
    ) -> Minted:
        """An OAuth 2 access token. Both formats carry Tillkey's own claims (uid, utypid), so the one
        reader and the one hot path accept them; scope and client_id then narrow the caller.
        `audit_of(iat, exp)`: the token's audit record, committed with an opaque token's row
        (`Minted.audited`); a JWT is stored nowhere, so its caller records it. `jkt`: bound to this
        DPoP key (RFC 9449 §6: the `cnf` claim, or the opaque record's); `x5t`: to this client
        certificate (RFC 8705 §3.1, `cnf.x5t#S256`)."""
        methods = amr or (("client",) if user_type == UserType.OAUTH_CLIENT else ("pwd",))
        if opaque:
            token, rec = await self._opaque(
                lambda jti, iat: repo.OpaqueToken(
                    jti,
                    user_type,
                    user_id,
                    iat,
                    _exp(iat, ttl, not_after),
                    methods,
                    scope,
                    client_id,
                    auth_time,
                    jkt,
                    x5t,
                ),
                audit_of,
            )
            self.issued["oauth2_access", "opaque"] += 1
            return Minted(token, rec.jti, rec.issued_at, rec.expires_at, "opaque", audited=audit_of is not None)
        iat = self._now_int()
        exp = _exp(iat, ttl, not_after)
        assert exp is not None
        jti = secrets.token_hex(16)
        claims: dict[str, Any] = {
            # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, auth_time, amr).
            "iss": self._issuer,
            "sub": subject(user_type, user_id),
            "aud": self._issuer,
            "client_id": client_id,
            "iat": iat,
            "exp": exp,
            "jti": jti,
            "scope": " ".join(scope),
            "amr": list(methods),
            # Tillkey's own claims, read by the hot path like every other token's.
            "uid": user_id,
            "utypid": user_type,
        }
        if auth_time is not None:
            claims["auth_time"] = auth_time
        cnf = confirmation(jkt, x5t)
        if cnf is not None:
            claims["cnf"] = cnf
        acr = acr_of(methods) if user_type != UserType.OAUTH_CLIENT else None
        if acr is not None:
            claims["acr"] = acr  # RFC 9068 §2.2.1, RFC 9470: the class the sign-in reached
        token, _alg = self._sign(claims, iat=iat, typ="at+jwt")
        self.issued["oauth2_access", "jwt"] += 1
        return Minted(token, jti, iat, exp, "jwt")

    # --- OpenID Connect ID tokens -----------------------------------------------------------------

    def id_token(
        self,
        *,
        user_type: int,
        user_id: int,
        client_id: str,
        ttl: int,
        auth_time: int,
        amr: tuple[str, ...],
        nonce: str | None,
        access_token: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """iss, sub, aud, exp, iat, auth_time, nonce, amr, azp and at_hash (OIDC Core §2)."""
        now = self._now_int()
        key = self._signer(now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject(user_type, user_id),
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + ttl,
            "auth_time": auth_time,
            "amr": list(amr),
        }
        acr = acr_of(amr)
        if acr is not None:
            claims["acr"] = acr
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token, key.alg)
        for name, value in (extra or {}).items():
            claims.setdefault(name, value)
        # typ JWT (not at+jwt), and no uid/utypid: an ID token is never accepted as an access token.
        token, _alg = self._sign(claims, iat=now, typ="JWT")
        self.issued["id_token", "jwt"] += 1
        return token


def _exp(iat: int, ttl: int | None, not_after: int | None) -> int | None:
    if ttl is None:
        return not_after
    return iat + ttl if not_after is None else min(iat + ttl, not_after)
