"""A credential minted in the second its user was revoked in is not born dead.

Revocation is by whole seconds (`iat <= revoke_before`), so every credential the server mints for a
user waits that second out first: login tokens and cookie sessions alike (one rule, the issuer's).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests import inprocess
from tillkey.principal import UserType


async def _early_in_a_second() -> None:
    """Start at the top of a wall-clock second, so what follows happens within it."""
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_a_console_session_started_right_after_sign_out_everywhere_works(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            admin = await t.create_admin("rosa")
            old = await t.console_session(admin.id)
            assert (await old.get("/console/")).status_code == 200
            await _early_in_a_second()
            revoked_at = int(time.time())
            await t.tk.revoker.revoke_for(int(UserType.ADMIN), admin.id)
            assert (await old.get("/console/")).status_code == 303  # signed out
            new = await t.console_session(admin.id)  # the same admin signs in again at once
            assert int(time.time()) > revoked_at  # it waited the revocation's second out
            assert (await new.get("/console/")).status_code == 200
            assert (await old.get("/console/")).status_code == 303

    inprocess.run(body)


def test_a_token_issued_right_after_sign_out_everywhere_works(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            admin = await t.create_admin("theo")
            await _early_in_a_second()
            await t.tk.revoker.revoke_for(int(UserType.ADMIN), admin.id)
            token = await t.admin_token("theo")
            assert (await t.client.get("/admin/users/me", headers=t.bearer(token))).status_code == 200

    inprocess.run(body)
