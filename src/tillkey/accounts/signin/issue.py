"""Step 6 of the sign-in: what a surface hands out once every factor passed.

An issue step is any `async (SignedIn) -> credential` (machine.py `Issue`): the console's is a
session (console/login.py); Medusa's is its own JWT with Medusa's claims, minted where its
refresh mints them (accounts/medusa_auth.py `token`). Magento's login tokens come from
`login_token`, the sign-in's call into token issuance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tillkey.accounts.signin.machine import Issue, SignedIn

if TYPE_CHECKING:
    from tillkey.accounts.service import Accounts


def login_token(accounts: Accounts, *, jkt: str | None = None) -> Issue[str]:
    """A login token for who signed in, with the factors they passed as its amr; `jkt`: bound to
    that DPoP key."""

    async def issue(who: SignedIn) -> str:
        return await accounts.issue_token(who.user_type, who.user_id, who.amr, jkt=jkt)

    return issue
