"""Admin console sessions: what /console/login creates, every console page runs on, and
/oauth2/authorize signs users in with.

They live in the shared server-side session store (store/sessions.py, accounts/sessions.py) as
kind "console": the cookie carries `tk_ss_` + 256 random bits, the database and every process's
memory hold its keyed digest, so finding one is a dict lookup and logout reaches every process
through the change feed. Console sessions are never API credentials (credentials/sessions.py
API_KINDS): a password-only step must not open the API.

Lifetimes are enforced here, on the server, not by the cookie: a session's row expires
`console_idle_timeout` after its last request (each request slides it, written at most every
few seconds) and never later than `console_absolute_lifetime` after sign-in. The id changes at
every sign-in step and whenever the admin's privileges change (session fixation), and, unless
`console_allow_multiple_sessions`, a completed sign-in ends the admin's other console sessions.

The CSRF token of the session's forms is derived from the session (an HMAC of its digest under a
key of its own), so nothing secret is stored for it. Revoking a user's tokens (logout everywhere,
deactivation) also ends the console sessions begun before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import Response

from tillkey.accounts.sessions import Sessions
from tillkey.clock import Clock
from tillkey.crypto.secrets import MasterSecret
from tillkey.principal import Principal
from tillkey.security.proxy import is_secure
from tillkey.settings import Settings
from tillkey.store.sessions import Session
from tillkey.tokens.revocation import RevocationState

# Over HTTPS the cookie takes the __Host- prefix (Secure, Path=/, no Domain: no sibling host or
# plain-HTTP page can plant or read it). Plain HTTP reaches the console only from loopback
# (require_https), which is development: there the cookie cannot be Secure, so it cannot carry
# the prefix either.
SECURE_COOKIE = "__Host-tillkey_console"
DEV_COOKIE = "tillkey_console"
SECURE_CSRF_COOKIE = "__Host-tillkey_csrf"
DEV_CSRF_COOKIE = "tillkey_csrf"
KIND = "console"
PENDING_TTL = 300  # seconds a password-only step has to bring its code
# seconds a password-only step has to set up an authenticator app (forced enrolment): installing
# one takes longer than typing a code
ENROL_TTL = 600
# A request slides the idle deadline; the write is skipped while the deadline moved less than
# this share of the idle timeout (at most a minute), so a busy page costs no write per request.
SLIDE_FRACTION = 20
SLIDE_MAX_MS = 60_000


def cookie_name(conn: HTTPConnection) -> str:
    return SECURE_COOKIE if is_secure(conn.scope) else DEV_COOKIE


def csrf_cookie_name(conn: HTTPConnection) -> str:
    return SECURE_CSRF_COOKIE if is_secure(conn.scope) else DEV_CSRF_COOKIE


def set_cookie(response: Response, conn: HTTPConnection, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict: no other site's page can send a request that carries it."""
    secure = is_secure(conn.scope)
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict")


def delete_cookie(response: Response, conn: HTTPConnection, name: str) -> None:
    response.delete_cookie(name, path="/", secure=is_secure(conn.scope), httponly=True, samesite="strict")


def grant_fingerprint(principal: Principal) -> str:
    """What the admin may do, in a few bytes: a change of it rotates the session id."""
    text = "*" if principal.all_resources else "\n".join(sorted(principal.resources))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session: Session
    auth_time: int
    amr: tuple[str, ...]
    pending_otp: bool
    csrf: str
    absolute_ms: int
    fingerprint: str
    # Forced enrolment (admin_2fa "required", no TOTP yet): the password passed, and the one page
    # this session reaches is the one that sets up the authenticator app.
    enrolling: bool = False

    @property
    def user_type(self) -> int:
        return self.session.user_type

    @property
    def user_id(self) -> int:
        return self.session.user_id

    @property
    def expires_ms(self) -> int:
        return self.session.expires_ms


def _signed_in(session: Session) -> int:
    """Past the bound of console sessions per admin, sign-ins still waiting for their second factor
    are ended before signed-in sessions: knowing the password must not log the admin out."""
    try:
        return 0 if json.loads(session.context).get("pending_otp", True) else 1
    except (ValueError, AttributeError):
        return 0


