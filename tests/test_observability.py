"""/metrics (Prometheus text, parsed by prometheus-client's own parser) and /readyz, over HTTP.

The app runs in this process (tests/inprocess.py), on SQLite and on PostgreSQL (with Redis, the
scale-out configuration); an expiry is reached by moving the injected clock. Only the check that
`tillkey serve` refuses bad settings starts the console script."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import inprocess
from tests.conftest import TILLKEY, free_port, need_redis
from tests.inprocess import CUSTOMER_PASSWORD, InProcess
from tests.polling import until
from tillkey.observability.health import ReadinessProbe
from tillkey.storeapi.seed import seed

CUSTOMER = "roni_cost@example.com"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def redis_settings() -> dict[str, str]:
    """The test Redis, under a key prefix no other app uses (skips without Redis, see conftest)."""
    return {"redis_url": need_redis(), "redis_key_prefix": f"tktest-{secrets.token_hex(4)}"}


@pytest.fixture(params=inprocess.BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh database; on PostgreSQL also Redis, as the postgres servers ran (scale-out)."""
    with inprocess.database(request.param, tmp_path) as settings:
        yield {**settings, **(redis_settings() if request.param == "postgres" else {})}


@asynccontextmanager
async def seeded(tmp_path: Path, db: dict[str, Any]) -> AsyncIterator[InProcess]:
    """Admin alice and the demo data (customer roni_cost@example.com)."""
    async with inprocess.running(tmp_path, **db) as t:
        await t.create_admin("alice")
        await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


async def scrape(t: InProcess, **headers: str) -> Samples:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    r = await t.client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(samples: Samples, route: str, status: int) -> float:
    return sample(samples, "tillkey_http_requests_total", route=route, method="GET", status=str(status))


