"""The narrow stores services are built with (contracts.py: RefreshStore, CodeStore, ClientStore,
KeyStore, RevocationStore, ProfileStore), each a small class over the repository functions.

A method is one transaction of its own, or (the `w: Work` methods) a step inside the caller's unit
of work, so a revocation or a key change commits together with its change-feed row and audit
record. The atomic steps (a code or refresh token spent, a family claimed for its successor) stay
one statement or one transaction each, exactly as the repository functions define them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import auth as auth_repo
from tillkey.store import bounds
from tillkey.store import oauth2 as repo
from tillkey.store.auth import StoredKey
from tillkey.store.db import Database
from tillkey.store.oauth2 import Client, Code, RefreshToken
from tillkey.store.unit_of_work import Work


class ClientRows:
    """ClientStore: registered OAuth 2 clients, read from the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_client_id(self, client_id: str) -> Client | None:
        async with self._db.session() as s:
            return await repo.client_by_client_id(s, client_id)

    async def all(self) -> list[Client]:
        async with self._db.session() as s:
            return await repo.clients(s)

    async def add(self, w: Work, client: Client) -> Client:
        return await repo.add_client(w.s, client)

    async def delete(self, w: Work, client_id: str) -> Client | None:
        return await repo.delete_client(w.s, client_id)

    async def push_request(self, digest: str, client_id: str, params: str, expires_at: int, now: int) -> None:
        async with self._db.transaction() as s:
            await repo.push_request(s, digest, client_id, params, expires_at, now)

    async def peek_request(self, digest: str, client_id: str, now: int) -> str | None:
        async with self._db.session() as s:
            return await repo.peek_request(s, digest, client_id, now)

    async def pull_request(self, digest: str, client_id: str, now: int) -> str | None:
        async with self._db.transaction() as s:
            return await repo.pull_request(s, digest, client_id, now)


class CodeRows:
    """CodeStore: authorization codes by digest."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, digest: str, code: Code) -> None:
        async with self._db.transaction() as s:
            await repo.add_code(s, digest, code)

    async def get(self, digest: str) -> Code | None:
        async with self._db.session() as s:
            return await repo.code(s, digest)

    async def consume(self, digest: str, now: int, *, client_id: str) -> tuple[Code | None, bool]:
        async with self._db.transaction() as s:
            found = await repo.code(s, digest)
            if found is None or found.client_id != client_id:
                return found, False
            return found, await repo.consume_code(s, digest, now)

    async def note_tokens(self, digest: str, family_id: str | None, access_jti: str, access_expires_at: int) -> None:
        async with self._db.transaction() as s:
            await repo.note_code_tokens(s, digest, family_id, access_jti, access_expires_at)


class RefreshRows:
    """RefreshStore: refresh tokens and their families."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, digest: str, record: RefreshToken, *, now: int, keep: int) -> list[RefreshToken]:
        async with self._db.transaction() as s:
            await bounds.serialize(s, "refresh_families", record.user_type, record.user_id)
            await repo.add_family(s, record.family_id, now, record.family_expires_at)
            await repo.add_refresh(s, digest, record)
            return await repo.families_beyond(
                s,
                client_id=record.client_id,
                user_type=record.user_type,
                user_id=record.user_id,
                now=now,
                keep=keep,
                newest=record.family_id,
            )

    async def consume(self, digest: str, now: int, *, client_id: str | None) -> tuple[RefreshToken | None, bool]:
        async with self._db.transaction() as s:
            found = await repo.refresh(s, digest)
            if found is None or found.client_id != client_id:
                return found, False
            return found, await repo.consume_refresh(s, digest, now)

    async def successor(self, digest: str, record: RefreshToken, *, now: int) -> bool:
        # One transaction: the family row stays locked until the successor is written, so a
        # racing revocation waits for it and then revokes it too.
        async with self._db.transaction() as s:
            if not await repo.claim_family(s, record.family_id, now):
                return False
            await repo.add_refresh(s, digest, record)
            return True

    async def get(self, digest: str) -> RefreshToken | None:
        async with self._db.session() as s:
            return await repo.refresh(s, digest)

    async def of_family(self, family_id: str) -> RefreshToken | None:
        async with self._db.session() as s:
            return await repo.family_token(s, family_id)

    async def revoke_family(self, family_id: str, now: int) -> list[tuple[str, int | None]]:
        async with self._db.transaction() as s:
            return await repo.revoke_family(s, family_id, now)

    async def revoke_families_of_client(self, w: Work, client_id: str) -> tuple[int, list[tuple[str, int | None]]]:
        families = await repo.families_of_client(w.s, client_id)
        denied: list[tuple[str, int | None]] = []
        for family in families:
            denied += await repo.revoke_family(w.s, family, w.now)
        return len(families), denied


class KeyRows:
    """KeyStore: the signing keys' rows, written inside the caller's unit of work."""

    async def add(self, w: Work, key: StoredKey) -> None:
        await auth_repo.add_key(w.s, key)

    async def end(self, w: Work, kids: list[str], *, retired_at: int, verify_until: int) -> None:
        await auth_repo.end_keys(w.s, kids, retired_at=retired_at, verify_until=verify_until)


class RevocationRows:
    """RevocationStore: revocation rows, written inside the caller's unit of work."""

    async def revoke_user(self, w: Work, user_type: int, user_id: int, ts: int) -> None:
        await auth_repo.set_revoke_before(w.s, user_type, user_id, ts)

    async def revoke_token(self, w: Work, jti: str, expires_at: int | None) -> None:
        await auth_repo.add_revoked_token(w.s, jti, expires_at)


@dataclass(frozen=True, slots=True)
class Profile:
    """What OpenID Connect's profile and email claims say of an active account."""

    username: str
    email: str
    first: str | None
    last: str | None


class ProfileRows:
    """ProfileStore: the active account's profile, for the UserInfo claims."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def active(self, user_type: int, user_id: int) -> Profile | None:
        async with self._db.session() as s:
            if user_type == UserType.ADMIN:
                admin = await accounts_repo.admin_by_id(s, user_id)
                if admin is None or not admin.is_active:
                    return None
                return Profile(admin.username, admin.email, admin.firstname, admin.lastname)
            if user_type == UserType.CUSTOMER:
                customer = await accounts_repo.customer_by_id(s, user_id)
                if customer is None or not customer.is_active:
                    return None
                return Profile(customer.email, customer.email, customer.firstname, customer.lastname)
        return None
