"""Repository for OAuth 2 clients, authorization codes and refresh-token families.

Single use is enforced by the database, not by a read-then-write: consuming a code or a refresh
token is one conditional UPDATE (`... WHERE used_at IS NULL`), and only the caller whose UPDATE
changed a row may go on. Two simultaneous uses therefore cannot both succeed, on SQLite or
PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import (
    OAuthClientRow,
    OAuthCodeRow,
    OAuthPushedRequestRow,
    RefreshFamilyRow,
    RefreshTokenRow,
)


@dataclass(frozen=True, slots=True)
class Client:
    id: int
    client_id: str
    name: str
    client_type: str  # confidential | public
    secret_digest: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    first_party: bool
    require_pkce: bool
    active: bool
    created_at: int
    resource_server: bool = False  # may introspect others' tokens (RFC 7662 §2.1)
    dpop_bound_access_tokens: bool = False  # every token request must carry a DPoP proof (RFC 9449 §5.2)
    token_endpoint_auth_method: str | None = None  # None: by its kind (a secret, or none)
    jwks: str | None = None  # private_key_jwt: the client's keys, JWKS JSON text
    jwks_uri: str | None = None  # ... or where to fetch them
    require_pushed_authorization_requests: bool = False  # RFC 9126 §6
    tls_client_certificate_bound_access_tokens: bool = False  # RFC 8705 §3: tokens bound to its certificate
    # tls_client_auth (RFC 8705 §2.1.2): which name of the certificate identifies the client
    # (subject_dn, san_dns, san_uri or san_email) and the registered value.
    tls_client_auth_field: str | None = None
    tls_client_auth_value: str | None = None

    @property
    def confidential(self) -> bool:
        return self.client_type == "confidential"

    @property
    def auth_method(self) -> str:
        """The one way this client authenticates at the token endpoint (RFC 7591 §2 names;
        client_secret_basic stands for a secret sent either way, Basic or in the body)."""
        if self.token_endpoint_auth_method:
            return self.token_endpoint_auth_method
        return "client_secret_basic" if self.confidential else "none"


@dataclass(frozen=True, slots=True)
class Code:
    client_id: str
    user_type: int
    user_id: int
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str | None
    nonce: str | None
    auth_time: int
    amr: tuple[str, ...]
    expires_at: int
    used_at: int | None = None
    family_id: str | None = None
    access_jti: str | None = None
    access_expires_at: int | None = None
    dpop_jkt: str | None = None  # RFC 9449 §10: the exchange must carry a proof of this key


@dataclass(frozen=True, slots=True)
class RefreshToken:
    family_id: str
    client_id: str | None
    user_type: int
    user_id: int
    scope: tuple[str, ...] | None
    auth_time: int
    amr: tuple[str, ...]
    issued_at: int
    expires_at: int
    family_expires_at: int
    used_at: int | None = None
    revoked_at: int | None = None
    access_jti: str | None = None
    access_expires_at: int | None = None
    cnf_jkt: str | None = None  # DPoP: a public client's refresh token is bound to this key


def _split(text: str | None, sep: str = " ") -> tuple[str, ...]:
    return tuple(p for p in (text or "").split(sep) if p)


def _client(r: OAuthClientRow) -> Client:
    return Client(
        r.id,
        r.client_id,
        r.name,
        r.client_type,
        r.secret_digest,
        _split(r.redirect_uris, "\n"),
        _split(r.grant_types),
        _split(r.scopes),
        r.first_party,
        r.require_pkce,
        r.active,
        r.created_at,
        r.resource_server,
        r.dpop_bound_access_tokens,
        r.token_endpoint_auth_method,
        r.jwks,
        r.jwks_uri,
        r.require_pushed_authorization_requests,
        r.tls_client_certificate_bound_access_tokens,
        r.tls_client_auth_field,
        r.tls_client_auth_value,
    )


# --- clients ------------------------------------------------------------------------------------


async def add_client(s: AsyncSession, c: Client) -> Client:
    row = OAuthClientRow(
        client_id=c.client_id,
        name=c.name,
        client_type=c.client_type,
        secret_digest=c.secret_digest,
        redirect_uris="\n".join(c.redirect_uris),
        grant_types=" ".join(c.grant_types),
        scopes=" ".join(c.scopes),
        first_party=c.first_party,
        require_pkce=c.require_pkce,
        active=c.active,
        created_at=c.created_at,
        resource_server=c.resource_server,
        dpop_bound_access_tokens=c.dpop_bound_access_tokens,
        token_endpoint_auth_method=c.token_endpoint_auth_method,
        jwks=c.jwks,
        jwks_uri=c.jwks_uri,
        require_pushed_authorization_requests=c.require_pushed_authorization_requests,
        tls_client_certificate_bound_access_tokens=c.tls_client_certificate_bound_access_tokens,
        tls_client_auth_field=c.tls_client_auth_field,
        tls_client_auth_value=c.tls_client_auth_value,
    )
    s.add(row)
    await s.flush()
    return _client(row)


async def client_by_client_id(s: AsyncSession, client_id: str) -> Client | None:
    row = await s.scalar(select(OAuthClientRow).where(OAuthClientRow.client_id == client_id))
    return None if row is None else _client(row)


async def clients(s: AsyncSession, *, active_only: bool = False) -> list[Client]:
    q = select(OAuthClientRow).order_by(OAuthClientRow.id)
    if active_only:
        q = q.where(OAuthClientRow.active.is_(True))
    return [_client(r) for r in await s.scalars(q)]


async def delete_client(s: AsyncSession, client_id: str) -> Client | None:
    row = await s.scalar(select(OAuthClientRow).where(OAuthClientRow.client_id == client_id))
    if row is None:
        return None
    found = _client(row)
    await s.delete(row)
    return found


async def push_request(s: AsyncSession, digest: str, client_id: str, params: str, expires_at: int, now: int) -> None:
    await s.execute(delete(OAuthPushedRequestRow).where(OAuthPushedRequestRow.expires_at <= now))
    s.add(OAuthPushedRequestRow(digest=digest, client_id=client_id, params=params, expires_at=expires_at))


async def peek_request(s: AsyncSession, digest: str, client_id: str, now: int) -> str | None:
    """A pushed request's parameters, left unspent; None when unknown, another client's or expired."""
    row = await s.get(OAuthPushedRequestRow, digest)
    if row is None or row.client_id != client_id or row.expires_at <= now:
        return None
    return row.params


async def pull_request(s: AsyncSession, digest: str, client_id: str, now: int) -> str | None:
    """A pushed request's parameters, spent by this call (one DELETE decides between two uses);
    None when unknown, another client's (left alone), expired or already used."""
    row = await s.get(OAuthPushedRequestRow, digest)
    if row is None or row.client_id != client_id:
        return None
    params, expires_at = row.params, row.expires_at
    res = await s.execute(delete(OAuthPushedRequestRow).where(OAuthPushedRequestRow.digest == digest))
    if not res.rowcount or expires_at <= now:  # type: ignore[attr-defined]
        return None
    return params


