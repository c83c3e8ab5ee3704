"""Where does a forward-auth request's time go? Every piece of GET /tillkey/v1/forward-auth, in process.

The call a reverse proxy makes for every request of the site behind it (surfaces/forward_auth.py),
taken apart: the layers in front of the handler (FastAPI's and Starlette's entry, the edge's
admission, the audit request context, the security headers), then each step of the handler
(reading the original request, normalising its URI, the route table, the credential, the access
check, the answer). Times are this thread's CPU time, min of 7 runs of 20,000 calls, so other
processes on a busy machine disturb them far less than they disturb wrk. Whole requests go
through the ASGI app with no sockets: add the server's own floor (uvicorn + httptools, about
40-50 us a request on the 2-core build machine) to compare with `make bench`.

    python bench/profile_forward_auth.py             # ~30 s
    python bench/profile_forward_auth.py --cprofile  # plus the top functions of 20,000 requests
    python bench/profile_forward_auth.py --database-url postgresql+asyncpg://postgres@127.0.0.1/scratch \
        --redis-url redis://127.0.0.1:6379/0       # scale-out mode (an empty database you created)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/profile_forward_auth.py` puts only bench/ on the path

from starlette.requests import Request  # noqa: E402

from bench import bare  # noqa: E402
from bench.profile_auth import Sink, _receive, build_app, per_request_us, scope_for  # noqa: E402
from tillkey.access.delegation import OPERATOR  # noqa: E402
from tillkey.access.route_table import normalize, normalize_method  # noqa: E402
from tillkey.audit.request_context import info_from_scope  # noqa: E402
from tillkey.principal import UserType  # noqa: E402
from tillkey.security import request_limits  # noqa: E402
from tillkey.security.headers import with_security_headers  # noqa: E402
from tillkey.surfaces import forward_auth as fa  # noqa: E402
from tillkey.web.edge import Edge  # noqa: E402
from tillkey.web.routing import enforce  # noqa: E402

PATH = fa.PATH
N = 20_000


def time_us(fn: Callable[[], object], n: int = N, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, time.thread_time() - start)
    return best / n * 1e6


async def atime_us(fn: Callable[[], Awaitable[object]], n: int = N, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(n):
            await fn()
        best = min(best, time.thread_time() - start)
    return best / n * 1e6


def find_edge(app: Any) -> Edge:
    """The Edge instance in the built middleware stack."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, Edge):
        layer = getattr(layer, "app", None)
    if layer is None:
        raise SystemExit("no Edge in the middleware stack")
    return layer


