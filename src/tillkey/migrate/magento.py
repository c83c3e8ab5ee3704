"""`tillkey import magento`: admins (with their roles) and customers of a Magento 2.4 database,
with their password hashes as Magento stores them (magento-migration.md §A.1, §A.4).

- A role (authorization_role type G) holding `Magento_Backend::all` maps to Administrators; any
  other becomes a Tillkey role of the same name with the resources it allows that Tillkey knows
  (unknown resource ids are reported, not granted). An admin's role is its U row's parent.
- Integrations keep their consumer key and secret and their access token and secret (the newest
  unrevoked one), decrypted with env.php's crypt/key (crypto/magento_encryptor.py), and the
  resources of their own role; an integration Magento shows as active stays active.
- Customers are one account per email: Magento scopes them per website, so the same email on a
  second website is skipped with that reason (the older account, lowest entity_id, is kept). Each
  keeps its website, store, group and active flag (Tillkey refuses an inactive customer's sign-in;
  Magento 2.4's own sign-in does not check the flag), and a lock still running (lock_expires).
Customers are read a page at a time along the primary key, so memory stays flat however many rows
the shop has.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
from collections import Counter
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import ADMINISTRATORS
from tillkey.crypto import legacy_hashes
from tillkey.crypto.magento_encryptor import ENCRYPTED, MagentoDecryptError, MagentoKeys, plain_secret
from tillkey.migrate.run import ADMIN, CUSTOMER, Machine, Options, Person, Report, run, where
from tillkey.oauth1.handshake import TokenPair
from tillkey.parsing import ascii_int
from tillkey.store import accounts as repo

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

ALL = "Magento_Backend::all"
ROLE_RULES = """
    SELECT r.role_id, r.role_name, ru.resource_id, ru.permission
    FROM authorization_role r JOIN authorization_rule ru ON ru.role_id = r.role_id
    WHERE r.role_type = 'G'
"""
ADMINS = """
    SELECT u.user_id, u.username, u.email, u.firstname, u.lastname, u.password, u.is_active, m.parent_id
    FROM admin_user u
    LEFT JOIN authorization_role m ON m.user_id = u.user_id AND m.role_type = 'U' AND m.user_type = '2'
    ORDER BY u.user_id
"""
# Admins' second factor (Magento's security package): the providers in the clear, the config
# encrypted, and inside it the Google provider's secret encrypted again (magento-migration.md §A.2).
HAS_TFA = """SELECT count(*) FROM information_schema.tables
    WHERE table_schema = DATABASE() AND table_name = 'tfa_user_config'"""
TFA = "SELECT user_id, encoded_providers, encoded_config FROM tfa_user_config ORDER BY config_id"
# An integration: its consumer (key plain, secret encrypted), its newest unrevoked access token (the
# token plain, its secret encrypted) and the rules on its own U role (user_type '1').
INTEGRATIONS = """
    SELECT i.integration_id, i.name, i.email, i.endpoint, i.identity_link_url, i.status,
           c.`key` AS consumer_key, c.secret AS consumer_secret,
           (SELECT t.token FROM oauth_token t WHERE t.consumer_id = c.entity_id AND t.type = 'access'
                AND t.revoked = 0 ORDER BY t.entity_id DESC LIMIT 1) AS token,
           (SELECT t.secret FROM oauth_token t WHERE t.consumer_id = c.entity_id AND t.type = 'access'
                AND t.revoked = 0 ORDER BY t.entity_id DESC LIMIT 1) AS token_secret
    FROM integration i JOIN oauth_consumer c ON c.entity_id = i.consumer_id
    ORDER BY i.integration_id
"""
INTEGRATION_RULES = """
    SELECT r.user_id, ru.resource_id, ru.permission
    FROM authorization_role r JOIN authorization_rule ru ON ru.role_id = r.role_id
    WHERE r.role_type = 'U' AND r.user_type = '1'
