"""The fast tier: a whole Tillkey app in this process, driven through `httpx.ASGITransport`.

No server process, no port, no wall-clock sleeps: the app runs its real lifespan (migrations on a
real SQLite file in tmp_path, keys, in-memory state), requests go through every middleware, and
time is the runtime's injected `Clock`, moved with `advance()` to reach an expiry or a lockout's end.

    async def test_x(tmp_path: Path) -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice", resources=["Magento_Catalog::products"])
            token = await t.admin_token("alice")
            r = await t.client.get("/rest/V1/products", headers=t.bearer(token))

Tests call these from `asyncio.run` (see `run`), so they need no async pytest plugin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyotp
import pytest
from typer.testing import CliRunner, Result

from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import Accounts
from tillkey.accounts.totp import PERIOD
from tillkey.app import create_app
from tillkey.cli import app as cli_app
from tillkey.clock import Clock
from tillkey.console.sign_in_session import DEV_COOKIE, grant_fingerprint
from tillkey.principal import UserType
from tillkey.runtime import Tillkey
from tillkey.settings import Settings
from tillkey.store.accounts import Admin, Customer

ADMIN_PASSWORD = "Admin-pass-4-tests"
CUSTOMER_PASSWORD = "Customer-pass-4-tests"
BASE_URL = "http://127.0.0.1:8000"

# The cheapest argon2 the server accepts, and login limits far above what one test does (tests of
# the limits pass their own). Mirrors conftest.FAST_HASHING, as settings rather than environment.
FAST_SETTINGS: dict[str, Any] = {
    "argon2_time_cost": 2,
    "argon2_memory_kib": 19456,
    "argon2_parallelism": 1,
    "rate_limit_login_ip": "100000/minute",
    "rate_limit_login_username": "100000/minute",
    "admin_2fa": "off",
    "issuer": BASE_URL,
    "refusal_pause_seconds": 0,
}

# Parameters for tests that run on both databases: `@pytest.mark.parametrize("backend", BACKENDS)`.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

T = TypeVar("T")
_names = itertools.count(1)


def run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run one async test body on a fresh event loop."""

    async def main() -> T:
        return await coro()

    return asyncio.run(main())


