"""Step 6 of the sign-in: what a surface hands out once every factor passed.

An issue step is any `async (SignedIn) -> credential` (machine.py `Issue`): the console's is a
session (surfaces/console.py). Login tokens, on every surface that answers one, come from
`login_token`, the sign-in's one call into token issuance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tillkey.accounts.service import Accounts
from tillkey.accounts.signin.machine import Issue, SignedIn
from tillkey.runtime import Tillkey

Claims = Callable[[SignedIn], Awaitable[Mapping[str, Any]]]


def login_token(tk: Tillkey, claims: Claims | None = None) -> Issue[str]:
    """A login token for who signed in; `claims`: the surface's extra claims (Medusa's)."""

    async def issue(who: SignedIn) -> str:
        extra = await claims(who) if claims is not None else None
        return await Accounts(tk).issue_token(who.user_type, who.user_id, who.amr, extra=extra)

    return issue
