"""Fresh as well as fast (issue 19), between real processes: a `tillkey serve` process and the CLI
run as its own process (a subprocess, as an operator's script runs it), sharing the database, with
the server's change-feed poll set to a minute. Each credential the CLI makes works on the server's
very next request (the on-demand catch-up on an unknown credential), and each one it revokes or
deletes is refused on the very next request (the change signal beside the SQLite database,
store/signal.py). tests/fast/test_fresh_credentials.py covers creation in process, and the flood of
unknown credentials."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD, TILLKEY, Server, start_server

SCOPE = "Magento_Catalog::products"


def _cli(srv: Server, *args: str) -> Any:
    """`tillkey ARGS --json` in a process of its own, without waiting for the server afterwards."""
    res = subprocess.run([TILLKEY, *args, "--json"], env=srv.env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"tillkey {' '.join(args)}: {res.stderr}"
    return json.loads(res.stdout)


def _run(srv: Server, *args: str) -> None:
    subprocess.run([TILLKEY, *args], env=srv.env, check=True, capture_output=True, timeout=180)


def test_credentials_made_or_taken_away_by_the_cli_process_count_on_the_servers_next_request(tmp_path: Path) -> None:
    srv = start_server(tmp_path, TILLKEY_SYNC_INTERVAL="60", TILLKEY_INTEGRATION_AS_BEARER="true")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            # An OAuth 2 client, then a client-credentials token from it, then a call with that token.
            client = _cli(
                srv,
                "client",
                "create",
                "--name",
                "fresh",
                "--type",
                "confidential",
                "--grant",
                "client_credentials",
                "--scope",
                SCOPE,
            )
            r = http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
            )
            assert r.status_code == 200, r.text
            r = http.get("/rest/V1/products", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            assert r.status_code == 200, r.text

            # An integration, activated by the CLI, its access token used as a bearer at once.
            _cli(srv, "integration", "create", "--name", "erp-fresh", "--all")
            tokens = _cli(srv, "integration", "activate", "erp-fresh")
            r = http.get("/rest/V1/products", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert r.status_code == 200, r.text

            # A secret API key for an admin the CLI made too.
            admin = ["--username", "freshadmin", "--email", "fresh@example.com", "--password", ADMIN_PASSWORD]
            _run(srv, "admin", "create", *admin)
            key = _cli(srv, "api-key", "create", "--title", "fresh", "--type", "secret", "--for", "freshadmin")
            basic = "Basic " + base64.b64encode(f"{key['token']}:".encode()).decode()
            r = http.get("/admin/api-keys", headers={"Authorization": basic})
            assert r.status_code == 200, r.text

            # Taken away by the CLI: refused on the very next request too (store/signal.py).
            _cli(srv, "api-key", "revoke", key["id"])
            assert http.get("/admin/api-keys", headers={"Authorization": basic}).status_code == 401
            _run(srv, "integration", "revoke", "erp-fresh")
            r = http.get("/rest/V1/products", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert r.status_code == 401, r.text
            _run(srv, "client", "delete", client["client_id"])
            r = http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
            )
            assert r.status_code == 401, r.text
    finally:
        srv.stop()
        srv.database.drop()
