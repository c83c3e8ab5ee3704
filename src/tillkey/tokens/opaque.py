"""Opaque access tokens: `tk_at_` + 256 random bits. Only a keyed HMAC digest is stored."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from tillkey.crypto.secrets import MasterSecret, random_token
from tillkey.store import auth as repo
from tillkey.store.db import Database
from tillkey.tokens.contracts import InvalidToken, TokenClaims

PREFIX = "tk_at_"


class OpaqueIssuer:
    def __init__(self, db: Database, master: MasterSecret, now: Callable[[], int]) -> None:
        self._db = db
        self._master = master
        self._now = now

    async def issue(
        self, user_type: int, user_id: int, ttl: int | None, auth_methods: tuple[str, ...] = ("pwd",)
    ) -> str:
        token = PREFIX + random_token(32)
        iat = self._now()
        record = repo.OpaqueToken(
            secrets.token_hex(16), user_type, user_id, iat, None if ttl is None else iat + ttl, auth_methods
        )
        async with self._db.transaction() as s:
            await repo.add_opaque_token(s, self._master.digest(token), record)
        return token


class OpaqueReader:
    """Looks the digest up in the database; the token cache in front keeps this off the hot path."""

    def __init__(self, db: Database, master: MasterSecret) -> None:
        self._db = db
        self._master = master

    async def read(self, token: str) -> TokenClaims:
        if not token.startswith(PREFIX) or len(token) > 128:
            raise InvalidToken(detail="not an opaque token")
        async with self._db.session() as s:
            rec = await repo.opaque_token(s, self._master.digest(token))
        if rec is None:
            raise InvalidToken(detail="unknown opaque token")
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
        )
