"""SIGTERM drains: a real `tillkey serve` stops accepting connections, finishes the requests in
flight, writes what it keeps in memory, and exits 0."""

from __future__ import annotations

import base64
import concurrent.futures
import signal
import socket
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, start_server
from tests.polling import eventually
from tests.test_observability import Samples, sample

LOGIN = "/rest/V1/integration/customer/token"
LOGINS = 6


def scrape(srv: Server) -> Samples:
    """Every sample of the server's /metrics: (name, sorted labels) -> value."""
    r = httpx.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    families = text_string_to_metric_families(r.text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def _logins_started(srv: Server) -> float:
    samples = scrape(srv)
    done = sum(
        v
        for (name, labels), v in samples.items()
        if name == "tillkey_http_requests_total" and dict(labels)["route"] == LOGIN
    )
    # In progress counts this scrape too.
    return done + sample(samples, "tillkey_http_requests_in_progress") - 1


def _refused(srv: Server) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_requests_in_flight_and_exits_zero(tmp_path: Path) -> None:
    # Slow password hashing, one hash at a time: six logins stay in flight for a while.
    srv = start_server(
        tmp_path / "srv",
        "sqlite",
        TILLKEY_ARGON2_TIME_COST="8",
        TILLKEY_PASSWORD_HASH_WORKERS="1",
        TILLKEY_LOGIN_QUEUE_LIMIT=str(LOGINS),
    )
    try:
        srv.cli("admin", "create", "--username", "ops", "--email", "ops@example.com", "--password", ADMIN_PASSWORD)
        srv.cli(
            "customer",
            "create",
            "--email",
            "c@example.com",
            "--password",
            CUSTOMER_PASSWORD,
            "--first-name",
            "C",
            "--last-name",
            "D",
        )
        key = srv.cli_json("api-key", "create", "--title", "shop", "--type", "secret", "--for", "ops")
        basic = {"Authorization": "Basic " + base64.b64encode(f"{key['token']}:".encode()).decode()}
        # A use noted in memory only: last-use times are written every minute, and at shutdown.
        eventually(
            lambda: httpx.get(f"{srv.url}/rest/V1/products/24-MB01", headers=basic).status_code != 401,
            within=20,
            what="the new key working",
        )
        assert srv.cli_json("api-key", "list")["api_keys"][0]["last_used_at"] in (None, "")

        def login() -> httpx.Response:
            body = {"username": "c@example.com", "password": CUSTOMER_PASSWORD}
            return httpx.post(srv.url + LOGIN, json=body, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(LOGINS) as pool:
            futures = [pool.submit(login) for _ in range(LOGINS)]
            eventually(lambda: _logins_started(srv) >= LOGINS, within=20, what="the logins reaching the server")
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGTERM)
            # The listening socket closes at once; the logins already accepted carry on.
            eventually(lambda: _refused(srv), within=20, what="connections refused after SIGTERM")
            answers = [f.result() for f in futures]
        assert [r.status_code for r in answers] == [200] * LOGINS, [r.text for r in answers]
        assert all(isinstance(r.json(), str) and r.json().count(".") == 2 for r in answers)
        assert srv.proc.wait(30) == 0
        assert "Application shutdown complete" in srv.log()
        # runtime.stop() ran: the key's last use, kept in memory, reached the database.
        assert srv.cli_json("api-key", "list")["api_keys"][0]["last_used_at"]
    finally:
        srv.stop()
