"""Throttling, lockout, rate limits, enumeration resistance, security headers, HTTPS awareness.

Most tests run the app in this process (tests/inprocess.py): a lock or a lockout runs out when the
injected clock moves, not after a sleep. Servers are kept for what needs processes: two processes
sharing one budget in Redis, timing through a real socket, and a login flood against uvicorn."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import socket
import statistics
import time
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, REQUIRE_SERVICES, Server
from tests.inprocess import InProcess
from tests.polling import eventually

SIGN_IN_FAILED = {
    "message": "The account sign-in was incorrect or your account is disabled temporarily. "
    "Please wait and try again later."
}


# --- in process ---------------------------------------------------------------------------------


@asynccontextmanager
async def seeded(tmp_path: Path, **settings: Any) -> AsyncIterator[InProcess]:
    """Admin alice and customer c@example.com, on an app with `settings`."""
    async with inprocess.running(tmp_path, **settings) as t:
        await t.create_admin("alice")
        await t.create_customer("c@example.com")
        yield t


async def _post_login(t: InProcess, kind: str, username: str, password: str, **headers: str) -> httpx.Response:
    return await t.client.post(
        f"/rest/V1/integration/{kind}/token", json={"username": username, "password": password}, headers=headers
    )


def test_throttle_magento_semantics(tmp_path: Path) -> None:
    async def body() -> None:
        async with seeded(tmp_path) as t:
            # 5 failures, then the right password: token (magento.md §6 test semantics)
            for _ in range(5):
                assert (await _post_login(t, "customer", "c@example.com", "wrong-password")).status_code == 401
            assert (await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)).status_code == 200
            # the success reset the count: 6 more failures, then even the right password is refused
            for _ in range(6):
                assert (await _post_login(t, "customer", "c@example.com", "wrong-password")).status_code == 401
            r = await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
            # the throttle is per username and user type, and covers names that do not exist
            for _ in range(6):
                await _post_login(t, "admin", "ghost", "whatever-pw")
            assert (await _post_login(t, "admin", "alice", ADMIN_PASSWORD)).status_code == 200

    inprocess.run(body)


def test_admin_unlock_lifts_lock_and_throttle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with seeded(tmp_path) as t:
            for _ in range(6):
                await _post_login(t, "admin", "alice", "wrong-password")
            assert (await _post_login(t, "admin", "alice", ADMIN_PASSWORD)).status_code == 401
            await inprocess.cli("admin", "unlock", "alice")
            assert (await _post_login(t, "admin", "alice", ADMIN_PASSWORD)).status_code == 200

    inprocess.run(body)


def test_lock_expires_and_every_failure_extends_it(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {
            "login_throttle_max_failures": 3,
            "login_throttle_lock_seconds": 3,
            "customer_lockout_failures": 100,
        }
        async with seeded(tmp_path, **settings) as t:
            t.freeze()
            # Failures 1.5 s apart with a 3 s lock (whole seconds): each one extends the lock, so the
            # count keeps growing to the threshold instead of starting over.
            for _ in range(3):
                assert (await _post_login(t, "customer", "c@example.com", "wrong-password")).status_code == 401
                t.advance(1.5)
            assert (await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)).status_code == 401
            # Refused attempts during the lock are not failures (Magento checks the throttle first),
            # so the lock runs out on time.
            t.advance(3.0)
            assert (await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)).status_code == 200

    inprocess.run(body)


def test_customer_account_lockout(tmp_path: Path) -> None:
    # With the username throttle out of the way, the account itself locks after 10 wrong passwords.
    async def body() -> None:
        async with seeded(tmp_path, login_throttle_max_failures=1000, customer_lockout_seconds=2) as t:
            t.freeze()
            for _ in range(10):
                await _post_login(t, "customer", "c@example.com", "wrong-password")
            r = await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)
            assert r.status_code == 401 and r.json() == SIGN_IN_FAILED
            t.advance(2.2)
            assert (await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)).status_code == 200

    inprocess.run(body)


def _freeze_limits_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits are sliding-window counters of the `limits` library, which reads the wall clock
    itself (not the runtime's Clock): across a window's edge they weigh the last window's hits by how
    much of it is still in view, which can let one more hit through. Exact counts are asserted below,
    so the library's clock (its in-memory storage and strategies, what an in-process app without
    Redis uses) stands still for the test: no edge is ever crossed, and nobody sleeps until one is."""
    import limits.aio.storage.memory
    import limits.aio.strategies

    now = time.time()
    frozen = types.SimpleNamespace(time=lambda: now)
    for module in (limits.aio.storage.memory, limits.aio.strategies):
        monkeypatch.setattr(module, "time", frozen)


