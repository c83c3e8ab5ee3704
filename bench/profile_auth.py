"""Where does a protected request's extra time go? An in-process breakdown of the auth hot path.

No sockets and no uvicorn: requests go straight into the ASGI app, and each piece of
`requires()` is also timed on its own. Times are this thread's CPU time, so other processes on a
busy machine disturb them far less than they disturb wrk: use this to check an optimization of
routing.requires() or Authenticator.authenticate().

    python bench/profile_auth.py              # timings, ~20 s
    python bench/profile_auth.py --cprofile   # plus the top functions of the protected route
    python bench/profile_auth.py --cprofile --profile-path /tillkey/v1/forward-auth
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
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
sys.path.insert(0, str(ROOT))  # `python bench/profile_auth.py` puts only bench/ on the path

from fastapi import Depends, FastAPI, Request  # noqa: E402

from bench import bare  # noqa: E402
from bench.app import PRODUCTS, bench_router, empty, install  # noqa: E402
from tillkey.access.delegation import OPERATOR  # noqa: E402
from tillkey.access.policy import check  # noqa: E402
from tillkey.app import create_app  # noqa: E402
from tillkey.credentials.bearer import bearer_token  # noqa: E402
from tillkey.principal import UserType  # noqa: E402
from tillkey.web.routing import requires  # noqa: E402

Message = MutableMapping[str, Any]


async def noop_guard(request: Request) -> None:
    """Same signature as requires()'s guard, doing nothing: prices FastAPI's dependency machinery."""


def build_app() -> FastAPI:
    app = create_app()
    router = bench_router()
    router.add_api_route("/bench/empty-noop-dep", empty, methods=["GET"], dependencies=[Depends(noop_guard)])
    # Between its twins, so each of the three is one more route check away than the one before.
    at = next(i for i, r in enumerate(router.routes) if getattr(r, "path", "") == "/bench/empty")
    router.routes.insert(at + 1, router.routes.pop())
    install(app, router)
    return app


# Forward-auth asks about this original request (the route table is set in __main__ below).
FORWARD = [(b"x-original-method", b"GET"), (b"x-original-uri", b"/rest/V1/products/24-MB01")]


def scope_for(app: Any, path: str, token: str) -> dict[str, Any]:
    # The headers wrk sends, plus the bearer token (and forward-auth's question).
    headers = [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {token}".encode())]
    if path == "/tillkey/v1/forward-auth":
        headers += FORWARD
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": (HOST, 50000),
        "server": (HOST, 8000),
        "state": {},
        "app": app,
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Sink:
    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def per_request_us(app: Any, path: str, token: str, n: int) -> float:
    scope, sink = scope_for(app, path, token), Sink()
    start = time.thread_time()
    for _ in range(n):
        await app(dict(scope), _receive, sink)
    elapsed = time.thread_time() - start
    if sink.status != 200:
        raise SystemExit(f"GET {path} answered {sink.status}")
    return elapsed / n * 1e6


def time_us(fn: Callable[[], object], n: int = 50_000, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, time.thread_time() - start)
    return best / n * 1e6


async def atime_us(fn: Callable[[], Awaitable[object]], n: int = 50_000, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(n):
            await fn()
        best = min(best, time.thread_time() - start)
    return best / n * 1e6


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

        # Whole requests in many short interleaved rounds: the min is the round least disturbed by
        # other processes, and differences of mins are what the breakdown below uses.
        # The layers, each one more than the one before: a bare Starlette route (bench/bare.py),
        # Tillkey's edge and direct dispatch (empty), FastAPI's full route handling with one
        # dependency (noop-dep: not a direct route), the guard (protected), forward-auth, who-am-I.
        paths = [
            "bare",
            "/bench/empty",
            "/bench/empty-noop-dep",
            "/bench/empty-protected",
            "/tillkey/v1/forward-auth",
            "/admin/users/me",
        ]
        got: dict[str, list[float]] = {p: [] for p in paths}
        for i in range(args.rounds):
            for p in paths if i % 2 == 0 else reversed(paths):
                target = (bare.app, "/bench/empty") if p == "bare" else (app, p)
                got[p].append(await per_request_us(target[0], target[1], token, args.requests))
        print(f"whole request through the ASGI app, us ({args.rounds} rounds x {args.requests}):")
        for p, v in got.items():
            print(f"  {p:<26} min {min(v):7.1f}   median {statistics.median(v):7.1f}")
        lo = {p: min(v) for p, v in got.items()}
        print(f"  edge + direct dispatch (empty - bare Starlette):   {lo[paths[1]] - lo[paths[0]]:6.1f}")
        print(f"  FastAPI routing + one dependency (noop - empty):   {lo[paths[2]] - lo[paths[1]]:6.1f}")
        print(f"  requires() guard, direct (protected - empty):      {lo[paths[3]] - lo[paths[1]]:6.1f}")
        print(f"  forward-auth decision (forward-auth - empty):      {lo[paths[4]] - lo[paths[1]]:6.1f}")
        print(f"  who-am-I (users/me - empty):                       {lo[paths[5]] - lo[paths[1]]:6.1f}")

        # The pieces of the guard, each on its own.
        scope = scope_for(app, "/bench/empty-protected", token)
        request = Request(scope)
        header = f"Bearer {token}"
        principal = await tk.authenticator.authenticate(token)
        claims = await tk.authenticator.read(token)
        guard = requires(PRODUCTS)
        resources = (PRODUCTS,)
        print("pieces of requires(), us per call (min of 7):")
        pieces: list[tuple[str, float]] = [
            ("guard(request), all of it", await atime_us(lambda: guard(request))),
            ("request.headers.get('authorization')", time_us(lambda: Request(scope).headers.get("authorization"))),
            ("  of which Request(scope)", time_us(lambda: Request(scope))),
            ("request.app.state.tillkey.authenticator", time_us(lambda: request.app.state.tillkey.authenticator)),
            ("bearer_token(header)", time_us(lambda: bearer_token(header))),
            ("Authenticator.authenticate, cached", await atime_us(lambda: tk.authenticator.authenticate(token))),
            ("  of which Validator.validate", time_us(lambda: tk.validator.validate(claims))),
            ("policy.check", time_us(lambda: check(principal, resources))),
            ("JWT verify on a cache miss (jwt_reader.read)", await atime_us(lambda: tk.jwt_reader.read(token), 200, 3)),
        ]
        for name, us in pieces:
            print(f"  {name:<46} {us:8.2f}")

        if args.cprofile:
            prof = cProfile.Profile()
            prof.enable()
            await per_request_us(app, args.profile_path, token, 20_000)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="In-process breakdown of the auth hot path.")
    ap.add_argument("--rounds", type=int, default=60, help="interleaved rounds of whole requests (default 60)")
    ap.add_argument("--requests", type=int, default=500, help="requests per route and round (default 500)")
    ap.add_argument("--cprofile", action="store_true", help="also cProfile 20,000 requests of --profile-path")
    ap.add_argument("--profile-path", default="/bench/empty-protected", help="the route --cprofile profiles")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tillkey-profile-"))
    # Settings() reads the environment when the app is built: a throwaway data dir, no stray
    # TILLKEY_* config, and a rate-limit budget no loop reaches (every request comes from one client).
    for name in [k for k in os.environ if k.startswith("TILLKEY_")]:
        del os.environ[name]
    os.environ |= {
        "TILLKEY_DATA_DIR": str(tmp),
        "TILLKEY_LOG_LEVEL": "WARNING",
        "TILLKEY_RATE_LIMIT_DEFAULT": "1000000000/minute",
        "TILLKEY_FORWARD_AUTH_ROUTES": '[{"path": "/rest/V1/products/*", "resources": ["Magento_Catalog::products"]}]',
    }
    try:
        asyncio.run(main(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
