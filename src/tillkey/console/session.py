"""Console sign-in sessions: what /console/login creates and /oauth2/authorize signs users in with.

They live in the shared server-side session store (store/sessions.py, accounts/sessions.py) as
kind "console": the cookie carries `tk_ss_` + 256 random bits, the database and every process's
memory hold its keyed digest, so finding one is a dict lookup and logout reaches every process
through the change feed. The context records how the user signed in (amr) and whether the second
factor is still to come. Console sessions are never API credentials (credentials/sessions.py
API_KINDS): a password-only step must not open the API.

The CSRF token of the session's forms is derived from the session (an HMAC of its digest under a
key of its own), so nothing secret is stored for it. Revoking a user's tokens (logout everywhere,
deactivation) also ends the console sessions begun before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from tillkey.accounts.sessions import Sessions
from tillkey.runtime import Tillkey
from tillkey.store.sessions import Session

COOKIE = "__Host-tillkey_console"
KIND = "console"
PENDING_TTL = 300  # seconds a password-only step has to bring its code


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session: Session
    auth_time: int
    amr: tuple[str, ...]
    pending_otp: bool
    csrf: str

    @property
    def user_type(self) -> int:
        return self.session.user_type

    @property
    def user_id(self) -> int:
        return self.session.user_id


class ConsoleSessions:
    def __init__(self, tk: Tillkey) -> None:
        self.tk = tk
        self._sessions = Sessions(tk)

    def _csrf(self, digest: str) -> str:
        key = self.tk.master.derive("tillkey/console-csrf")
        return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()

    async def begin(self, user_type: int, user_id: int, amr: tuple[str, ...], *, pending_otp: bool) -> str:
        """A new session, always a new id (no session fixation); answers the cookie value."""
        started = await self._sessions.start(
            kind=KIND, user_type=user_type, user_id=user_id, identity_id=None,
            context={"amr": list(amr), "pending_otp": pending_otp},
            ttl=PENDING_TTL if pending_otp else self.tk.settings.console_session_ttl,
        )  # fmt: skip
        return started.cookie

    def find(self, cookie: str | None) -> ConsoleSession | None:
        found = self._sessions.find(cookie)
        if found is None or found.kind != KIND:
            return None
        auth_time = found.created_ms // 1000
        before = self.tk.revocations.revoke_before.get((found.user_type, found.user_id))
        if before is not None and auth_time <= before:
            return None
        try:
            context = json.loads(found.context)
            amr = tuple(str(m) for m in context.get("amr", []))
            pending = bool(context.get("pending_otp", True))
        except (ValueError, AttributeError, TypeError):
            return None
        return ConsoleSession(found, auth_time, amr, pending, self._csrf(found.digest))

    async def complete_otp(self, current: ConsoleSession) -> str:
        """The second factor passed: end the pending session and begin a full one (a new id)."""
        await self.end(current)
        return await self.begin(current.user_type, current.user_id, (*current.amr, "otp"), pending_otp=False)

    async def end(self, current: ConsoleSession) -> None:
        await self._sessions.end(current.session)
