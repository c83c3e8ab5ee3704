"""Fresh as well as fast (issue 19): a credential the CLI creates while the server runs works on the
server's very next request, without waiting for the change-feed poll (set to a minute here, so only
the catch-up on an unknown credential can explain a success), and a flood of unknown credentials
does not cost a database query each (credentials/freshness.py)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess

PASSWORD = "Quite-Long-Pw-" + "q7" * 6
SETTINGS: dict[str, Any] = {"sync_interval": 60, "integration_as_bearer": True}


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    inprocess.cli_environment(monkeypatch, tmp_path)
    yield


async def _admin_token(t: inprocess.InProcess, username: str) -> str:
    r = await t.client.post("/rest/V1/integration/admin/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()
    return token


def test_credentials_created_by_the_cli_work_on_the_next_request(tmp_path: Path, cli_env: None) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            polls = t.tk.catch_up.polls
            # An admin: signing in reads the database; the token's grant is what memory lacked.
            await inprocess.cli(
                "admin", "create", "--username", "newadmin", "--email", "n@example.com", "--password", PASSWORD
            )
            token = await _admin_token(t, "newadmin")
            r = await t.client.get("/admin/users/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.json()["user"]["email"] == "n@example.com", r.text

            # An OAuth 2 client: its tokens count only while the process knows the client.
            client = await inprocess.cli_json(
                "client",
                "create",
                "--name",
                "fresh",
                "--type",
                "confidential",
                "--grant",
                "client_credentials",
                "--scope",
                "Magento_Catalog::products",
            )
            r = await t.client.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                },
            )
            assert r.status_code == 200, r.text
            bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
            assert (await t.client.get("/rest/V1/products", headers=bearer)).status_code == 200

            # An integration, activated by the CLI, its access token used as a bearer at once.
            integration = await inprocess.cli_json("integration", "create", "--name", "erp-fresh", "--all")
            tokens = await inprocess.cli_json("integration", "activate", integration["name"])
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert (await t.client.get("/rest/V1/products", headers=bearer)).status_code == 200

            # A secret API key acting for the admin above.
            key = await inprocess.cli_json(
                "api-key", "create", "--title", "fresh", "--type", "secret", "--for", "newadmin"
            )
            basic = {"Authorization": "Basic " + base64.b64encode(f"{key['token']}:".encode()).decode()}
            r = await t.client.get("/admin/api-keys", headers=basic)
            assert r.status_code == 200, r.text
            # Each needed a catch-up poll; the minute-long background interval never came round.
            assert t.tk.catch_up.polls - polls >= 4

    inprocess.run(body)


def test_unknown_credentials_do_not_each_cost_a_poll(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            made_up = {"Authorization": "Basic " + base64.b64encode(b"sk_" + secrets.token_hex(16).encode()).decode()}
            before = t.tk.catch_up.polls
            for _ in range(30):  # the same unknown key again and again: one poll, then the negative cache
                r = await t.client.get("/admin/users/me", headers=made_up)
                assert r.status_code == 401
            assert t.tk.catch_up.polls - before == 1 and t.tk.catch_up.skipped >= 29

            # Many different unknown keys at once share one poll in flight (single-flight).
            before = t.tk.catch_up.polls
            keys = [base64.b64encode(f"sk_{secrets.token_hex(16)}".encode()).decode() for _ in range(40)]
            got = await asyncio.gather(
                *[t.client.get("/admin/users/me", headers={"Authorization": f"Basic {k}"}) for k in keys]
            )
            assert {r.status_code for r in got} == {401}
            assert t.tk.catch_up.polls - before <= 3

    inprocess.run(body)
