"""Cookie sessions as a credential kind: server-side sessions found by a keyed digest of the cookie.

Generic on purpose: a session names its `kind` (the surface that made it; Medusa now, the admin
console later) and the account it stands for; the cookie carries only 256 random bits.

Hot path: every live session is held in memory (SessionState), loaded at start and kept current
by the change feed (kind "sessions", ref = the digest), so verifying a cookie is a dict lookup.
Logout deletes the row before it answers and tells every process through the feed; other
processes drop the session within one sync interval. Revoking a user's tokens (deactivation,
`revoke-tokens`, password reset) also ends their sessions: a session is checked against the same
revocation state as a token issued when the session began.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable

from starlette.requests import Request

from tillkey.access.grants import GrantsState
from tillkey.credentials.usage import UsageNotes
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import Unauthenticated
from tillkey.principal import Principal
from tillkey.store.sessions import Session
from tillkey.tokens.contracts import TokenClaims, TokenValidator

COOKIE = "connect.sid"  # Medusa's (express-session's default), so its clients find it
# Session kinds that are API credentials. Console sign-in sessions (console/sign_in_session.py) are not:
# one may still wait for its second factor, and the console has its own cookie and CSRF checks.
API_KINDS = frozenset({"medusa"})
PREFIX = "tk_ss_"
MAX_COOKIE_LENGTH = 256


class SessionState:
    def __init__(self, master: MasterSecret, usage_interval: float) -> None:
        self._master = master
        self._by_digest: dict[str, Session] = {}
        self.usage: UsageNotes[str] = UsageNotes(usage_interval)

    def digest(self, cookie: str) -> str:
        return self._master.digest(cookie)

    def load(self, sessions: Iterable[Session]) -> None:
        self._by_digest = {s.digest: s for s in sessions}

    def apply(self, digests: Iterable[str], live: Iterable[Session]) -> None:
        """Changed sessions: those still in the database come back in `live`, the rest are gone."""
        found = {s.digest: s for s in live}
        for d in digests:
            if d in found:
                self._by_digest[d] = found[d]
            else:
                self._by_digest.pop(d, None)
                self.usage.forget(d)

    def put(self, session: Session) -> None:
        self._by_digest[session.digest] = session

    def drop(self, digest: str) -> None:
        self._by_digest.pop(digest, None)
        self.usage.forget(digest)

    def find(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH or not cookie.startswith(PREFIX):
            return None
        found = self._by_digest.get(self._master.digest(cookie))
        if found is None or found.expires_ms <= now * 1000:
            return None
        return found

    def prune(self, now: float) -> None:
        self._by_digest = {d: s for d, s in self._by_digest.items() if s.expires_ms > now * 1000}


def session_claims(session: Session) -> TokenClaims:
    """The session as the claims of a token issued when it began: same expiry and revocation rules,
    and the sign-in it was made from (`amr`, `auth_time` in its context), for step-up."""
    context = _sign_in_context(session.context)
    return TokenClaims(
        user_type=session.user_type,
        user_id=session.user_id,
        issued_at=session.created_ms // 1000,
        expires_at=-(-session.expires_ms // 1000),
        jti="ss_" + session.digest[:32],
        kind="opaque",
        auth_methods=context[0],
        auth_time=context[1],
    )


@functools.lru_cache(maxsize=4096)
def _sign_in_context(context: str) -> tuple[tuple[str, ...], int | None]:
    """(amr, auth_time) from a session's JSON context; cached: few distinct contexts, read per call."""
    try:
        data = json.loads(context or "{}")
    except ValueError:
        return ("pwd",), None
    amr = data.get("amr") if isinstance(data, dict) else None
    auth_time = data.get("auth_time") if isinstance(data, dict) else None
    # Sessions made before amr was recorded came from a password sign-in.
    methods = tuple(m for m in amr if isinstance(m, str)) if isinstance(amr, list) else ("pwd",)
    ok_time = isinstance(auth_time, int) and not isinstance(auth_time, bool)
    return methods, auth_time if ok_time else None


class SessionCookies:
    """Credential kind: the session cookie. Produces the same Principal a token would."""

    name = "session"

    def __init__(
        self,
        state: SessionState,
        grants: GrantsState,
        validator: TokenValidator,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._grants = grants
        self._validator = validator
        self._now = now

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        cookie = request.cookies.get(COOKIE)
        if cookie is None:
            return None
        now = self._now()
        session = self._state.find(cookie, now)
        if session is None or session.kind not in API_KINDS:
            raise Unauthenticated(detail="unknown or expired session")
        claims = session_claims(session)
        self._validator.validate(claims)  # revoked user -> InvalidToken (401)
        self._state.usage.touch(session.digest, now)
        return dataclasses.replace(self._grants.principal(claims), credential="session")