@dataclass
class InProcess:
    tk: Tillkey
    client: httpx.AsyncClient
    clock: Clock
    transport: httpx.ASGITransport | None = None
    accounts: Accounts = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = self.tk.services.accounts

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward: expiries, lockouts and idle timeouts see the new time."""
        self.clock.offset += seconds

    def freeze(self) -> None:
        """From now on only `advance` moves the server's clock, not the wall clock: a test that
        depends on staying within one TOTP step or one short lock, however slow the machine."""
        start = time.time()
        self.clock.now = lambda: start + self.clock.offset  # type: ignore[method-assign]

    def browser(self) -> httpx.AsyncClient:
        """Another client of the same app with a cookie jar of its own (a second browser)."""
        assert self.transport is not None
        return httpx.AsyncClient(transport=self.transport, base_url=BASE_URL)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def create_role(self, resources: Iterable[str], name: str | None = None) -> str:
        name = name or f"role-{next(_names)}"
        await self.accounts.create_role(OPERATOR, name, list(resources))
        return name

    async def create_admin(
        self,
        username: str,
        *,
        resources: Iterable[str] | None = None,
        role: str | None = None,
        password: str = ADMIN_PASSWORD,
        email: str | None = None,
    ) -> Admin:
        """An admin with `role`, or with a new role granting `resources`, or an Administrator."""
        if resources is not None:
            role = await self.create_role(resources)
        return await self.accounts.create_admin(
            OPERATOR, username=username, email=email or f"{username}@example.com", password=password, role=role
        )

    async def create_customer(self, email: str, *, password: str = CUSTOMER_PASSWORD) -> Customer:
        return await self.accounts.create_customer(email=email, password=password, firstname="Ada", lastname="Lovelace")

    async def admin_token(self, username: str, password: str = ADMIN_PASSWORD) -> str:
        r = await self.client.post(
            "/rest/V1/integration/admin/token", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return str(r.json())

    async def customer_token(self, email: str, password: str = CUSTOMER_PASSWORD) -> str:
        r = await self.client.post(
            "/rest/V1/integration/customer/token", json={"username": email, "password": password}
        )
        assert r.status_code == 200, r.text
        return str(r.json())

    async def token_for(self, user_type: UserType, user_id: int) -> str:
        """A login token minted directly, for tests about what a token may do, not how it is got."""
        return await self.accounts.issue_token(user_type, user_id)

    async def secret_key(self, admin_id: int, resources: Iterable[str]) -> str:
        """A secret API key acting for `admin_id` with `resources`, made by the operator (the CLI)."""
        created = await self.tk.services.api_keys.create(
            OPERATOR, title=f"key-{next(_names)}", type="secret", for_admin=admin_id, resources=list(resources)
        )
        return created.token

    @staticmethod
    def basic(secret_key: str) -> dict[str, str]:
        """How @medusajs/js-sdk presents a secret API key."""
        return {"Authorization": "Basic " + base64.b64encode(f"{secret_key}:".encode()).decode()}

    async def oauth_token(self, admin_id: int, scope: Iterable[str]) -> str:
        """An OAuth 2 access token for `admin_id` with `scope`, as the authorization-code flow ends,
        from a client the operator registered with that scope."""
        wanted = list(scope)
        done = await self.tk.services.clients.create(
            OPERATOR,
            name=f"client-{next(_names)}",
            client_type="confidential",
            redirect_uris=["https://app.example/cb"],
            grant_types=[],
            scopes=wanted,
        )
        issued = await self.tk.services.oauth2.access_token(
            user_type=int(UserType.ADMIN),
            user_id=admin_id,
            client_id=done.client.client_id,
            scope=tuple(wanted),
        )
        return issued.token

    async def console_session(self, admin_id: int) -> ConsoleCaller:
        """A signed-in console session (second factor done), without the sign-in pages."""
        sessions = self.tk.services.console_sessions
        cookie = await sessions.begin(
            int(UserType.ADMIN),
            admin_id,
            ("pwd",),
            pending_otp=False,
            fingerprint=grant_fingerprint(self.tk.grants.admin(admin_id)),
        )
        found = sessions.find(cookie)
        assert found is not None
        return ConsoleCaller(self.client, cookie, found.csrf)

    async def enable_totp(self, admin_id: int) -> tuple[str, list[str]]:
        """Two-factor auth on for an admin: its TOTP secret and its recovery codes. Activation
        spends the current step's code, so the clock moves on one step."""
        totp = self.tk.services.totp
        enrolment = await totp.enroll(admin_id)
        codes = await totp.activate(admin_id, self.totp_code(enrolment.secret))
        self.advance(PERIOD)
        return enrolment.secret, codes

    def totp_code(self, secret: str) -> str:
        """The code an authenticator app shows now (by the server's clock)."""
        return pyotp.TOTP(secret).at(self.clock.now())

    async def console_form(self, page_path: str, action: str, **fields: str) -> httpx.Response:
        """Load a console form (its CSRF cookie and hidden fields), then post it with `fields`."""
        page = await self.client.get(page_path)
        hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        return await self.client.post(action, data={**{unescape(k): unescape(v) for k, v in hidden}, **fields})

    async def console_sign_in(self, username: str, password: str = ADMIN_PASSWORD) -> httpx.Response:
        """The password step of /console/login, as a browser posts it (303 on to the next step)."""
        return await self.console_form("/console/login", "/console/login", username=username, password=password)