"""
# Customers a page at a time along the primary key (each page a short range read of the clustered
# index, then buffered): a server-side cursor over the whole table would be one query, but asyncmy
# reads such a result as fast as the server sends it, however slowly the import consumes it (1M
# rows: 700 MiB). A customer's lock as unix seconds: UNIX_TIMESTAMP reads it in the zone it was
# written in.
CUSTOMERS = """
    SELECT entity_id, email, firstname, lastname, password_hash, website_id, store_id, group_id, is_active,
           UNIX_TIMESTAMP(lock_expires) AS locked_until
    FROM customer_entity WHERE entity_id > :after ORDER BY entity_id LIMIT :page
"""
# The same email on several websites (the collation's equality, as Magento's unique key): the
# oldest account, lowest entity_id, is the one that comes along.
REPEATED = """
    SELECT MIN(email) AS email, MIN(entity_id) AS kept FROM customer_entity
    WHERE email IS NOT NULL GROUP BY email HAVING COUNT(*) > 1
"""
READ_ROWS = 5000  # customers per page
COUNT = """SELECT (SELECT count(*) FROM admin_user) + (SELECT count(*) FROM integration)
    + (SELECT count(*) FROM customer_entity)"""


def async_url(dsn: str) -> str:
    """mysql://… (MySQL or MariaDB) as SQLAlchemy's asyncmy URL."""
    for prefix in ("mysql://", "mariadb://"):
        if dsn.startswith(prefix):
            return "mysql+asyncmy://" + dsn[len(prefix) :]
    return dsn


async def _roles(conn: AsyncConnection) -> dict[int, tuple[str, set[str], set[str]]]:
    """role id -> (name, allowed, denied) resource ids."""
    roles: dict[int, tuple[str, set[str], set[str]]] = {}
    for r in await conn.execute(text(ROLE_RULES)):
        _name, allowed, denied = roles.setdefault(
            int(r.role_id), (str(r.role_name or f"role {r.role_id}"), set(), set())
        )
        (allowed if r.permission == "allow" else denied).add(str(r.resource_id))
    return roles


def _grant(tk: Tillkey, allowed: set[str], denied: set[str]) -> list[str]:
    """What a Tillkey role grants for Magento's rows. Magento writes allow or deny for every
    resource and allows `Magento_Backend::admin` always; in Tillkey a node grants its subtree, so
    a node is granted only if nothing under it is denied (its allowed children are listed too)."""
    return sorted(r for r in allowed if r in tk.tree and not (tk.tree.subtree(r) & denied))


async def _tillkey_roles(
    tk: Tillkey, roles: dict[int, tuple[str, set[str], set[str]]], dry_run: bool
) -> dict[int, str]:
    """Magento role id -> Tillkey role name, creating the roles Tillkey lacks (as the operator)."""
    found: dict[int, str] = {}
    for role_id, (name, allowed, denied) in roles.items():
        if ALL in allowed:
            found[role_id] = ADMINISTRATORS
            continue
        found[role_id] = name
        async with tk.db.session() as s:
            exists = await repo.role_by_name(s, name) is not None
        if not exists and not dry_run:
            await tk.services.accounts.create_role(OPERATOR, name, _grant(tk, allowed, denied))
    return found


async def _integration_grants(conn: AsyncConnection) -> dict[int, tuple[set[str], set[str]]]:
    """integration id -> (allowed, denied) resource ids."""
    grants: dict[int, tuple[set[str], set[str]]] = {}
    for r in await conn.execute(text(INTEGRATION_RULES)):
        allowed, denied = grants.setdefault(int(r.user_id), (set(), set()))
        (allowed if r.permission == "allow" else denied).add(str(r.resource_id))
    return grants


def _open(keys: MagentoKeys | None, stored: str) -> str:
    """A stored OAuth secret in the clear: plain ones as they are, encrypted ones with the key."""
    plain = plain_secret(stored)
    if plain is not None:
        return plain
    if keys is None:
        raise MagentoDecryptError("secret encrypted: give the crypt/key (--crypt-key-env)")
    return keys.secret(stored)