def test_requests_are_counted_by_route_template_never_by_raw_path(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            admin = t.bearer(await t.admin_token("alice"))
            before = await scrape(t)
            assert (await t.client.get("/rest/V1/products/24-MB01", headers=admin)).status_code == 200
            assert (await t.client.get("/rest/V1/products/24-MB04", headers=admin)).status_code == 200
            assert (await t.client.get("/rest/V1/products/no-such-sku-7f3a", headers=admin)).status_code == 404
            assert (await t.client.get("/no/such/path-9c2e")).status_code == 404
            after = await scrape(t)
            route = "/rest/V1/products/{sku}"
            assert requests_of(after, route, 200) - requests_of(before, route, 200) == 2
            assert requests_of(after, route, 404) - requests_of(before, route, 404) == 1
            assert requests_of(after, "unmatched", 404) - requests_of(before, "unmatched", 404) == 1
            # Label values come from route templates only: what clients typed never becomes a series.
            text = (await t.client.get("/metrics")).text
            assert "24-MB01" not in text and "path-9c2e" not in text and "no-such-sku" not in text

    inprocess.run(body)


def test_auth_outcomes_tokens_issued_and_cache_hits(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            before = await scrape(t)
            token = t.bearer(await t.customer_token(CUSTOMER))
            for _ in range(3):
                assert (await t.client.get("/rest/V1/customers/me", headers=token)).status_code == 200
            assert (await t.client.post("/tillkey/v1/logout", headers=token)).status_code == 200
            assert (await t.client.get("/rest/V1/customers/me", headers=token)).status_code == 401
            r = await t.client.get("/rest/V1/customers/me", headers={"Authorization": "Bearer x.y.z"})
            assert r.status_code == 401
            after = await scrape(t)

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

    inprocess.run(body)


def sample_version(samples: Samples) -> str:
    found = [dict(labels)["version"] for name, labels in samples if name == "tillkey_build_info"]
    assert len(found) == 1
    return found[0]


def test_metrics_from_outside_the_metrics_networks_need_the_metrics_resource(tmp_path: Path) -> None:
    # Behind a trusted proxy, X-Forwarded-For names the client: here one on another network.
    async def body() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            await t.create_admin("alice")
            await t.create_customer("c@example.com")
            afar = {"X-Forwarded-For": "203.0.113.9"}
            assert (await t.client.get("/metrics")).status_code == 200  # loopback: a local scraper
            r = await t.client.get("/metrics", headers=afar)
            assert r.status_code == 401 and "tillkey_" not in r.text
            customer = t.bearer(await t.customer_token("c@example.com"))
            assert (await t.client.get("/metrics", headers={**afar, **customer})).status_code == 403
            admin = t.bearer(await t.admin_token("alice"))
            r = await t.client.get("/metrics", headers={**afar, **admin})
            assert r.status_code == 200 and "tillkey_http_requests_total" in r.text

    inprocess.run(body)


def test_metrics_networks_empty_means_every_scrape_authenticates(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, metrics_networks="") as t:
            assert (await t.client.get("/metrics")).status_code == 401

    inprocess.run(body)


def test_readyz_is_ready_with_the_database(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.get("/readyz")
            assert r.status_code == 200
            # The postgres variant runs in scale-out mode, with Redis: then Redis is checked too.
            expected = {"database": "ok", "redis": "ok"} if "redis_url" in db else {"database": "ok"}
            assert r.json() == {"status": "ready", "checks": expected}

    inprocess.run(body)


@pytest.mark.postgres
def test_readyz_answers_503_when_the_database_is_gone(tmp_path: Path) -> None:
    from tests.conftest import make_database

    async def body() -> None:
        created = make_database("postgres", tmp_path)
        try:
            async with inprocess.running(tmp_path, database_url=created.url, **redis_settings()) as t:
                assert (await t.client.get("/readyz")).status_code == 200
                created.drop()  # terminates the app's connections, then removes the database

                async def unready() -> Any:
                    r = await t.client.get("/readyz")  # a cached answer lives 1 s
                    return r if r.status_code != 200 else None

                r = await until(unready, what="/readyz not 200")
                assert r.status_code == 503
                assert r.json()["checks"] == {"database": "failed", "redis": "ok"}
                assert r.json()["status"] == "unavailable"
                assert "postgres" not in r.text and "127.0.0.1" not in r.text  # no connection strings
                assert (await t.client.get("/healthz")).status_code == 200  # alive, just not ready
                assert sample(await scrape(t), "tillkey_database_up") == 0
        finally:
            created.drop()

    inprocess.run(body)


def test_readyz_names_an_unreachable_redis(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    caplog.set_level(logging.DEBUG)  # everything the app logs, as the server's log file had it

    async def body() -> None:
        async with inprocess.running(tmp_path, redis_url=f"redis://:hunter2-secret@127.0.0.1:{port}/0") as t:
            r = await t.client.get("/readyz")
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            found = r.json()
            assert found["checks"] == {"database": "ok", "redis": "failed"}
            assert "redis" in found["message"] and "hunter2" not in r.text and str(port) not in r.text
            assert sample(await scrape(t), "tillkey_redis_up") == 0

    inprocess.run(body)
    assert caplog.records and "hunter2" not in caplog.text


@pytest.mark.redis
def test_readyz_checks_a_reachable_redis(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **redis_settings()) as t:
            r = await t.client.get("/readyz")
            assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "redis": "ok"}
            assert sample(await scrape(t), "tillkey_redis_up") == 1

    inprocess.run(body)


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
    db: Any = SimpleNamespace(session=lambda: _CountingSession(calls))
    probe = ReadinessProbe(db)

    async def flood() -> None:
        results = await asyncio.gather(*(probe.check() for _ in range(200)))
        assert all(r.ready for r in results)

    asyncio.run(flood())
    assert len(calls) == 1


def test_expired_tokens_are_counted_as_expired(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, customer_token_ttl=1) as t:
            await t.create_customer("c@example.com")
            token = t.bearer(await t.customer_token("c@example.com"))
            assert (await t.client.get("/rest/V1/customers/me", headers=token)).status_code == 200
            t.advance(60)  # past the lifetime and any leeway
            for _ in range(2):
                assert (await t.client.get("/rest/V1/customers/me", headers=token)).status_code == 401
            samples = await scrape(t)
            assert sample(samples, "tillkey_auth_total", kind="bearer", outcome="expired") >= 2
            assert sample(samples, "tillkey_auth_total", kind="bearer", outcome="revoked") == 0

    inprocess.run(body)


def test_a_bad_metrics_network_stops_serve_with_one_clear_line(tmp_path: Any) -> None:
    # The console script's own exit: a process, on purpose.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "TILLKEY_DATA_DIR": str(tmp_path),
        "TILLKEY_METRICS_NETWORKS": "10.0.0.0/8,lan",
    }
    res = subprocess.run(
        [TILLKEY, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert "invalid settings" in res.stderr and "metrics_networks" in res.stderr and "Traceback" not in res.stderr