class ConsoleSessions:
    """Built once (wiring.py); `tk.services.console_sessions`."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        revocations: RevocationState,
        master: MasterSecret,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self.revocations = revocations
        self.master = master
        self.settings = settings
        self.clock = clock

    def _csrf(self, digest: str) -> str:
        key = self.master.derive("tillkey/console-csrf")
        return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def begin(
        self,
        user_type: int,
        user_id: int,
        amr: tuple[str, ...],
        *,
        pending_otp: bool,
        fingerprint: str = "",
        auth_time: int | None = None,
        absolute_ms: int | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        enrolling: bool = False,
    ) -> str:
        """A new session, always a new id (no session fixation); answers the cookie value.
        auth_time/absolute_ms carry over from the session a rotation replaces. enrolling: a
        pending session that may only set up two-factor auth."""
        s = self.settings
        # Before reading the clock: auth_time in the second the admin was revoked in would be dead.
        await self._sessions.wait_past_revocation(user_type, user_id)
        now_ms = self._now_ms()
        if absolute_ms is None:
            absolute_ms = now_ms + s.console_absolute_lifetime * 1000
        enrolling = enrolling and pending_otp
        pending_ttl = ENROL_TTL if enrolling else PENDING_TTL
        ttl_ms = pending_ttl * 1000 if pending_otp else s.console_idle_timeout * 1000
        ttl = max(1, -(-(min(absolute_ms, now_ms + ttl_ms) - now_ms) // 1000))
        context = {
            "amr": list(amr),
            "pending_otp": pending_otp,
            "auth_time": auth_time or now_ms // 1000,
            "abs_ms": absolute_ms,
            "fp": fingerprint,
            **({"enrol": True} if enrolling else {}),
        }
        started = await self._sessions.start(
            kind=KIND,
            user_type=user_type,
            user_id=user_id,
            identity_id=None,
            context=context,
            ttl=ttl,
            ip=ip,
            user_agent=user_agent,
            rank=_signed_in,
        )
        return started.cookie

    def find(self, cookie: str | None) -> ConsoleSession | None:
        found = self._sessions.find(cookie)
        return self.wrap(found) if found is not None else None

    def wrap(self, found: Session) -> ConsoleSession | None:
        if found.kind != KIND:
            return None
        try:
            context = json.loads(found.context)
            amr = tuple(str(m) for m in context.get("amr", []))
            pending = bool(context.get("pending_otp", True))
            auth_time = int(context.get("auth_time", found.created_ms // 1000))
            absolute_ms = int(context.get("abs_ms", found.expires_ms))
            fingerprint = str(context.get("fp", ""))
            enrolling = pending and context.get("enrol") is True
        except (ValueError, AttributeError, TypeError):
            return None
        before = self.revocations.revoke_before.get((found.user_type, found.user_id))
        if before is not None and auth_time <= before:
            return None
        csrf = self._csrf(found.digest)
        return ConsoleSession(found, auth_time, amr, pending, csrf, absolute_ms, fingerprint, enrolling)

    async def touch(self, current: ConsoleSession) -> ConsoleSession | None:
        """A request of the signed-in admin: slide the idle deadline (never past the absolute one).
        None if the session ended meanwhile."""
        now_ms = self._now_ms()
        idle_ms = self.settings.console_idle_timeout * 1000
        deadline = min(current.absolute_ms, now_ms + idle_ms)
        if deadline - current.expires_ms < min(SLIDE_MAX_MS, idle_ms // SLIDE_FRACTION):
            return current
        extended = await self._sessions.extend(current.session, deadline)
        return self.wrap(extended) if extended is not None else None

    async def complete_otp(self, current: ConsoleSession, fingerprint: str) -> str:
        """The second factor passed: end the pending session and begin a full one (a new id)."""
        await self._sessions.end(current.session, reason="second factor passed")
        return await self.begin(
            current.user_type, current.user_id, (*current.amr, "otp"), pending_otp=False, fingerprint=fingerprint
        )

    async def rotate(self, current: ConsoleSession, fingerprint: str) -> str:
        """Privileges changed: the same sign-in continues under a new id."""
        await self._sessions.end(current.session, reason="rotated: privileges changed")
        return await self.begin(
            current.user_type,
            current.user_id,
            current.amr,
            pending_otp=False,
            fingerprint=fingerprint,
            auth_time=current.auth_time,
            absolute_ms=current.absolute_ms,
        )

    async def end_others(self, user_type: int, user_id: int, cookie: str) -> int:
        """Admin account sharing off: a new sign-in ends the admin's other console sessions."""
        if self.settings.console_allow_multiple_sessions:
            return 0
        keep = self._sessions.state.digest(cookie)
        return await self._sessions.end_all(user_type, user_id, kind=KIND, keep=keep, reason="signed in elsewhere")

    async def end(self, current: ConsoleSession, *, reason: str = "logout") -> None:
        await self._sessions.end(current.session, reason=reason)