def test_login_rate_limits_per_username_and_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _freeze_limits_clock(monkeypatch)

    async def body() -> None:
        settings = {
            "rate_limit_login_username": "3/hour",
            "rate_limit_login_ip": "8/hour",
            "login_throttle_max_failures": 1000,
            "refusal_pause_seconds": 1.0,
        }
        async with seeded(tmp_path, **settings) as t:
            codes = [
                (await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)).status_code for _ in range(4)
            ]
            assert codes == [200, 200, 200, 429]
            started = time.perf_counter()
            r = await _post_login(t, "customer", "c@example.com", CUSTOMER_PASSWORD)
            elapsed = time.perf_counter() - started
            assert r.status_code == 429
            # Refusals are paced (0.5-1 s), so a flood cannot spin the server answering them.
            assert elapsed >= 0.45
            assert 1 <= int(r.headers["retry-after"]) <= 3600
            assert r.json() == {"message": "Too many requests. Please wait and try again later."}
            # other usernames from the same IP share the per-IP budget (8): 5 used so far
            codes = [(await _post_login(t, "admin", f"user{i}", "pw-whatever")).status_code for i in range(4)]
            assert codes == [401, 401, 401, 429]

    inprocess.run(body)


def test_general_rate_limit_per_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _freeze_limits_clock(monkeypatch)

    async def body() -> None:
        async with inprocess.running(tmp_path, rate_limit_default="20/hour", refusal_pause_seconds=1.0) as t:
            codes = [(await t.client.get("/rest/V1/products")).status_code for _ in range(22)]
            first = codes.index(429)  # a server process's start-up health checks use a few of the 20
            assert 15 <= first <= 20 and set(codes[:first]) == {401} and set(codes[first:]) == {429}
            started = time.perf_counter()
            r = await t.client.get("/healthz")
            assert r.status_code == 429 and "retry-after" in r.headers and time.perf_counter() - started >= 0.45
            assert r.json()["message"].startswith("Too many requests")

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_security_headers(tmp_path: Path, backend: str) -> None:
    async def body() -> None:
        async with seeded(tmp_path, **db) as t:
            r = await t.client.get("/rest/V1/products")
            h = r.headers
            assert h["x-content-type-options"] == "nosniff"
            assert h["x-frame-options"] == "DENY"
            assert h["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert h["cache-control"] == "no-store"
            assert "strict-transport-security" not in h  # plain HTTP on loopback
            token = await _post_login(t, "admin", "alice", ADMIN_PASSWORD)
            assert token.headers["cache-control"] == "no-store"
            assert "public" in (await t.client.get("/.well-known/jwks.json")).headers["cache-control"]
            assert "script-src" in (await t.client.get("/docs")).headers["content-security-policy"]

    with inprocess.database(backend, tmp_path) as db:
        inprocess.run(body)


def test_https_required_except_loopback_with_trusted_proxy(tmp_path: Path) -> None:
    remote_http = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "http"}

    async def body() -> None:
        async with seeded(tmp_path / "proxied", trusted_proxies="127.0.0.1") as t:
            r = await _post_login(t, "admin", "alice", ADMIN_PASSWORD, **remote_http)
            assert r.status_code == 400 and r.json() == {"message": "Operation allowed only in HTTPS"}
            remote_https = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
            r = await _post_login(t, "admin", "alice", ADMIN_PASSWORD, **remote_https)
            assert r.status_code == 200
            assert r.headers["strict-transport-security"].startswith("max-age=")
        # Without a trusted proxy the same headers are just ignored: the peer is loopback, plain HTTP is fine.
        async with seeded(tmp_path / "direct") as other:
            assert (await _post_login(other, "admin", "alice", ADMIN_PASSWORD, **remote_http)).status_code == 200

    inprocess.run(body)


# --- what needs processes ------------------------------------------------------------------------


def _login(srv: Server, kind: str, username: str, password: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/rest/V1/integration/{kind}/token",
        json={"username": username, "password": password},
        headers=headers,
        timeout=30,
    )


def _seeded(factory: Any, **env: str) -> Server:
    srv: Server = factory(**env)
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
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
    return srv


def _redis_url() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError as exc:
        reason = f"Redis is not reachable on 127.0.0.1:6379 ({exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    return "redis://127.0.0.1:6379/0"


