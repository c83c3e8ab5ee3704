"""The narrow interfaces services are built with (wiring.py): what a service may ask of the
process, and nothing more. A service receives these, never the runtime.

The implementations: `Changes` is store/unit_of_work.UnitOfWork, `Audit` is audit.AuditLog,
`Revocations` is tokens/revoker.Revoker, `Hasher` is crypto/passwords.PasswordHashing; the stores
(`RefreshStore`, `CodeStore`, `ClientStore`, `KeyStore`, `RevocationStore`, `ProfileStore`) are
the small classes of store/repositories.py. A test may hand a service any object with these
methods.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from tillkey.audit.writer import AuditEntry
from tillkey.store.auth import StoredKey
from tillkey.store.oauth2 import Client, Code, RefreshToken
from tillkey.store.repositories import Profile
from tillkey.store.unit_of_work import AuditSink, Work

__all__ = [
    "Audit",
    "AuditSink",
    "Changes",
    "ClientStore",
    "CodeStore",
    "Hasher",
    "KeyStore",
    "Profile",
    "ProfileStore",
    "RefreshStore",
    "RevocationStore",
    "Revocations",
]


class Changes(Protocol):
    """Opens a unit of work: rows + change feed + audit in one transaction, then applied here."""

    def __call__(self) -> AbstractAsyncContextManager[Work]: ...


class Audit(AuditSink, Protocol):
    """The audit log: in a unit of work (`record_in`, through `Work.audit`) or on its own."""

    async def record(
        self,
        event: str,
        *,
        outcome: str = ...,
        actor_type: int | None = None,
        actor_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None: ...

    async def record_queued(
        self,
        event: str,
        *,
        outcome: str = ...,
        actor_type: int | None = None,
        actor_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queued for the batch writer (hot paths: a token endpoint); waits only when full."""

    def prepare(
        self,
        event: str,
        *,
        outcome: str = ...,
        actor_type: int | None = None,
        actor_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """A checked record for a transaction of its own to append (`append_in`): an opaque token's
        `token.issued` goes into the group commit that stores the token."""


class Revocations(Protocol):
    """Durable revocation (committed before it returns), applied to this process at once."""

    async def revoke_for(self, user_type: int, user_id: int) -> None: ...

    async def revoke_ids(self, tokens: list[tuple[str, int | None]]) -> None: ...


class Hasher(Protocol):
    """Password hashing (argon2id, off the event loop)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, hashed: str | None, password: str, *, population: str = "", name: str = "") -> bool:
        """None (no such account): checked against a dummy at a stored hash's cost, and False."""

    async def verify_upgrading(
        self, hashed: str | None, password: str, *, population: str = "", name: str = ""
    ) -> tuple[bool, str | None]:
        """`verify`, and the argon2id hash made in the same turn for a right password against a
        cheap imported hash (for the caller to store if it may; None otherwise)."""

    def needs_rehash(self, hashed: str) -> bool: ...


class ClientStore(Protocol):
    """Registered OAuth 2 clients (the database's view, not the in-memory one)."""

    async def by_client_id(self, client_id: str) -> Client | None: ...

    async def all(self) -> list[Client]: ...

    async def add(self, w: Work, client: Client) -> Client:
        """Register `client` in the caller's unit of work; answers it with its row id."""

    async def delete(self, w: Work, client_id: str) -> Client | None: ...

    async def push_request(self, digest: str, client_id: str, params: str, expires_at: int, now: int) -> None:
        """Keep a pushed authorization request (RFC 9126) until `expires_at`."""

    async def peek_request(self, digest: str, client_id: str, now: int) -> str | None:
        """A live pushed request of this client, left unspent (the sign-in may still come between)."""

    async def pull_request(self, digest: str, client_id: str, now: int) -> str | None:
        """Spend a pushed request of this client: its parameters, or None (unknown, another
        client's, expired, used)."""


class CodeStore(Protocol):
    """Authorization codes, by the digest of the code (never the code itself)."""

    async def add(self, digest: str, code: Code) -> None: ...

    async def get(self, digest: str) -> Code | None: ...

    async def consume(self, digest: str, now: int, *, client_id: str) -> tuple[Code | None, bool]:
        """The code, and whether this call spent it (one transaction): False when it is unknown,
        another client's (left unspent) or already spent."""

    async def note_tokens(self, digest: str, family_id: str | None, access_jti: str, access_expires_at: int) -> None:
        """What the code's exchange issued, for a replay to revoke."""


class RefreshStore(Protocol):
    """Refresh tokens (by digest) and their families."""

    async def start(self, digest: str, record: RefreshToken, *, now: int, keep: int) -> list[RefreshToken]:
        """A new family with its first token (one transaction, serialized per user); answers the
        live families of the same client and user past the newest `keep`."""

    async def consume(self, digest: str, now: int, *, client_id: str | None) -> tuple[RefreshToken | None, bool]:
        """The token, and whether this call spent it (one transaction): False when it is unknown,
        another client's (left unspent), already spent or revoked."""

    async def successor(self, digest: str, record: RefreshToken, *, now: int) -> bool:
        """Claim the live family and write its next token, atomically; False: the family was
        revoked or expired (nothing written)."""

    async def get(self, digest: str) -> RefreshToken | None: ...

    async def of_family(self, family_id: str) -> RefreshToken | None: ...

    async def revoke_family(self, family_id: str, now: int) -> list[tuple[str, int | None]]:
        """Revoke the family and its tokens; answers the access tokens issued from it."""

    async def revoke_families_of_client(self, w: Work, client_id: str) -> tuple[int, list[tuple[str, int | None]]]:
        """In the caller's unit of work: revoke every live family of the client; answers how many,
        and the access tokens issued from them."""


class KeyStore(Protocol):
    """Signing keys' rows, in the caller's unit of work (with its change-feed row and audit)."""

    async def add(self, w: Work, key: StoredKey) -> None: ...

    async def end(self, w: Work, kids: list[str], *, retired_at: int, verify_until: int) -> None: ...


class RevocationStore(Protocol):
    """Revocation rows, in the caller's unit of work (with its change-feed row and audit)."""

    async def revoke_user(self, w: Work, user_type: int, user_id: int, ts: int) -> None: ...

    async def revoke_token(self, w: Work, jti: str, expires_at: int | None) -> None: ...


class ProfileStore(Protocol):
    """The profile of an active account (None: gone or inactive), for OpenID Connect claims."""

    async def active(self, user_type: int, user_id: int) -> Profile | None: ...
