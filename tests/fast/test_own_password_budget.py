"""Guesses at the current password when changing one's own (issue 18's self-service change) spend
the same failure budget as guesses at the login (issue 12: one budget per account, every surface):
a stolen token is no unlimited password-guessing oracle."""

from __future__ import annotations

from pathlib import Path

from tests import inprocess


def test_wrong_current_passwords_lock_the_account_like_wrong_logins(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_lockout_failures=3, login_throttle_max_failures=50) as t:
            await t.create_admin("ada")
            token = await t.admin_token("ada")
            for _ in range(3):
                r = await t.client.post(
                    "/tillkey/v1/admins/me/password",
                    json={"current_password": "Not-the-password-1", "new_password": "Brand-new-pass-4-tests"},
                    headers=t.bearer(token),
                )
                assert r.status_code == 400, r.text
            # The account is locked now: even the right password gets the generic 401 at the login.
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "ada", "password": inprocess.ADMIN_PASSWORD}
            )
            assert r.status_code == 401, r.text
            t.advance(t.tk.settings.admin_lockout_seconds + 1)
            assert (await t.admin_token("ada")) != ""

    inprocess.run(body)