@pytest.mark.redis
def test_two_processes_share_one_budget_in_redis(sqlite_server_factory: Any) -> None:
    redis = _redis_url()
    # A fresh per-test limit string keeps keys from earlier runs out of the way.
    n = 6 + secrets.randbelow(3)
    a = _seeded(
        sqlite_server_factory,
        TILLKEY_REDIS_URL=redis,
        TILLKEY_RATE_LIMIT_LOGIN_USERNAME=f"{n}/hour",
        TILLKEY_LOGIN_THROTTLE_MAX_FAILURES="1000",
    )
    b: Server = sqlite_server_factory(
        TILLKEY_REDIS_URL=redis,
        TILLKEY_RATE_LIMIT_LOGIN_USERNAME=f"{n}/hour",
        TILLKEY_DATA_DIR=str(a.data_dir),
        TILLKEY_LOGIN_THROTTLE_MAX_FAILURES="1000",
    )
    user = f"shared-{secrets.token_hex(4)}@example.com"
    codes = [_login(srv, "customer", user, "pw-whatever").status_code for srv in [a, b] * n]
    assert codes.count(429) == n  # half the attempts: the budget is one, not one per process


@pytest.mark.serial  # measures time: alone, not beside the parallel pass
def test_unknown_wrong_locked_inactive_look_and_time_the_same(sqlite_server_factory: Any) -> None:
    srv = _seeded(
        sqlite_server_factory,
        TILLKEY_ARGON2_MEMORY_KIB="65536",
        TILLKEY_ARGON2_TIME_COST="3",
        TILLKEY_LOGIN_THROTTLE_MAX_FAILURES="100000",
        TILLKEY_CUSTOMER_LOCKOUT_FAILURES="3",
        TILLKEY_CUSTOMER_LOCKOUT_SECONDS="3600",
    )
    srv.cli(
        "customer",
        "create",
        "--email",
        "inactive@example.com",
        "--password",
        CUSTOMER_PASSWORD,
        "--first-name",
        "I",
        "--last-name",
        "N",
    )
    srv.cli("customer", "deactivate", "inactive@example.com")
    srv.cli(
        "customer",
        "create",
        "--email",
        "locked@example.com",
        "--password",
        CUSTOMER_PASSWORD,
        "--first-name",
        "L",
        "--last-name",
        "K",
    )
    for _ in range(3):
        _login(srv, "customer", "locked@example.com", "wrong-password")
    cases = {
        "unknown": ("nobody@example.com", CUSTOMER_PASSWORD),
        "wrong": ("c@example.com", "wrong-password"),
        "locked": ("locked@example.com", CUSTOMER_PASSWORD),
        "inactive": ("inactive@example.com", CUSTOMER_PASSWORD),
    }
    timings: dict[str, list[float]] = {k: [] for k in cases}
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for _round in range(12):
            for name, (user, pw) in cases.items():
                t0 = time.perf_counter()
                r = c.post("/rest/V1/integration/customer/token", json={"username": user, "password": pw})
                timings[name].append(time.perf_counter() - t0)
                assert r.status_code == 401 and r.json() == SIGN_IN_FAILED, name
    medians = {k: statistics.median(v[2:]) for k, v in timings.items()}
    fastest, slowest = min(medians.values()), max(medians.values())
    # Every case pays one argon2id verification; a skipped hash would be several times faster.
    assert slowest / fastest < 1.5, medians


# serial: the flood's answers must come within the client's 30 s timeout, and its queue of 16
# argon2id verifications at 64 MiB exceeds that on a machine the parallel pass keeps busy (it did
# on a -n 2 run with a load average of 11: a flood request timed out).
@pytest.mark.serial
def test_login_flood_does_not_break_verified_traffic(sqlite_server_factory: Any) -> None:
    srv = _seeded(
        sqlite_server_factory,
        TILLKEY_ARGON2_MEMORY_KIB="65536",
        TILLKEY_ARGON2_TIME_COST="3",
        TILLKEY_LOGIN_QUEUE_LIMIT="16",
    )
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
    token = _login(srv, "admin", "alice", ADMIN_PASSWORD).json()
    stop = time.monotonic() + 8

    answered: list[int] = []  # flood answers so far (list.append is atomic)

    def flood(i: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            while time.monotonic() < stop:
                r = c.post("/rest/V1/integration/admin/token", json={"username": f"x{i}", "password": "wrong-pw-1"})
                codes.append(r.status_code)
                answered.append(r.status_code)
        return codes

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        floods = [pool.submit(flood, i) for i in range(32)]
        # The flood is on (the queue has filled and shed) before the verified reads begin.
        eventually(lambda: len(answered) >= 32, within=7, what="the flood under way")
        reads = []
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            while time.monotonic() < stop - 0.5:
                reads.append(c.get("/rest/V1/products/24-MB01").status_code)
        flood_codes = [code for f in floods for code in f.result()]
    assert reads and set(reads) == {200}, set(reads)
    assert set(flood_codes) <= {401, 503}  # 503 = login queue full: shed, not piled up
    assert len(flood_codes) > 100


pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses loopback servers")
