"""An admin's sign-in methods and recent sign-ins, for My account and another admin's detail page
(issue 16): what a reset would remove, and where a stranger's sign-in would show."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tillkey import audit
from tillkey.accounts.passkeys import Owner
from tillkey.console.dashboard import when
from tillkey.console.routing import Console
from tillkey.principal import UserType
from tillkey.store import totp as totp_repo
from tillkey.store.audit import AuditQuery

RECENT = 10
# The sign-in state machine's outcomes (accounts/signin/machine.py) and the provider's refusals.
SIGN_IN_EVENTS = (audit.LOGIN_SUCCESS, audit.LOGIN_FAILURE, audit.LOGIN_THROTTLED, audit.LOGIN_EXTERNAL)


@dataclass(frozen=True, slots=True)
class Factors:
    totp: bool
    totp_since: str | None
    recovery_codes_left: int
    passkeys: list[dict[str, str]]

    @property
    def any(self) -> bool:
        return self.totp or bool(self.passkeys)


async def factors_of(c: Console, admin_id: int) -> Factors:
    status = await c.tk.services.totp.status(admin_id)
    since = None
    if status.active:
        async with c.tk.db.session() as s:
            record = await totp_repo.get(s, admin_id, UserType.ADMIN)
        since = None if record is None else record.created_at.strftime("%Y-%m-%d %H:%M UTC")
    keys = [
        {
            "name": p.name,
            "created": when(p.created_ms),
            "last_used": when(p.last_used_ms) if p.last_used_ms else "never",
        }
        for p in await c.tk.services.passkeys.list(Owner(UserType.ADMIN, admin_id))
    ]
    return Factors(status.active, since, status.recovery_codes_left if status.active else 0, keys)


def _method(details: dict[str, object]) -> str:
    methods = details.get("methods")
    if isinstance(methods, list):
        return " + ".join(str(m) for m in methods)
    return str(details.get("reason", ""))


async def recent_sign_ins(c: Console, admin_id: int) -> list[dict[str, str]]:
    """The last sign-ins and refused attempts the state machine recorded against this admin."""
    found = await c.tk.audit.search(
        AuditQuery(event_prefix="login.", actor_type=int(UserType.ADMIN), actor_id=admin_id, limit=RECENT * 2)
    )
    rows = []
    for r in found:
        if r.event not in SIGN_IN_EVENTS:
            continue
        details = json.loads(r.details) if r.details else {}
        rows.append(
            {
                "time": when(r.created_ms),
                "ip": r.ip or "",
                "user_agent": r.user_agent or "",
                "method": _method(details if isinstance(details, dict) else {}),
                "outcome": r.outcome,
            }
        )
    return rows[:RECENT]
