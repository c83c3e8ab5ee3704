"""Console login sessions: what /console/login creates and /oauth2/authorize signs users in with.

INTERIM: built by the OAuth 2 work on its own table (console_sessions) because the shared session
store (store/sessions.py, credentials/sessions.py on the medusa branch) had not landed; the console
issue is to move these sessions onto that store. The interface here (begin, find, complete_otp,
end) is all the OAuth surface uses, so the swap stays local.

The cookie carries `tk_cn_` + 256 random bits; the database holds its keyed digest. Sessions are
read per console request (a cold path: login and consent pages, never API calls). Revoking a
user's tokens (logout everywhere, deactivation) also ends the sessions begun before.
"""

from __future__ import annotations

import secrets

from tillkey.runtime import Tillkey
from tillkey.store import console_sessions as repo
from tillkey.store.console_sessions import ConsoleSession

COOKIE = "__Host-tillkey_console"
PREFIX = "tk_cn_"
MAX_COOKIE = 128
PENDING_TTL = 300  # seconds a password-only step has to bring its code

__all__ = ["COOKIE", "ConsoleSession", "ConsoleSessions"]


class ConsoleSessions:
    def __init__(self, tk: Tillkey) -> None:
        self.tk = tk

    async def begin(self, user_type: int, user_id: int, amr: tuple[str, ...], *, pending_otp: bool) -> str:
        """A new session, always a new id (no session fixation); answers the cookie value."""
        cookie = PREFIX + secrets.token_urlsafe(32)
        now = self.tk.clock.now_int()
        ttl = PENDING_TTL if pending_otp else self.tk.settings.console_session_ttl
        session = ConsoleSession(
            self.tk.master.digest(cookie), user_type, user_id, now, amr, secrets.token_urlsafe(24), pending_otp,
            now + ttl,
        )  # fmt: skip
        async with self.tk.db.transaction() as s:
            await repo.purge_expired(s, now)
            await repo.add(s, session)
        return cookie

    async def find(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > MAX_COOKIE or not cookie.startswith(PREFIX):
            return None
        async with self.tk.db.session() as s:
            found = await repo.get(s, self.tk.master.digest(cookie))
        if found is None or found.expires_at <= self.tk.clock.now_int():
            return None
        before = self.tk.revocations.revoke_before.get((found.user_type, found.user_id))
        if before is not None and found.auth_time <= before:
            return None
        return found

    async def complete_otp(self, session: ConsoleSession) -> str:
        """The second factor passed: end the pending session and begin a full one (a new id)."""
        await self.end(session.digest)
        return await self.begin(session.user_type, session.user_id, (*session.amr, "otp"), pending_otp=False)

    async def end(self, digest: str) -> None:
        async with self.tk.db.transaction() as s:
            await repo.end(s, digest)
