"""/metrics (Prometheus text, parsed by prometheus-client's own parser) and /readyz, over HTTP
against real servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, REQUIRE_SERVICES, TILLKEY, Server, free_port
from tillkey.observability.health import ReadinessProbe

CUSTOMER = "roni_cost@example.com"


def scrape(srv: Server, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    r = httpx.get(f"{srv.url}/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], route: str, status: int) -> float:
    return sample(samples, "tillkey_http_requests_total", route=route, method="GET", status=str(status))


def test_requests_are_counted_by_route_template_never_by_raw_path(server: Server) -> None:
    admin = server.token("admin", "alice", ADMIN_PASSWORD)
    before = scrape(server)
    with server.client(admin) as c:
        assert c.get("/rest/V1/products/24-MB01").status_code == 200
        assert c.get("/rest/V1/products/24-MB04").status_code == 200
        assert c.get("/rest/V1/products/no-such-sku-7f3a").status_code == 404
    assert httpx.get(f"{server.url}/no/such/path-9c2e").status_code == 404
    after = scrape(server)
    route = "/rest/V1/products/{sku}"
    assert requests_of(after, route, 200) - requests_of(before, route, 200) == 2
    assert requests_of(after, route, 404) - requests_of(before, route, 404) == 1
    assert requests_of(after, "unmatched", 404) - requests_of(before, "unmatched", 404) == 1
    # Label values come from route templates only: what clients typed never becomes a series.
    text = httpx.get(f"{server.url}/metrics").text
    assert "24-MB01" not in text and "path-9c2e" not in text and "no-such-sku" not in text


def test_auth_outcomes_tokens_issued_and_cache_hits(server: Server) -> None:
    before = scrape(server)
    token = server.token("customer", CUSTOMER, CUSTOMER_PASSWORD)
    with server.client(token) as c:
        for _ in range(3):
            assert c.get("/rest/V1/customers/me").status_code == 200
        assert c.post("/tillkey/v1/logout").status_code == 200
        assert c.get("/rest/V1/customers/me").status_code == 401
    assert httpx.get(f"{server.url}/rest/V1/customers/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # Three reads and the logout route's own access check.
    assert delta("tillkey_auth_total", kind="bearer", outcome="ok") == 4
    assert delta("tillkey_auth_total", kind="bearer", outcome="revoked") == 1
    assert delta("tillkey_auth_total", kind="bearer", outcome="invalid") == 1
    assert delta("tillkey_tokens_issued_total", kind="access", format="jwt") == 1
    # The first call verified the signature; the next ones (and the revoked one) hit the cache.
    assert delta("tillkey_token_cache_misses_total") >= 1
    assert delta("tillkey_token_cache_hits_total") >= 3
    assert 0 < sample(after, "tillkey_token_cache_hit_ratio") <= 1
    assert sample(after, "tillkey_database_up") == 1
    assert sample(after, "tillkey_build_info", version=sample_version(after)) == 1


def sample_version(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    found = [dict(labels)["version"] for name, labels in samples if name == "tillkey_build_info"]
    assert len(found) == 1
    return found[0]


def test_metrics_from_outside_the_metrics_networks_need_the_metrics_resource(sqlite_server_factory: Any) -> None:
    # Behind a trusted proxy, X-Forwarded-For names the client: here one on another network.
    srv: Server = sqlite_server_factory(TILLKEY_TRUSTED_PROXIES="127.0.0.1")
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("customer", "create", "--email", "c@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "C", "--last-name", "D")  # fmt: skip
    afar = {"X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(f"{srv.url}/metrics").status_code == 200  # loopback: a local scraper
    r = httpx.get(f"{srv.url}/metrics", headers=afar)
    assert r.status_code == 401 and "tillkey_" not in r.text
    customer = srv.token("customer", "c@example.com", CUSTOMER_PASSWORD)
    assert httpx.get(f"{srv.url}/metrics", headers={**afar, "Authorization": f"Bearer {customer}"}).status_code == 403
    admin = srv.token("admin", "alice", ADMIN_PASSWORD)
    r = httpx.get(f"{srv.url}/metrics", headers={**afar, "Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and "tillkey_http_requests_total" in r.text


def test_metrics_networks_empty_means_every_scrape_authenticates(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_METRICS_NETWORKS="")
    assert httpx.get(f"{srv.url}/metrics").status_code == 401


def test_readyz_is_ready_with_the_database(fresh_server: Server) -> None:
    r = httpx.get(f"{fresh_server.url}/readyz")
    assert r.status_code == 200
    # The postgres variant runs in scale-out mode, with Redis: then Redis is checked too.
    expected = {"database": "ok", "redis": "ok"} if "TILLKEY_REDIS_URL" in fresh_server.env else {"database": "ok"}
    assert r.json() == {"status": "ready", "checks": expected}


@pytest.mark.postgres
def test_readyz_answers_503_when_the_database_is_gone(tmp_path: Any) -> None:
    from tests.conftest import start_server

    srv = start_server(tmp_path / "srv", "postgres")
    try:
        assert httpx.get(f"{srv.url}/readyz").status_code == 200
        srv.database.drop()  # terminates the server's connections, then removes the database
        deadline = time.monotonic() + 10
        r = httpx.get(f"{srv.url}/readyz", timeout=10)
        while r.status_code == 200 and time.monotonic() < deadline:  # a cached answer lives 1 s
            r = httpx.get(f"{srv.url}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": "failed", "redis": "ok"} and r.json()["status"] == "unavailable"
        assert "postgres" not in r.text and "127.0.0.1" not in r.text  # no connection strings
        assert httpx.get(f"{srv.url}/healthz").status_code == 200  # alive, just not ready
        assert sample(scrape(srv), "tillkey_database_up") == 0
    finally:
        srv.stop()
        srv.database.drop()


def test_readyz_names_an_unreachable_redis(sqlite_server_factory: Any) -> None:
    port = free_port()  # nothing listens there
    srv: Server = sqlite_server_factory(TILLKEY_REDIS_URL=f"redis://:hunter2-secret@127.0.0.1:{port}/0")
    r = httpx.get(f"{srv.url}/readyz", timeout=10)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    body = r.json()
    assert body["checks"] == {"database": "ok", "redis": "failed"}
    assert "redis" in body["message"] and "hunter2" not in r.text and str(port) not in r.text
    samples = scrape(srv)
    assert sample(samples, "tillkey_redis_up") == 0
    assert "hunter2" not in srv.log()


@pytest.fixture
def redis_url() -> Iterator[str]:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError as exc:
        reason = f"Redis is not reachable on 127.0.0.1:6379 ({exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    yield "redis://127.0.0.1:6379/0"


@pytest.mark.redis
def test_readyz_checks_a_reachable_redis(sqlite_server_factory: Any, redis_url: str) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_REDIS_URL=redis_url)
    r = httpx.get(f"{srv.url}/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert sample(scrape(srv), "tillkey_redis_up") == 1


class _CountingSession:
    def __init__(self, calls: list[int]) -> None:
        self.calls = calls

    async def __aenter__(self) -> _CountingSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, _stmt: object) -> None:
        self.calls.append(1)
        await asyncio.sleep(0.01)


def test_a_flood_of_readiness_checks_costs_one_database_round_trip() -> None:
    calls: list[int] = []
    tk: Any = SimpleNamespace(
        db=SimpleNamespace(session=lambda: _CountingSession(calls)), settings=SimpleNamespace(redis_url="")
    )
    probe = ReadinessProbe(tk)

    async def flood() -> None:
        results = await asyncio.gather(*(probe.check() for _ in range(200)))
        assert all(r.ready for r in results)

    asyncio.run(flood())
    assert len(calls) == 1


def test_expired_tokens_are_counted_as_expired(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_CUSTOMER_TOKEN_TTL="1")
    srv.cli("customer", "create", "--email", "c@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "C", "--last-name", "D")  # fmt: skip
    token = srv.token("customer", "c@example.com", CUSTOMER_PASSWORD)
    with srv.client(token) as c:
        deadline = time.monotonic() + 10
        while c.get("/rest/V1/customers/me").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/rest/V1/customers/me").status_code == 401
    samples = scrape(srv)
    assert sample(samples, "tillkey_auth_total", kind="bearer", outcome="expired") >= 2
    assert sample(samples, "tillkey_auth_total", kind="bearer", outcome="revoked") == 0


def test_a_bad_metrics_network_stops_serve_with_one_clear_line(tmp_path: Any) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "TILLKEY_DATA_DIR": str(tmp_path), "TILLKEY_METRICS_NETWORKS": "10.0.0.0/8,lan",
    }  # fmt: skip
    res = subprocess.run([TILLKEY, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert res.returncode == 2
    assert "invalid settings" in res.stderr and "metrics_networks" in res.stderr and "Traceback" not in res.stderr
