"""`tillkey import medusa`: users and customers of a Medusa v2 database, with their emailpass
passwords (scrypt-kdf, verified as Medusa does and upgraded at first sign-in), and API keys: a
secret key keeps working with the same `sk_…` (its scrypt verifier is kept until its first use,
credentials/api_keys.py), acting for the admin its creator became. Medusa users are full admins:
each becomes an admin named by its email, holding Administrators. Reads stream
(server-side cursor), so memory stays flat however many rows the shop has.

Medusa 2.21's TOTP factors (auth_mfa_factor, enabled) come along, so nobody loses a second factor
on the way: their secrets are sealed with the auth module's `mfa.encryption_key` (AES-256-GCM under
its SHA-256, `v1:iv:tag:ciphertext` in base64url), which `--mfa-key-env` names. Without it, a
person with a factor is skipped with the reason, never imported weaker."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tillkey.crypto import legacy_hashes
from tillkey.migrate.run import ADMIN, CUSTOMER, Item, Key, Options, Person, Report, run, where
from tillkey.store.api_keys import SECRET

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

# An actor's emailpass password: auth_identity.app_metadata names the actor, provider_identity
# holds the hash (medusa.md §5). Soft-deleted rows (deleted_at) are left behind.
_ACTORS = """
    SELECT a.id, a.email, a.first_name, a.last_name, p.provider_metadata ->> 'password' AS password,
           {mfa} AS mfa_secret
    FROM {table} a
    LEFT JOIN auth_identity i ON i.app_metadata ->> '{key}' = a.id AND i.deleted_at IS NULL
    LEFT JOIN provider_identity p
      ON p.auth_identity_id = i.id AND p.provider = 'emailpass' AND p.deleted_at IS NULL
    {mfa_join}
    WHERE a.deleted_at IS NULL {only}
    ORDER BY a.id
"""
# Medusa 2.15+ (auth_mfa_factor): the enabled TOTP factor's sealed secret; older databases have none.
_MFA = "f.provider_metadata ->> 'secret'"
_MFA_JOIN = """LEFT JOIN auth_mfa_factor f ON f.auth_identity_id = i.id AND f.provider = 'totp'
      AND f.status = 'enabled' AND f.deleted_at IS NULL"""
HAS_MFA = "SELECT to_regclass('auth_mfa_factor') IS NOT NULL"
NEEDS_KEY = "TOTP factor on: give Medusa's mfa.encryption_key (--mfa-key-env)"
UNOPENED = "TOTP secret does not open with the mfa.encryption_key"
COUNT = """SELECT (SELECT count(*) FROM "user" WHERE deleted_at IS NULL)
    + (SELECT count(*) FROM customer WHERE deleted_at IS NULL AND has_account)
    + (SELECT count(*) FROM api_key WHERE deleted_at IS NULL)"""
# API keys not deleted, with their creator's email (a secret key acts for it); revoked ones too,
# with their revocation time (Medusa's delayed revocation keeps a key valid until then).
KEYS = """
    SELECT k.type, k.title, k.token, k.salt, k.redacted, u.email AS creator, k.created_by,
           (extract(epoch FROM k.created_at) * 1000)::bigint AS created_ms,
           (extract(epoch FROM k.revoked_at) * 1000)::bigint AS revoked_ms
    FROM api_key k LEFT JOIN "user" u ON u.id = k.created_by AND u.deleted_at IS NULL
    WHERE k.deleted_at IS NULL
    ORDER BY k.created_at, k.id
"""


def _actors(table: str, key: str, only: str, mfa: bool) -> str:
    return _ACTORS.format(
        table=table, key=key, only=only, mfa=_MFA if mfa else "NULL", mfa_join=_MFA_JOIN if mfa else ""
    )


def open_secret(sealed: str, encryption_key: str) -> str:
    """A TOTP secret as @medusajs/auth seals it (utils/mfa.js encryptSecret); ValueError if it
    is not that format or does not open with this key."""
    parts = sealed.split(":")
    if len(parts) != 4 or parts[0] != "v1":
        raise ValueError("not a v1 sealed secret")
    iv, tag, data = (base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)) for x in parts[1:])
    key = hashlib.sha256(encryption_key.encode()).digest()
    try:
        return AESGCM(key).decrypt(iv, data + tag, None).decode()
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise ValueError("does not open") from exc


def _secret(sealed: str | None, encryption_key: str | None) -> tuple[str | None, str | None]:
    """(the TOTP secret, why it cannot be had): (None, None) without a factor."""
    if not sealed:
        return None, None
    if not encryption_key:
        return None, NEEDS_KEY
    try:
        return open_secret(sealed, encryption_key), None
    except ValueError:
        return None, UNOPENED


READ_ROWS = 5000  # rows the server-side cursor hands over at a time (partitions need the size given)
AFTER = "AND a.id > :after"


def async_url(dsn: str) -> str:
    """postgresql://… as SQLAlchemy's asyncpg URL."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


async def count(dsn: str) -> int:
    """How many rows a run reads (users, customers, keys): the progress bar's total."""
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(COUNT))).scalar_one())
    finally:
        await engine.dispose()


async def read(dsn: str, after: str | None = None, mfa_key: str | None = None) -> AsyncGenerator[Item, None]:
    """Users, then API keys (they act for users), then customers; `after`, a customer checkpoint
    (an id), reads customers only: the rest was done before it was written."""
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            mfa = bool((await conn.execute(text(HAS_MFA))).scalar_one())
            if after is None:
                users = _actors('"user"', "user_id", "", mfa)
                result = await conn.stream(text(users).execution_options(yield_per=1000))
                async for r in result:
                    email = r.email or ""
                    secret, problem = _secret(r.mfa_secret, mfa_key)
                    yield Person(
                        ADMIN,
                        email,
                        email,
                        r.first_name or "",
                        r.last_name or "",
                        r.password,
                        problem=problem,
                        totp_secret=secret,
                    )
                result = await conn.stream(text(KEYS).execution_options(yield_per=1000))
                async for k in result:
                    problem = None
                    if k.type == SECRET and k.creator is None:
                        problem = "its creator is not a Medusa user"
                    yield Key(
                        str(k.type),
                        str(k.title or ""),
                        str(k.token or ""),
                        str(k.salt or ""),
                        str(k.redacted or ""),
                        k.creator,
                        int(k.created_ms),
                        None if k.revoked_ms is None else int(k.revoked_ms),
                        problem=problem,
                    )
            only = "AND a.has_account " + (AFTER if after is not None else "")
            query = text(_actors("customer", "customer_id", only, mfa))
            result = await conn.stream(query.execution_options(yield_per=READ_ROWS), {"after": after} if after else {})
            async for rows in result.partitions(READ_ROWS):  # a list of rows per await, not one per row
                for r in rows:
                    email = r.email or ""
                    secret, problem = _secret(r.mfa_secret, mfa_key)
                    yield Person(
                        CUSTOMER,
                        email,
                        email,
                        r.first_name or "",
                        r.last_name or "",
                        r.password,
                        position=str(r.id),
                        problem=problem,
                        totp_secret=secret,
                    )
    finally:
        await engine.dispose()


async def import_medusa(tk: Tillkey, dsn: str, opts: Options | None = None, mfa_key: str | None = None) -> Report:
    def reader(after: str | None) -> AsyncGenerator[Item, None]:
        return read(dsn, after, mfa_key)

    return await run(tk, "medusa", where(dsn), reader, frozenset({legacy_hashes.MEDUSA_SCRYPT}), opts or Options())