# --- authorization codes ------------------------------------------------------------------------


async def add_code(s: AsyncSession, digest: str, c: Code) -> None:
    s.add(
        OAuthCodeRow(
            digest=digest,
            client_id=c.client_id,
            user_type=c.user_type,
            user_id=c.user_id,
            redirect_uri=c.redirect_uri,
            scope=" ".join(c.scope),
            code_challenge=c.code_challenge,
            nonce=c.nonce,
            auth_time=c.auth_time,
            amr=",".join(c.amr),
            expires_at=c.expires_at,
            dpop_jkt=c.dpop_jkt,
        )
    )


def _code(r: OAuthCodeRow) -> Code:
    return Code(
        r.client_id,
        r.user_type,
        r.user_id,
        r.redirect_uri,
        _split(r.scope),
        r.code_challenge,
        r.nonce,
        r.auth_time,
        _split(r.amr, ","),
        r.expires_at,
        r.used_at,
        r.family_id,
        r.access_jti,
        r.access_expires_at,
        r.dpop_jkt,
    )


async def code(s: AsyncSession, digest: str) -> Code | None:
    row = await s.get(OAuthCodeRow, digest)
    return None if row is None else _code(row)


async def consume_code(s: AsyncSession, digest: str, now: int) -> bool:
    """Mark the code used; False when it already was (or does not exist)."""
    res = await s.execute(
        update(OAuthCodeRow).where(OAuthCodeRow.digest == digest, OAuthCodeRow.used_at.is_(None)).values(used_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def note_code_tokens(
    s: AsyncSession, digest: str, family_id: str | None, access_jti: str, access_expires_at: int
) -> None:
    await s.execute(
        update(OAuthCodeRow)
        .where(OAuthCodeRow.digest == digest)
        .values(family_id=family_id, access_jti=access_jti, access_expires_at=access_expires_at)
    )


# --- refresh tokens -----------------------------------------------------------------------------


async def add_refresh(s: AsyncSession, digest: str, t: RefreshToken) -> None:
    s.add(
        RefreshTokenRow(
            digest=digest,
            family_id=t.family_id,
            client_id=t.client_id,
            user_type=t.user_type,
            user_id=t.user_id,
            scope=None if t.scope is None else " ".join(t.scope),
            auth_time=t.auth_time,
            amr=",".join(t.amr),
            issued_at=t.issued_at,
            expires_at=t.expires_at,
            family_expires_at=t.family_expires_at,
            access_jti=t.access_jti,
            access_expires_at=t.access_expires_at,
            cnf_jkt=t.cnf_jkt,
        )
    )


def _refresh(r: RefreshTokenRow) -> RefreshToken:
    return RefreshToken(
        r.family_id,
        r.client_id,
        r.user_type,
        r.user_id,
        None if r.scope is None else _split(r.scope),
        r.auth_time,
        _split(r.amr, ","),
        r.issued_at,
        r.expires_at,
        r.family_expires_at,
        r.used_at,
        r.revoked_at,
        r.access_jti,
        r.access_expires_at,
        r.cnf_jkt,
    )


async def refresh(s: AsyncSession, digest: str) -> RefreshToken | None:
    row = await s.get(RefreshTokenRow, digest)
    return None if row is None else _refresh(row)


async def family_token(s: AsyncSession, family_id: str) -> RefreshToken | None:
    row = await s.scalar(select(RefreshTokenRow).where(RefreshTokenRow.family_id == family_id).limit(1))
    return None if row is None else _refresh(row)


async def consume_refresh(s: AsyncSession, digest: str, now: int) -> bool:
    """Spend a live refresh token; False when it was already spent or revoked (or is unknown)."""
    res = await s.execute(
        update(RefreshTokenRow)
        .where(
            RefreshTokenRow.digest == digest, RefreshTokenRow.used_at.is_(None), RefreshTokenRow.revoked_at.is_(None)
        )
        .values(used_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def add_family(s: AsyncSession, family_id: str, now: int, expires_at: int) -> None:
    s.add(RefreshFamilyRow(family_id=family_id, created_at=now, rotated_at=now, expires_at=expires_at))


async def claim_family(s: AsyncSession, family_id: str, now: int) -> bool:
    """Lock a live family for a rotation (False: revoked or expired). Hold the transaction open
    until the new token is written: a revocation waits for it, then revokes that token too."""
    res = await s.execute(
        update(RefreshFamilyRow)
        .where(
            RefreshFamilyRow.family_id == family_id,
            RefreshFamilyRow.revoked_at.is_(None),
            RefreshFamilyRow.expires_at > now,
        )
        .values(rotated_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def revoke_family(s: AsyncSession, family_id: str, now: int) -> list[tuple[str, int | None]]:
    """Revoke the family and every refresh token in it; answers the access tokens issued from it
    (jti, expiry), for the caller to deny. The family row goes first (it orders racing rotations)."""
    await s.execute(
        update(RefreshFamilyRow)
        .where(RefreshFamilyRow.family_id == family_id, RefreshFamilyRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await s.execute(
        update(RefreshTokenRow)
        .where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    rows = await s.execute(
        select(RefreshTokenRow.access_jti, RefreshTokenRow.access_expires_at).where(
            RefreshTokenRow.family_id == family_id, RefreshTokenRow.access_jti.is_not(None)
        )
    )
    return [(str(j), e) for j, e in rows]


async def families_beyond(
    s: AsyncSession, *, client_id: str | None, user_type: int, user_id: int, now: int, keep: int, newest: str
) -> list[RefreshToken]:
    """Live families of one client and user past the newest `keep`, `newest` (just started)
    counted first (one token of each, oldest login first): the ones to revoke so that no client
    can grow a user's logins without bound."""
    client = RefreshTokenRow.client_id.is_(None) if client_id is None else RefreshTokenRow.client_id == client_id
    started = func.min(RefreshTokenRow.issued_at)
    rows = await s.execute(
        select(RefreshTokenRow.family_id, started)
        .where(
            client,
            RefreshTokenRow.user_type == user_type,
            RefreshTokenRow.user_id == user_id,
            RefreshTokenRow.revoked_at.is_(None),
            RefreshTokenRow.family_expires_at > now,
            RefreshTokenRow.family_id != newest,
        )
        .group_by(RefreshTokenRow.family_id)
        .order_by(started.desc(), RefreshTokenRow.family_id)
        .offset(max(0, keep - 1))
    )
    found = [await family_token(s, family_id) for family_id, _ in rows]
    return [t for t in reversed(found) if t is not None]


async def families_of_client(s: AsyncSession, client_id: str) -> list[str]:
    rows = await s.scalars(
        select(RefreshTokenRow.family_id)
        .where(RefreshTokenRow.client_id == client_id, RefreshTokenRow.revoked_at.is_(None))
        .distinct()
    )
    return list(rows)


async def purge_expired(s: AsyncSession, now: int) -> None:
    await s.execute(delete(OAuthCodeRow).where(OAuthCodeRow.expires_at <= now - 86400))
    await s.execute(delete(RefreshTokenRow).where(RefreshTokenRow.family_expires_at <= now))
    await s.execute(delete(RefreshFamilyRow).where(RefreshFamilyRow.expires_at <= now))
