"""Server-side sessions: start one for an authenticated caller, end one durably (logout).

The cookie value is `tk_ss_` + 256 random bits; the database and memory hold only its keyed
digest. Generic: `kind` names the surface (medusa now; the admin console can reuse it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tillkey import audit
from tillkey.clock import Clock
from tillkey.contracts import Changes
from tillkey.credentials.sessions import PREFIX, SessionState
from tillkey.crypto.secrets import random_token
from tillkey.settings import Settings
from tillkey.store import sessions as repo
from tillkey.store.db import Database
from tillkey.store.sessions import Session
from tillkey.store.unit_of_work import Work

CONSOLE = "console"  # console/sign_in_session.py's kind: its own bound (console_sessions_per_admin)


@dataclass(frozen=True, slots=True)
class Started:
    cookie: str
    session: Session


class Sessions:
    """Cookie sessions: the rows (durable) and this process's SessionState (what requests read)."""

    def __init__(
        self,
        *,
        state: SessionState,
        changes: Changes,
        db: Database,
        clock: Clock,
        settings: Settings,
        wait_past_revocation: Callable[[int, int], Awaitable[None]],
    ) -> None:
        """`wait_past_revocation`: the issuer's (tokens/issuer.py); a session is a credential minted
        like a token, under the same `iat <= revoke_before` rule."""
        self.state = state
        self.wait_past_revocation = wait_past_revocation
        self.changes = changes
        self.db = db
        self.clock = clock
        self.settings = settings

    async def start(
        self,
        *,
        kind: str,
        user_type: int,
        user_id: int,
        identity_id: int | None,
        context: dict[str, Any],
        ip: str | None = None,
        user_agent: str | None = None,
        ttl: int | None = None,
        rank: Callable[[Session], int] | None = None,
    ) -> Started:
        """ttl: seconds (default: the session_ttl setting). Past the account's bound of sessions,
        the oldest of the lowest `rank` is ended (or the new one refused: the session_limit setting)."""
        # Created in the second the user was revoked in, it would be born dead: wait that second out.
        await self.wait_past_revocation(user_type, user_id)
        cookie = PREFIX + random_token(32)
        now_ms = int(self.clock.now() * 1000)
        ttl = self.settings.session_ttl if ttl is None else ttl
        session = Session(
            self.state.digest(cookie),
            kind,
            user_type,
            user_id,
            identity_id,
            json.dumps(context, separators=(",", ":"), sort_keys=True),
            now_ms,
            now_ms + ttl * 1000,
        )
        settings = self.settings
        limit = settings.console_sessions_per_admin if kind == CONSOLE else settings.sessions_per_account
        state = self.state
        async with self.changes() as w:
            evict = settings.session_limit == "evict_oldest"
            evicted = await repo.add_bounded(w.s, session, limit=limit, evict=evict, rank=rank)
            w.changed("sessions", ref=session.digest, apply=functools.partial(state.put, session))
            for old in evicted:
                w.changed("sessions", ref=old.digest, apply=functools.partial(state.drop, old.digest))
            reason = f"evicted: more than {limit} sessions"
            self._record_ended(w, evicted, reason=reason, ip=ip, user_agent=user_agent)
            w.audit(
                audit.SESSION_CREATED,
                actor_type=user_type,
                actor_id=user_id,
                ip=ip,
                user_agent=user_agent,
                details={"kind": kind, "ttl": ttl},
            )
        return Started(cookie, session)

    def find(self, cookie: str | None) -> Session | None:
        return self.state.find(cookie, self.clock.now())

    async def end(
        self,
        session: Session,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        reason: str = "logout",
        by: tuple[int, int] | None = None,
    ) -> None:
        """Logout: the row is gone (committed) before this returns; other processes follow the feed.
        `by`: (user type, id) of whoever ended someone else's session."""
        await self.end_many([session], reason=reason, ip=ip, user_agent=user_agent, by=by)

    async def end_many(
        self,
        sessions: list[Session],
        *,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
        by: tuple[int, int] | None = None,
    ) -> None:
        if not sessions:
            return
        async with self.changes() as w:
            for session in sessions:
                await repo.end(w.s, session.digest)
                w.changed("sessions", ref=session.digest, apply=functools.partial(self.state.drop, session.digest))
            self._record_ended(w, sessions, reason=reason, ip=ip, user_agent=user_agent, by=by)

    def _record_ended(
        self,
        w: Work,
        sessions: list[Session],
        *,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
        by: tuple[int, int] | None = None,
    ) -> None:
        """The audit records of ended sessions, in the transaction that ends them."""
        for session in sessions:
            details: dict[str, object] = {"kind": session.kind, "reason": reason}
            if by is not None and by != (session.user_type, session.user_id):
                details.update(ended_by_type=by[0], ended_by_id=by[1])
            w.audit(
                audit.SESSION_ENDED,
                actor_type=session.user_type,
                actor_id=session.user_id,
                ip=ip,
                user_agent=user_agent,
                details=details,
            )

    async def of_user(self, user_type: int, user_id: int, kind: str | None = None) -> list[Session]:
        now_ms = int(self.clock.now() * 1000)
        async with self.db.session() as s:
            return await repo.of_user(s, now_ms, user_type=user_type, user_id=user_id, kind=kind)

    async def end_all(
        self,
        user_type: int,
        user_id: int,
        *,
        kind: str | None = None,
        keep: str | None = None,
        reason: str,
        by: tuple[int, int] | None = None,
    ) -> int:
        """End every live session of an account (of one kind), but `keep` (a digest); answers how many."""
        found = [x for x in await self.of_user(user_type, user_id, kind) if x.digest != keep]
        await self.end_many(found, reason=reason, by=by)
        return len(found)

    async def extend(self, session: Session, expires_ms: int) -> Session | None:
        """Slide the expiry (idle timeout): written, and told to every process through the feed.
        None if the session ended meanwhile (another process's logout)."""
        now_ms = int(self.clock.now() * 1000)
        extended = dataclasses.replace(session, expires_ms=expires_ms)
        state = self.state
        async with self.changes() as w:
            found = await repo.extend(w.s, session.digest, expires_ms, now_ms)
            apply = functools.partial(state.put, extended) if found else functools.partial(state.drop, session.digest)
            w.changed("sessions", ref=session.digest, apply=apply)
        return extended if found else None