async def main(args: argparse.Namespace) -> None:
    app = build_app()
    logging.getLogger("tillkey").setLevel(logging.ERROR)  # "no admin user exists yet" is expected
    async with app.router.lifespan_context(app):
        tk = app.state.tillkey
        accounts = tk.services.accounts
        admin = await accounts.create_admin(
            OPERATOR,
            username="perfadmin",
            email="perf@example.com",
            password="Pw-" + secrets.token_urlsafe(16),
            role=None,
            firstname="",
            lastname="",
        )
        token = await accounts.issue_token(UserType.ADMIN, admin.id)
        # The first request builds the middleware stack and the edge's table of direct routes.
        await per_request_us(app, PATH, token, 10)

        paths = ["bare", "/bench/empty", PATH]
        got: dict[str, list[float]] = {p: [] for p in paths}
        for i in range(args.rounds):
            for p in paths if i % 2 == 0 else reversed(paths):
                target = (bare.app, "/bench/empty") if p == "bare" else (app, p)
                got[p].append(await per_request_us(target[0], target[1], token, args.requests))
        lo = {p: min(v) for p, v in got.items()}
        print(f"whole request through the ASGI app, us ({args.rounds} rounds x {args.requests}; min, median):")
        for p, v in got.items():
            print(f"  {p:<28} {min(v):7.1f} {statistics.median(v):7.1f}")
        print(f"  Tillkey's empty route above bare Starlette:   {lo['/bench/empty'] - lo['bare']:6.1f}")
        print(f"  forward-auth above Tillkey's empty route:     {lo[PATH] - lo['/bench/empty']:6.1f}")
        print(f"  forward-auth above bare Starlette:            {lo[PATH] - lo['bare']:6.1f}")

        scope = scope_for(app, PATH, token)
        scope["router"] = app.router
        request = Request(scope, _receive)
        edge = find_edge(app)
        raw_method, uri = fa._target(request)
        method = normalize_method(raw_method)
        path = normalize(uri)
        route = tk.forward_routes.match(method, path)
        original = fa.as_original(request, method, uri)
        principal, presented = await tk.credentials.authenticate(original)
        response = fa.forward_auth_response(principal)
        sink = Sink()
        start_headers = list(fa.forward_auth_response(principal).raw_headers)
        telemetry = getattr(app, "_native_telemetry", None)

        async def send_response() -> None:
            await response(scope, _receive, sink)

        async def handler() -> object:
            return await fa.forward_auth(request)

        asked = fa._asked(request)
        resources = route.resources if route else ()
        rows: list[tuple[str, float]] = [("layers in front of the handler", 0.0)]
        if telemetry is not None:
            rows.append(("FastAPI's OpenTelemetry check", time_us(telemetry.enabled)))
        rows.append(("request_limits.check", time_us(lambda: request_limits.check(scope))))
        if edge.budget is not None:
            rows.append(("general rate limit (LocalBudget.hit)", time_us(lambda: edge.budget.hit("10.9.9.9"))))
        rows += [
            ("info_from_scope (audit request context)", time_us(lambda: info_from_scope(scope))),
            ("Request(scope, receive)", time_us(lambda: Request(scope, _receive))),
            ("with_security_headers (response start)", time_us(lambda: with_security_headers(scope, start_headers))),
            ("the forward-auth handler", 0.0),
            ("forward_auth(request), all of it", await atime_us(handler)),
            ("_asked: one pass over the headers", time_us(lambda: fa._asked(request))),
            ("_target: the original method and URI", time_us(lambda: fa._target(request, asked))),
            ("normalize_method", time_us(lambda: normalize_method(raw_method))),
            ("normalize(uri)", time_us(lambda: normalize(uri))),
            ("route table match", time_us(lambda: tk.forward_routes.match(method, path))),
            (
                "as_original: the request as the client sent it",
                time_us(lambda: fa.as_original(request, method, uri, asked)),
            ),
            ("credentials.authenticate (cached token)", await atime_us(lambda: tk.credentials.authenticate(original))),
            (
                "enforce (access and step-up checks)",
                time_us(lambda: enforce(request, principal, presented, resources, (method, path))),
            ),
            ("the answer: forward_auth_response(principal)", time_us(lambda: fa.forward_auth_response(principal))),
            ("sending it (start + body, to a sink)", await atime_us(send_response)),
        ]
        print(f"pieces, us per call (min of 7 x {N:,}):")
        for name, us in rows:
            print(f"  {name}" if us == 0.0 and not name.startswith("FastAPI") else f"    {name:<50} {us:7.2f}")

        if args.cprofile:
            prof = cProfile.Profile()
            prof.enable()
            await per_request_us(app, PATH, token, N)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="In-process breakdown of GET /tillkey/v1/forward-auth.")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds of whole requests (default 30)")
    ap.add_argument("--requests", type=int, default=500, help="requests per route and round (default 500)")
    ap.add_argument("--cprofile", action="store_true", help="also cProfile 20,000 forward-auth requests")
    ap.add_argument("--database-url", help="an existing, empty database instead of SQLite (scale-out mode)")
    ap.add_argument("--redis-url", help="Redis for scale-out mode, e.g. redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tillkey-profile-"))
    # As bench/profile_auth.py: a throwaway data dir, no stray TILLKEY_* config, a rate-limit
    # budget no loop reaches (every request comes from one client), the bench's route table.
    for name in [k for k in os.environ if k.startswith("TILLKEY_")]:
        del os.environ[name]
    os.environ |= {
        "TILLKEY_DATA_DIR": str(tmp),
        "TILLKEY_LOG_LEVEL": "WARNING",
        "TILLKEY_RATE_LIMIT_DEFAULT": "1000000000/minute",
        "TILLKEY_FORWARD_AUTH_ROUTES": '[{"path": "/rest/V1/products/*", "resources": ["Magento_Catalog::products"]}]',
    }
    if args.database_url:  # scale-out mode: e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/scratch
        os.environ["TILLKEY_DATABASE_URL"] = args.database_url
    if args.redis_url:
        os.environ["TILLKEY_REDIS_URL"] = args.redis_url
    try:
        asyncio.run(main(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
