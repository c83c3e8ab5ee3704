"""The worst input per route, timed next to a normal request on the same route (issue 21).

In process, through the real app (tests/inprocess.py: real lifespan, SQLite file, every
middleware), no sockets: each figure is the time one request holds the event loop, which is what
stalls every other request of the process. Loops are bounded: a few repetitions per case, the
median reported. Also shows the state one account can grow (sessions, reset tokens, refresh
families) after a bounded burst of requests.

    .venv/bin/python bench/worst_input.py            # ~1 min
    .venv/bin/python bench/worst_input.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/worst_input.py` puts only bench/ on the path

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from tests import inprocess  # noqa: E402

from tillkey.store.models import PasswordResetRow, SessionRow  # noqa: E402
from tillkey.storeapi.seed import seed  # noqa: E402

Request = Callable[[], Awaitable[httpx.Response]]
F = "searchCriteria[filterGroups][{g}][filters][{f}][{k}]"


def _filter(g: int, f: int, field: str, value: str, cond: str) -> dict[str, str]:
    return {
        F.format(g=g, f=f, k="field"): field,
        F.format(g=g, f=f, k="value"): value,
        F.format(g=g, f=f, k="conditionType"): cond,
    }


async def _raw_get(app: Any, path: str, query: str, headers: list[tuple[str, str]]) -> httpx.Response:
    """A GET straight into the ASGI app: httpx refuses query strings over 64 KiB, servers need not."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *((k.lower().encode(), v.encode()) for k, v in headers)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    try:
        await app(scope, receive, send)
    except Exception:  # Starlette re-raises after answering 500; the status says it
        status = status or 500
    return httpx.Response(status)


async def _time(request: Request, repeat: int) -> tuple[float, int]:
    """Median wall time (ms) of `repeat` sequential requests, and the last status."""
    times, status = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        r = await request()
        times.append((time.perf_counter() - start) * 1000)
        status = r.status_code
    return statistics.median(times), status


async def _count(t: inprocess.InProcess, model: Any, **where: int) -> int:
    async with t.tk.db.session() as s:
        q = select(func.count()).select_from(model)
        for name, value in where.items():
            q = q.where(getattr(model, name) == value)
        return int(await s.scalar(q) or 0)


