"""Opaque access tokens: `tk_at_` + 256 random bits. Only a keyed HMAC digest is stored."""

from __future__ import annotations

from tillkey.crypto.secrets import MasterSecret
from tillkey.store import auth as repo
from tillkey.store.db import Database
from tillkey.tokens.contracts import InvalidToken, TokenClaims

PREFIX = "tk_at_"


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
            auth_time=rec.auth_time,
        )