@dataclass
class ConsoleCaller:
    """One admin's console session: posts forms as the browser does (same origin, CSRF token)."""

    client: httpx.AsyncClient
    cookie: str
    csrf: str

    async def post(self, path: str, data: dict[str, str | list[str]] | None = None) -> httpx.Response:
        headers = {"Cookie": f"{DEV_COOKIE}={self.cookie}", "Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}
        return await self.client.post(path, data={**(data or {}), "csrf": self.csrf}, headers=headers)

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers={"Cookie": f"{DEV_COOKIE}={self.cookie}"})


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **settings: Any) -> AsyncIterator[InProcess]:
    """A started app on a fresh SQLite file under tmp_path; `settings` override FAST_SETTINGS.
    The SQLite file, unless one is there, starts as a copy of the migrated template
    (tests/conftest.py make_database): the migrations are tested on their own, not by every test."""
    from tests.conftest import migrated_sqlite

    merged = {**FAST_SETTINGS, "data_dir": tmp_path / "data", **settings}
    if not merged.get("database_url"):
        migrated_sqlite(Path(merged["data_dir"]))
    clock = Clock()
    tk = Tillkey(Settings(**merged), clock=clock)
    app = create_app(tk=tk)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield InProcess(tk, client, clock, transport)


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings for a fresh database on `backend`, to pass to `running`: SQLite in the data directory,
    or a new PostgreSQL database (skipped when unreachable, a failure under
    TILLKEY_TEST_REQUIRE_SERVICES=1), dropped afterwards."""
    from tests.conftest import make_database

    created = make_database(backend, tmp_path / "data", migrated=True)  # SQLite: where `running` keeps it
    try:
        yield {"database_url": created.url} if created.url else {}
    finally:
        created.drop()


def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str = "") -> None:
    """Point `cli` at the data directory (and database) `running(tmp_path, ...)` uses, with the
    cheap hashing of FAST_SETTINGS and no TILLKEY_ variable of the caller's."""
    from tests.conftest import FAST_HASHING

    for name in list(os.environ):
        if name.startswith("TILLKEY_"):
            monkeypatch.delenv(name)
    env = {**FAST_HASHING, "TILLKEY_DATA_DIR": str(tmp_path / "data"), "TILLKEY_DATABASE_URL": database_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def cli(*args: str, check: bool = True) -> Result:
    """`tillkey ARGS` through CliRunner, in a thread (the CLI runs its own event loop) beside the
    running app: what an operator's shell does to the same database (see `cli_environment`)."""
    res = await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))
    if check and res.exit_code != 0:
        raise AssertionError(f"tillkey {' '.join(args)} failed ({res.exit_code}): {res.stderr}{res.exception!r}")
    return res


async def cli_json(*args: str) -> Any:
    return json.loads((await cli(*args, "--json")).stdout)


@dataclass
class Shared:
    """One started app kept across several tests (a module-scoped fixture, see `shared`): `call(fn)`
    runs `fn(t)` on the app's own event loop. Only for tests that change no global state."""

    loop: asyncio.AbstractEventLoop
    t: InProcess

    def call(self, fn: Callable[[InProcess], Awaitable[T]]) -> T:
        async def main() -> T:
            return await fn(self.t)

        return self.loop.run_until_complete(main())


@contextlib.contextmanager
def shared(
    tmp_path: Path, setup: Callable[[InProcess], Awaitable[None]] | None = None, **settings: Any
) -> Iterator[Shared]:
    """`running(tmp_path, **settings)` set up once by `setup`, on an event loop of its own. The app
    lives in one task from start to stop (its lifespan must end in the task it began in); between
    calls the loop rests, and its background work (the change-feed poll) resumes with the next."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[InProcess] = loop.create_future()
    stop = asyncio.Event()

    async def life() -> None:
        async with running(tmp_path, **settings) as t:
            if setup is not None:
                await setup(t)
            started.set_result(t)
            await stop.wait()

    task = loop.create_task(life())
    try:
        waits: list[asyncio.Future[Any]] = [task, started]
        loop.run_until_complete(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED))
        if not started.done():
            task.result()  # the start failed: raise its error
        yield Shared(loop, started.result())
    finally:
        if not task.done():
            stop.set()
            loop.run_until_complete(task)
        loop.close()


async def seed_like_server(t: InProcess) -> None:
    """What conftest's `server` fixture holds: admin alice (Administrators), admin carol (role
    Catalog: Magento_Catalog::catalog only) and the demo data (customers, products, orders)."""
    from tillkey.storeapi.seed import seed

    await t.create_admin("alice")
    await t.create_admin("carol", role=await t.create_role(["Magento_Catalog::catalog"], "Catalog"))
    await seed(t.tk, CUSTOMER_PASSWORD)


@contextlib.asynccontextmanager
async def listening(t: InProcess, port: int = 0) -> AsyncIterator[str]:
    """The running app on a loopback port too, for clients that open their own sockets (requests,
    PyJWKClient): its base URL. Same app, clock and database as `t.client`, no lifespan of its own;
    call such blocking clients through `asyncio.to_thread`, so this loop goes on serving."""
    import uvicorn

    assert t.transport is not None
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))  # a port chosen beforehand: the app's issuer names it
    # log_config=None: uvicorn leaves the test process's logging as it is.
    config = uvicorn.Config(t.transport.app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise AssertionError("the loopback server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        sock.close()