async def main(quick: bool) -> None:
    normal_n, worst_n = (5, 1) if quick else (20, 3)
    rows: list[tuple[str, str, float, int, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with inprocess.running(Path(tmp), rate_limit_default="") as t:
            await seed(t.tk)
            await t.create_admin("bench")
            token = await t.admin_token("bench")
            auth = t.bearer(token)
            c = t.client

            customer = await t.create_customer("bench@example.com")
            ctoken = await t.customer_token("bench@example.com")
            cauth = t.bearer(ctoken)
            app = t.client._transport.app  # type: ignore[attr-defined]  # the ASGI app under test

            def get(
                path: str,
                params: dict[str, str] | None = None,
                headers: tuple[tuple[str, str], ...] = (),
                caller: dict[str, str] = auth,
            ) -> Request:
                query = urlencode(params or {})  # built once, outside the timed request
                return lambda: _raw_get(app, path, query, [*caller.items(), *headers])

            def raw(path: str, query: str) -> Request:
                return lambda: _raw_get(app, path, query, list(auth.items()))

            big_in = ",".join(str(i % 10) for i in range(60_001))
            many_like = {}
            for g in range(21):
                for f in range(21):
                    many_like.update(_filter(g, f, "name", "%a" * 1000 + "%", "like"))
            wide_query = "&".join(f"x{i}=1" for i in range(100_000))
            many_headers = tuple((f"x-h{i}", "v") for i in range(5_000))
            # The worst searches the caps still accept (storeapi/criteria.py, security/request_limits.py).
            in_at_cap = ",".join(str(i) for i in range(1000))
            spread_at_cap: dict[str, str] = {}
            for g in range(10):
                spread_at_cap.update(_filter(g, 0, "entity_id", ",".join(str(i) for i in range(100)), "in"))
            like_at_cap: dict[str, str] = {}
            for i in range(100):
                like_at_cap.update(_filter(i // 21, i % 21, "name", "%a" * 60 + "%", "like"))
            cases: list[tuple[str, str, Request, Request]] = [
                (
                    "GET /rest/V1/products",
                    "in: 60,001 values",
                    get("/rest/V1/products", _filter(0, 0, "sku", "24-MB01,24-MB04", "in")),
                    get("/rest/V1/products", _filter(0, 0, "id", big_in, "in")),
                ),
                (
                    "GET /rest/V1/orders",
                    "nin: 60,001 values",
                    get("/rest/V1/orders", _filter(0, 0, "entity_id", "1,2", "nin")),
                    get("/rest/V1/orders", _filter(0, 0, "entity_id", big_in, "nin")),
                ),
                (
                    "GET /rest/V1/customers/me/orders",
                    "in: 60,001 values (customer)",
                    get("/rest/V1/customers/me/orders", _filter(0, 0, "entity_id", "1,2", "in"), caller=cauth),
                    get("/rest/V1/customers/me/orders", _filter(0, 0, "entity_id", big_in, "in"), caller=cauth),
                ),
                (
                    "GET /rest/V1/products",
                    "in: 1,000 values (accepted)",
                    get("/rest/V1/products", _filter(0, 0, "sku", "24-MB01,24-MB04", "in")),
                    get("/rest/V1/products", _filter(0, 0, "id", in_at_cap, "in")),
                ),
                (
                    "GET /rest/V1/orders",
                    "10 in filters of 100 (accepted)",
                    get("/rest/V1/orders", _filter(0, 0, "entity_id", "1,2", "in")),
                    get("/rest/V1/orders", spread_at_cap),
                ),
                (
                    "GET /rest/V1/products",
                    "100 like filters of 120 (accepted)",
                    get("/rest/V1/products", _filter(0, 0, "name", "%Bag%", "like")),
                    get("/rest/V1/products", like_at_cap),
                ),
                (
                    "GET /rest/V1/products",
                    "441 like filters of 2 KB",
                    get("/rest/V1/products", _filter(0, 0, "name", "%Bag%", "like")),
                    get("/rest/V1/products", many_like),
                ),
                (
                    "GET /rest/V1/products",
                    "20-digit integer filter",
                    get("/rest/V1/products", _filter(0, 0, "id", "1", "eq")),
                    get("/rest/V1/products", _filter(0, 0, "id", "9" * 20, "eq")),
                ),
                (
                    "GET /rest/V1/products",
                    "100,000 query parameters",
                    get("/rest/V1/products"),
                    raw("/rest/V1/products", wide_query),
                ),
                (
                    "GET /rest/V1/products",
                    "5,000 headers",
                    get("/rest/V1/products"),
                    get("/rest/V1/products", headers=many_headers),
                ),
            ]
            login = {"username": "bench", "password": inprocess.ADMIN_PASSWORD}
            wide_body = json.dumps({**{f"k{i}": [i] for i in range(50_000)}, **login}).encode()
            deep_body = json.dumps(login).encode()[:-1] + b',"d":' + b"[" * 900 + b"]" * 900 + b"}"
            json_headers = {"Content-Type": "application/json"}
            cases += [
                (
                    "POST /rest/V1/integration/admin/token",
                    "JSON object of 50,000 members",
                    lambda: c.post("/rest/V1/integration/admin/token", json=login),
                    lambda: c.post("/rest/V1/integration/admin/token", content=wide_body, headers=json_headers),
                ),
                (
                    "POST /rest/V1/integration/admin/token",
                    "JSON nested 900 deep",
                    lambda: c.post("/rest/V1/integration/admin/token", json=login),
                    lambda: c.post("/rest/V1/integration/admin/token", content=deep_body, headers=json_headers),
                ),
            ]
            form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
            cases += [
                (
                    "POST /oauth2/token",
                    "form of 20,000 fields",
                    lambda: c.post("/oauth2/token", content=b"grant_type=client_credentials", headers=form_headers),
                    lambda: c.post(
                        "/oauth2/token",
                        content="&".join(f"f{i}=1" for i in range(20_000)).encode(),
                        headers=form_headers,
                    ),
                ),
            ]
            for route, what, normal, worst in cases:
                n_ms, n_status = await _time(normal, normal_n)
                w_ms, w_status = await _time(worst, worst_n)
                rows.append((route, what, n_ms, n_status, w_ms, w_status))

            # State one account can grow: bounded bursts, then what is stored.
            for _ in range(200):
                await c.post("/auth/session", headers=t.bearer(ctoken))
            sessions = await _count(t, SessionRow, user_type=3, user_id=customer.id)
            for _ in range(20):
                await c.post("/auth/customer/emailpass/reset-password", json={"identifier": "bench@example.com"})
            await asyncio.sleep(0.5)  # reset requests do their work after answering
            resets = await _count(t, PasswordResetRow, user_type=3, user_id=customer.id)

    print(f"{'route':40} {'worst input':32} {'normal ms':>10} {'worst ms':>10}  status n/w")
    for route, what, n_ms, n_status, w_ms, w_status in rows:
        print(f"{route:40} {what:32} {n_ms:10.1f} {w_ms:10.1f}  {n_status}/{w_status}")
    print()
    print(f"Medusa sessions stored for one customer after 200 POST /auth/session: {sessions}")
    print(f"password reset rows for one customer after 20 reset requests: {resets}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    asyncio.run(main(parser.parse_args().quick))