async def _integrations(
    tk: Tillkey, conn: AsyncConnection, keys: MagentoKeys | None, unknown: Counter[str]
) -> AsyncGenerator[Machine, None]:
    grants = await _integration_grants(conn)
    for r in await conn.execute(text(INTEGRATIONS)):
        allowed, denied = grants.get(int(r.integration_id), (set(), set()))
        unknown.update(x for x in allowed if x not in tk.tree and x != ALL)
        resources = (ALL,) if ALL in allowed else tuple(_grant(tk, allowed, denied))
        problem = None if resources else "no resource Tillkey knows"
        secret: str | None = None
        access: TokenPair | None = None
        try:
            secret = _open(keys, r.consumer_secret or "")
            if r.token and r.token_secret:
                access = TokenPair(str(r.token), _open(keys, r.token_secret))
        except MagentoDecryptError as exc:
            problem = str(exc)
        yield Machine(
            str(r.name or ""),
            str(r.email or ""),
            r.endpoint or None,
            r.identity_link_url or None,
            str(r.consumer_key or ""),
            secret,
            resources,
            int(r.status) == 1 and access is not None,
            access,
            problem=problem,
        )


async def count(dsn: str) -> int:
    """How many rows a run reads (admins, integrations, customers): the progress bar's total."""
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(COUNT))).scalar_one())
    finally:
        await engine.dispose()


async def read(
    tk: Tillkey,
    dsn: str,
    *,
    dry_run: bool,
    unknown: Counter[str],
    keys: MagentoKeys | None = None,
    after: str | None = None,
) -> AsyncGenerator[Person | Machine, None]:
    """`after`: a customer checkpoint (an entity_id); admins, roles and integrations
    were done before it was written, so a resumed run reads customers only."""
    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            try:
                if after is None:
                    async with contextlib.aclosing(_staff(tk, conn, dry_run, unknown, keys)) as staff:
                        async for item in staff:
                            yield item
                async with contextlib.aclosing(_customers(conn, after)) as people:
                    async for person in people:
                        yield person
            except GeneratorExit:  # the run stopped mid-stream: drop the connection, unread rows and all
                await conn.invalidate()
                raise
    finally:
        await engine.dispose()


def _totp_secret(keys: MagentoKeys | None, providers: str | None, config: str | None) -> str | None:
    """The admin's active Google TOTP secret, None when it uses no Google factor; MagentoDecryptError
    when it does and the secret cannot be read. Other providers (Duo, U2F) do not move."""
    try:
        enabled = json.loads(providers or "[]")
    except ValueError:
        enabled = []
    if "google" not in enabled or not config:
        return None
    if ENCRYPTED.match(config):
        if keys is None:
            raise MagentoDecryptError("two-factor secret encrypted: give the crypt/key (--crypt-key-env)")
        config = keys.decrypt(config)
    try:  # Magento reads a value it cannot decrypt as plain JSON from older releases
        google = json.loads(config).get("google") or {}
    except (ValueError, AttributeError):
        raise MagentoDecryptError("two-factor config is not JSON") from None
    secret = google.get("secret")
    if not google.get("active") or not isinstance(secret, str) or not secret:
        return None
    if ENCRYPTED.match(secret):
        if keys is None:
            raise MagentoDecryptError("two-factor secret encrypted: give the crypt/key (--crypt-key-env)")
        secret = keys.decrypt(secret)
    try:
        base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    except binascii.Error:
        raise MagentoDecryptError("two-factor secret is not base32") from None
    return secret


