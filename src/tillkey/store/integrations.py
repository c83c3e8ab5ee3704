"""Repository for integrations, their grants, their OAuth 1.0a tokens and the nonces they used."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.store.accounts import utcnow
from tillkey.store.models import IntegrationResourceRow, IntegrationRow, IntegrationTokenRow, OauthNonceRow

VERIFIER = "verifier"
REQUEST = "request"
ACCESS = "access"


@dataclass(frozen=True, slots=True)
class Integration:
    id: int
    name: str
    email: str
    endpoint_url: str | None
    identity_link_url: str | None
    is_active: bool
    consumer_key: str
    consumer_secret_enc: bytes
    resources: tuple[str, ...]
    created_at: datetime
    # The x5t#S256 of the client certificate its calls must come with (RFC 8705); None: unbound.
    cert_x5t: str | None = None


@dataclass(frozen=True, slots=True)
class StoredToken:
    id: int
    integration_id: int
    kind: str
    secret_enc: bytes
    verifier_digest: str | None
    created_at: int


def _token(r: IntegrationTokenRow) -> StoredToken:
    return StoredToken(r.id, r.integration_id, r.kind, r.secret_enc, r.verifier_digest, r.created_at)


async def _resources(s: AsyncSession, integration_id: int) -> tuple[str, ...]:
    rows = await s.scalars(
        select(IntegrationResourceRow.resource_id).where(IntegrationResourceRow.integration_id == integration_id)
    )
    return tuple(sorted(rows))


async def _integration(s: AsyncSession, r: IntegrationRow) -> Integration:
    return Integration(
        r.id,
        r.name,
        r.email,
        r.endpoint_url,
        r.identity_link_url,
        r.is_active,
        r.consumer_key,
        r.consumer_secret_enc,
        await _resources(s, r.id),
        r.created_at,
        r.cert_x5t,
    )


async def create(
    s: AsyncSession,
    *,
    name: str,
    email: str,
    endpoint_url: str | None,
    identity_link_url: str | None,
    consumer_key: str,
    consumer_secret_enc: bytes,
    resources: Iterable[str],
    cert_x5t: str | None = None,
) -> Integration:
    now = utcnow()
    row = IntegrationRow(
        name=name,
        email=email,
        endpoint_url=endpoint_url,
        identity_link_url=identity_link_url,
        is_active=False,
        consumer_key=consumer_key,
        consumer_secret_enc=consumer_secret_enc,
        cert_x5t=cert_x5t,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    try:
        await s.flush()
    except IntegrityError:
        raise Conflict(f"An integration named {name!r} already exists.") from None
    for rid in sorted(set(resources)):
        s.add(IntegrationResourceRow(integration_id=row.id, resource_id=rid))
    await s.flush()
    return await _integration(s, row)


async def by_name(s: AsyncSession, name: str) -> Integration | None:
    row = await s.scalar(select(IntegrationRow).where(IntegrationRow.name == name))
    return None if row is None else await _integration(s, row)


async def by_id(s: AsyncSession, integration_id: int) -> Integration | None:
    row = await s.get(IntegrationRow, integration_id)
    return None if row is None else await _integration(s, row)


async def by_consumer_key(s: AsyncSession, consumer_key: str) -> Integration | None:
    row = await s.scalar(select(IntegrationRow).where(IntegrationRow.consumer_key == consumer_key))
    return None if row is None else await _integration(s, row)


async def list_all(s: AsyncSession) -> list[Integration]:
    rows = await s.scalars(select(IntegrationRow).order_by(IntegrationRow.id))
    return [await _integration(s, r) for r in rows]


async def all_grants(s: AsyncSession) -> dict[int, tuple[str, ...]]:
    grants: dict[int, list[str]] = {}
    for iid, rid in await s.execute(select(IntegrationResourceRow.integration_id, IntegrationResourceRow.resource_id)):
        grants.setdefault(iid, []).append(rid)
    return {iid: tuple(r) for iid, r in grants.items()}


async def set_active(s: AsyncSession, integration_id: int, active: bool) -> None:
    await s.execute(
        update(IntegrationRow).where(IntegrationRow.id == integration_id).values(is_active=active, updated_at=utcnow())
    )


async def set_certificate(s: AsyncSession, integration_id: int, cert_x5t: str | None) -> None:
    await s.execute(
        update(IntegrationRow).where(IntegrationRow.id == integration_id).values(cert_x5t=cert_x5t, updated_at=utcnow())
    )


async def refresh(
    s: AsyncSession,
    integration_id: int,
    *,
    name: str,
    email: str,
    endpoint_url: str | None,
    identity_link_url: str | None,
    consumer_secret_enc: bytes | None,
    resources: Iterable[str],
    active: bool,
) -> None:
    """An import run's `--on-conflict update`: the integration as its source has it now (a
    `consumer_secret_enc` of None keeps the sealed secret). Its grant is replaced."""
    values: dict[str, object] = {
        "name": name,
        "email": email,
        "endpoint_url": endpoint_url,
        "identity_link_url": identity_link_url,
        "is_active": active,
        "updated_at": utcnow(),
    }
    if consumer_secret_enc is not None:
        values["consumer_secret_enc"] = consumer_secret_enc
    try:
        await s.execute(update(IntegrationRow).where(IntegrationRow.id == integration_id).values(**values))
    except IntegrityError:
        raise Conflict(f"An integration named {name!r} already exists.") from None
    await s.execute(delete(IntegrationResourceRow).where(IntegrationResourceRow.integration_id == integration_id))
    for rid in sorted(set(resources)):
        s.add(IntegrationResourceRow(integration_id=integration_id, resource_id=rid))
    await s.flush()


async def delete_integration(s: AsyncSession, integration_id: int) -> None:
    # Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON, which is set,
    # but explicit deletes keep the repository correct whatever the connection settings.
    for table in (IntegrationTokenRow, IntegrationResourceRow, OauthNonceRow):
        await s.execute(delete(table).where(table.integration_id == integration_id))
    await s.execute(delete(IntegrationRow).where(IntegrationRow.id == integration_id))


# --- tokens -------------------------------------------------------------------------------------


async def add_token(
    s: AsyncSession,
    integration_id: int,
    kind: str,
    digest: str,
    secret_enc: bytes,
    created_at: int,
    verifier_digest: str | None = None,
) -> None:
    s.add(
        IntegrationTokenRow(
            integration_id=integration_id,
            kind=kind,
            digest=digest,
            secret_enc=secret_enc,
            verifier_digest=verifier_digest,
            created_at=created_at,
        )
    )
    await s.flush()


async def token_by_digest(s: AsyncSession, digest: str) -> StoredToken | None:
    row = await s.scalar(select(IntegrationTokenRow).where(IntegrationTokenRow.digest == digest))
    return None if row is None else _token(row)


async def tokens_of(s: AsyncSession, integration_id: int, kind: str) -> list[StoredToken]:
    rows = await s.scalars(
        select(IntegrationTokenRow)
        .where(IntegrationTokenRow.integration_id == integration_id, IntegrationTokenRow.kind == kind)
        .order_by(IntegrationTokenRow.id)
    )
    return [_token(r) for r in rows]


async def promote_token(s: AsyncSession, token_id: int, kind: str, digest: str, secret_enc: bytes) -> None:
    """The handshake's next step: the same row becomes a request (or access) token."""
    await s.execute(
        update(IntegrationTokenRow)
        .where(IntegrationTokenRow.id == token_id)
        .values(kind=kind, digest=digest, secret_enc=secret_enc)
    )


