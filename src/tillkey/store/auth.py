"""Repository for signing keys, revocations, opaque tokens and the change feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, delete, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.db import CHANGES, insert_many_sync
from tillkey.store.models import (
    AuthChangeRow,
    OpaqueTokenRow,
    RevocationRow,
    RevokedTokenRow,
    SigningKeyRow,
)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the database holds it: secret material encrypted under the master secret."""

    kid: str
    alg: str
    secret_enc: bytes
    public_jwk: str | None
    created_at: int
    retired_at: int | None
    signs_from: int | None = None
    verify_until: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str
    user_type: int | None
    user_id: int | None
    ref: str | None


@dataclass(frozen=True, slots=True)
class OpaqueToken:
    jti: str
    user_type: int
    user_id: int
    issued_at: int
    expires_at: int | None
    auth_methods: tuple[str, ...]
    scope: tuple[str, ...] | None = None  # OAuth 2 access tokens only
    client_id: str | None = None
    auth_time: int | None = None  # the original sign-in (step-up's max_age); None: not recorded
    cnf_jkt: str | None = None  # DPoP: the thumbprint of the key the token is bound to
    cnf_x5t: str | None = None  # mTLS: the thumbprint of the certificate the token is bound to


def _dialect(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


def _upsert(s: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if _dialect(s) == "postgresql" else sqlite_insert


# --- keys -------------------------------------------------------------------------------------


async def load_keys(s: AsyncSession) -> list[StoredKey]:
    rows = await s.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at))
    return [
        StoredKey(r.kid, r.alg, r.secret_enc, r.public_jwk, r.created_at, r.retired_at, r.signs_from, r.verify_until)
        for r in rows
    ]


async def add_key(s: AsyncSession, key: StoredKey) -> None:
    s.add(
        SigningKeyRow(
            kid=key.kid,
            alg=key.alg,
            secret_enc=key.secret_enc,
            public_jwk=key.public_jwk,
            created_at=key.created_at,
            retired_at=key.retired_at,
            signs_from=key.signs_from,
            verify_until=key.verify_until,
        )
    )


# Any constant; the same in every process (store/migrations/env.py uses another).
_KEYS_LOCK_ID = 0x7117_4E2


async def lock_keys(s: AsyncSession) -> None:
    """Serialize first-key generation across processes for this transaction (PostgreSQL; a SQLite
    database is one host's, and `serve --workers` prepares it before the workers start)."""
    if _dialect(s) == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEYS_LOCK_ID})


async def end_keys(s: AsyncSession, kids: list[str], *, retired_at: int, verify_until: int) -> None:
    """Stop these keys signing at `retired_at` and verifying at `verify_until`; never extends a
    key's life already shortened (a rotation after a retirement must not revive a key)."""
    for row in await s.scalars(select(SigningKeyRow).where(SigningKeyRow.kid.in_(kids))):
        row.retired_at = retired_at if row.retired_at is None else min(row.retired_at, retired_at)
        row.verify_until = verify_until if row.verify_until is None else min(row.verify_until, verify_until)


# --- revocation -------------------------------------------------------------------------------


async def set_revoke_before(s: AsyncSession, user_type: int, user_id: int, ts: int) -> None:
    ins = _upsert(s)(RevocationRow).values(user_type=user_type, user_id=user_id, revoke_before=ts)
    # Never move the watermark backwards (two revocations racing in different processes).
    ins = ins.on_conflict_do_update(
        index_elements=["user_type", "user_id"],
        set_={"revoke_before": func.max(RevocationRow.revoke_before, ins.excluded.revoke_before)}
        if _dialect(s) == "sqlite"
        else {"revoke_before": func.greatest(RevocationRow.revoke_before, ins.excluded.revoke_before)},
    )
    await s.execute(ins)


async def revoke_before_of(s: AsyncSession, user_type: int, user_id: int) -> int | None:
    return await s.scalar(
        select(RevocationRow.revoke_before).where(
            RevocationRow.user_type == user_type, RevocationRow.user_id == user_id
        )
    )


async def all_revoke_before(s: AsyncSession, newer_than: int) -> dict[tuple[int, int], int]:
    rows = await s.execute(select(RevocationRow).where(RevocationRow.revoke_before > newer_than))
    return {(r.user_type, r.user_id): r.revoke_before for (r,) in rows}


async def add_revoked_token(s: AsyncSession, jti: str, expires_at: int | None) -> None:
    ins = _upsert(s)(RevokedTokenRow).values(jti=jti, expires_at=expires_at)
    await s.execute(ins.on_conflict_do_nothing(index_elements=["jti"]))