async def _tfa(conn: AsyncConnection, keys: MagentoKeys | None) -> dict[int, str | MagentoDecryptError]:
    """admin user id -> its TOTP secret, or why it cannot be read."""
    found: dict[int, str | MagentoDecryptError] = {}
    if not (await conn.execute(text(HAS_TFA))).scalar_one():
        return found
    for r in await conn.execute(text(TFA)):
        try:
            secret = _totp_secret(keys, r.encoded_providers, r.encoded_config)
        except MagentoDecryptError as exc:
            found[int(r.user_id)] = exc
        else:
            if secret:
                found[int(r.user_id)] = secret
    return found


async def _staff(
    tk: Tillkey, conn: AsyncConnection, dry_run: bool, unknown: Counter[str], keys: MagentoKeys | None
) -> AsyncGenerator[Person | Machine, None]:
    roles = await _roles(conn)
    for _, allowed, _denied in roles.values():
        unknown.update(r for r in allowed if r not in tk.tree and r != ALL)
    names = await _tillkey_roles(tk, roles, dry_run)
    factors = await _tfa(conn, keys)
    result = await conn.stream(text(ADMINS).execution_options(yield_per=1000))
    async for a in result:
        role = names.get(int(a.parent_id)) if a.parent_id is not None else None
        factor = factors.get(int(a.user_id))
        # An admin whose second factor cannot come along is not imported without it.
        problem = str(factor) if isinstance(factor, MagentoDecryptError) else None
        yield Person(
            ADMIN,
            a.username or "",
            a.email or "",
            a.firstname or "",
            a.lastname or "",
            a.password,
            active=bool(a.is_active),
            role=role,
            problem=problem or (None if role else "no role"),
            totp_secret=factor if isinstance(factor, str) else None,
        )
    async for machine in _integrations(tk, conn, keys, unknown):
        yield machine


async def _customers(conn: AsyncConnection, after: str | None) -> AsyncGenerator[Person, None]:
    """`after`: the entity_id of a checkpoint (an older run's other form starts over: what it
    imported is found again, a conflict)."""
    kept = {str(r.email).lower(): int(r.kept) for r in await conn.execute(text(REPEATED))}
    last = ascii_int(after, 20) or 0
    while True:
        rows = (await conn.execute(text(CUSTOMERS), {"after": last, "page": READ_ROWS})).all()
        if not rows:
            return
        for person in _people(rows, kept):
            yield person
        last = int(rows[-1].entity_id)


# A shop has a few websites, stores and groups: one Standing per combination, not one per row.
_standing = functools.lru_cache(maxsize=4096)(repo.Standing)


def _people(rows: Sequence[Row[Any]], kept: dict[str, int]) -> Iterator[Person]:
    for c in rows:
        entity_id = int(c.entity_id)
        problem = None
        if kept and kept.get((c.email or "").lower(), entity_id) != entity_id:
            problem = "same email on another website"
        yield Person(
            CUSTOMER,
            c.email or "",
            c.email or "",
            c.firstname or "",
            c.lastname or "",
            c.password_hash,
            problem=problem,
            position=str(entity_id),
            standing=_standing(c.website_id or 0, c.store_id or 0, c.group_id or 0, bool(c.is_active)),
            locked_until=None if c.locked_until is None else int(c.locked_until),
        )


async def import_magento(
    tk: Tillkey, dsn: str, opts: Options | None = None, *, crypt_key: str | None = None
) -> tuple[Report, dict[str, int]]:
    """The run's report, and the Magento resource ids no Tillkey resource matches (not granted).
    `crypt_key` is env.php's crypt/key: integrations' encrypted secrets need it."""
    opts = opts or Options()
    unknown: Counter[str] = Counter()
    keys = MagentoKeys(crypt_key) if crypt_key else None

    def reader(after: str | None) -> AsyncGenerator[Person | Machine, None]:
        return read(tk, dsn, dry_run=opts.dry_run, unknown=unknown, keys=keys, after=after)

    report = await run(tk, "magento", where(dsn), reader, frozenset({legacy_hashes.MAGENTO}), opts)
    return report, dict(unknown)