async def spend_token(s: AsyncSession, token_id: int, kind: str) -> bool:
    """Delete one token of this kind; False when another request spent it first."""
    result = await s.execute(
        delete(IntegrationTokenRow).where(IntegrationTokenRow.id == token_id, IntegrationTokenRow.kind == kind)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def delete_tokens(s: AsyncSession, integration_id: int, kinds: Iterable[str] | None = None) -> int:
    q = delete(IntegrationTokenRow).where(IntegrationTokenRow.integration_id == integration_id)
    if kinds is not None:
        q = q.where(IntegrationTokenRow.kind.in_(list(kinds)))
    result = await s.execute(q)
    return int(getattr(result, "rowcount", 0) or 0)


async def token_digests(s: AsyncSession, integration_id: int, kind: str) -> set[str]:
    rows = await s.scalars(
        select(IntegrationTokenRow.digest).where(
            IntegrationTokenRow.integration_id == integration_id, IntegrationTokenRow.kind == kind
        )
    )
    return set(rows)


async def access_tokens(s: AsyncSession) -> list[tuple[str, int, bytes]]:
    """(digest, integration id, encrypted secret) of every access token."""
    rows = await s.execute(
        select(IntegrationTokenRow.digest, IntegrationTokenRow.integration_id, IntegrationTokenRow.secret_enc).where(
            IntegrationTokenRow.kind == ACCESS
        )
    )
    return [(d, i, e) for d, i, e in rows]


# --- nonces -------------------------------------------------------------------------------------


async def use_nonce(s: AsyncSession, integration_id: int, nonce: str, timestamp: int) -> bool:
    """Record a nonce; False when this consumer already used it (the unique key decides, so two
    processes racing with one replayed request cannot both accept it)."""
    ins = (pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert)(OauthNonceRow)
    result = await s.execute(
        ins.values(integration_id=integration_id, nonce=nonce, timestamp=timestamp).on_conflict_do_nothing(
            index_elements=["integration_id", "nonce"]
        )
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def prune_nonces(s: AsyncSession, older_than: int) -> None:
    await s.execute(delete(OauthNonceRow).where(OauthNonceRow.timestamp < older_than))