async def revoked_tokens(s: AsyncSession, now: int, jtis: list[str] | None = None) -> dict[str, int | None]:
    q = select(RevokedTokenRow).where((RevokedTokenRow.expires_at.is_(None)) | (RevokedTokenRow.expires_at > now))
    if jtis is not None:
        q = q.where(RevokedTokenRow.jti.in_(jtis))
    return {r.jti: r.expires_at for r in await s.scalars(q)}


async def purge_expired(s: AsyncSession, now: int) -> None:
    await s.execute(delete(RevokedTokenRow).where(RevokedTokenRow.expires_at <= now))
    await s.execute(delete(OpaqueTokenRow).where(OpaqueTokenRow.expires_at <= now))


# --- opaque tokens ----------------------------------------------------------------------------


async def add_opaque_token(s: AsyncSession, digest: str, tok: OpaqueToken) -> None:
    await add_opaque_tokens(s, [(digest, tok)])


async def add_opaque_tokens(s: AsyncSession, tokens: Sequence[tuple[str, OpaqueToken]]) -> None:
    """Many rows in one INSERT statement (executemany), without an ORM object each."""
    if tokens:
        await s.execute(insert(OpaqueTokenRow), _opaque_rows(tokens))


def add_opaque_tokens_sync(conn: Connection, tokens: Sequence[tuple[str, OpaqueToken]]) -> None:
    """`add_opaque_tokens` on a synchronous connection (Database.batch, SQLite)."""
    insert_many_sync(conn, cast(Table, OpaqueTokenRow.__table__), _OPAQUE_COLUMNS, _opaque_values(tokens))


# The keys of _opaque_rows' dicts, in their order.
_OPAQUE_COLUMNS = (
    "digest",
    "jti",
    "user_type",
    "user_id",
    "issued_at",
    "expires_at",
    "auth_methods",
    "scope",
    "client_id",
    "auth_time",
    "cnf_jkt",
    "cnf_x5t",
)


def _opaque_values(tokens: Sequence[tuple[str, OpaqueToken]]) -> list[tuple[object, ...]]:
    """Each token's row, in _OPAQUE_COLUMNS order."""
    return [
        (
            digest,
            tok.jti,
            tok.user_type,
            tok.user_id,
            tok.issued_at,
            tok.expires_at,
            ",".join(tok.auth_methods),
            None if tok.scope is None else " ".join(tok.scope),
            tok.client_id,
            tok.auth_time,
            tok.cnf_jkt,
            tok.cnf_x5t,
        )
        for digest, tok in tokens
    ]


def _opaque_rows(tokens: Sequence[tuple[str, OpaqueToken]]) -> list[dict[str, object]]:
    return [dict(zip(_OPAQUE_COLUMNS, values, strict=True)) for values in _opaque_values(tokens)]


async def opaque_token(s: AsyncSession, digest: str) -> OpaqueToken | None:
    r = await s.get(OpaqueTokenRow, digest)
    if r is None:
        return None
    methods = tuple(m for m in r.auth_methods.split(",") if m)
    scope = None if r.scope is None else tuple(r.scope.split())
    return OpaqueToken(
        r.jti,
        r.user_type,
        r.user_id,
        r.issued_at,
        r.expires_at,
        methods,
        scope,
        r.client_id,
        r.auth_time,
        r.cnf_jkt,
        r.cnf_x5t,
    )


# --- change feed ------------------------------------------------------------------------------


async def record_change(
    s: AsyncSession,
    kind: str,
    now: int,
    *,
    user_type: int | None = None,
    user_id: int | None = None,
    ref: str | None = None,
) -> None:
    """A change-feed row alone. Services write theirs through store/unit_of_work.py, which also
    applies the change to this process and audits it."""
    add_change(s, kind, now, user_type=user_type, user_id=user_id, ref=ref)


def add_change(
    s: AsyncSession,
    kind: str,
    now: int,
    *,
    user_type: int | None = None,
    user_id: int | None = None,
    ref: str | None = None,
) -> None:
    row = AuthChangeRow(kind=kind, user_type=user_type, user_id=user_id, ref=ref, created_at=now)
    s.add(row)
    # Database.transaction hands these to its after_commit hook (the pub/sub wake-up).
    s.info.setdefault(CHANGES, []).append(row)


async def changes_since(s: AsyncSession, seq: int, recent_since: int) -> list[Change]:
    """Changes after `seq`, plus every change created since `recent_since` (late commits)."""
    rows = await s.scalars(
        select(AuthChangeRow)
        .where((AuthChangeRow.seq > seq) | (AuthChangeRow.created_at >= recent_since))
        .order_by(AuthChangeRow.seq)
    )
    return [Change(r.seq, r.kind, r.user_type, r.user_id, r.ref) for r in rows]


async def last_change_seq(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.max(AuthChangeRow.seq))) or 0)


async def trim_changes(s: AsyncSession, older_than: int) -> None:
    await s.execute(delete(AuthChangeRow).where(AuthChangeRow.created_at < older_than))
