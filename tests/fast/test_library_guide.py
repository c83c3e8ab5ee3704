"""docs/library-mode.md step 2 on a default server (TILLKEY_ADMIN_2FA=required): the guard's feed
account as an integration starts and protects routes; an admin feed account is refused, as the guide
says. The guard reaches the in-process app through httpx.ASGITransport."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.app import create_app
from tillkey.clock import Clock
from tillkey.guard import Guard, GuardError, IntegrationCredential
from tillkey.runtime import Tillkey
from tillkey.settings import Settings


def test_the_guide_feed_account_works_with_required_two_factor(tmp_path: Path) -> None:
    async def body() -> None:
        settings = Settings(**{**inprocess.FAST_SETTINGS, "data_dir": tmp_path, "admin_2fa": "required"})
        tk = Tillkey(settings, clock=Clock())
        app = create_app(tk=tk)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

        def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, timeout=10)

        async with app.router.lifespan_context(app):
            # Step 2, as the guide's two commands do it.
            created = await tk.services.integrations.create(OPERATOR, name="guard", resources=["Tillkey::auth_state"])
            done = await tk.services.integrations.activate(OPERATOR, "guard")
            assert done.access_token and done.access_token_secret
            credential = IntegrationCredential(
                consumer_key=created.consumer_key,
                consumer_secret=created.consumer_secret,
                access_token=done.access_token,
                access_token_secret=done.access_token_secret,
            )
            guard = Guard(inprocess.BASE_URL, feed_integration=credential, http_client=client)
            await guard.start()
            await guard.stop()

            # The alternative the guide warns about: an admin feed account needs a second factor here.
            accounts = tk.services.accounts
            await accounts.create_role(OPERATOR, "Guards", ["Tillkey::auth_state"])
            await accounts.create_admin(
                OPERATOR,
                username="guard-admin",
                email="g@example.com",
                password=inprocess.ADMIN_PASSWORD,
                role="Guards",
            )
            admin_guard = Guard(
                inprocess.BASE_URL,
                feed_username="guard-admin",
                feed_password=inprocess.ADMIN_PASSWORD,
                http_client=client,
            )
            with pytest.raises(GuardError, match="2fa"):
                await admin_guard.start()

    inprocess.run(body)
