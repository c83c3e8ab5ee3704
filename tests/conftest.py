"""Shared fixtures: real Tillkey servers on loopback, over SQLite and over PostgreSQL + Redis.

A "postgres" server is the scale-out configuration: PostgreSQL for the data, Redis (with a key
prefix of its own, so parallel servers never share a budget) for rate limits and the change
broadcast. Tests that need PostgreSQL or Redis skip when it is unreachable, unless
TILLKEY_TEST_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import httpx
import pytest

from tests import mariadb as private_mariadb
from tests.polling import eventually

VENV_BIN = Path(sys.executable).parent
TILLKEY = str(VENV_BIN / "tillkey")
PG_ADMIN_DSN = os.environ.get("TILLKEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TILLKEY_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("TILLKEY_TEST_REQUIRE_SERVICES") == "1"
ADMIN_PASSWORD = "Admin-pass-4-tests"
CUSTOMER_PASSWORD = "Customer-pass-4-tests"

# Cheapest argon2 settings the server accepts (OWASP's floor), and login rate limits far above
# what one test does: tests log in a lot, all from 127.0.0.1. Tests of the limits set their own.
FAST_HASHING = {
    "TILLKEY_ARGON2_TIME_COST": "2",
    "TILLKEY_ARGON2_MEMORY_KIB": "19456",
    "TILLKEY_ARGON2_PARALLELISM": "1",
    "TILLKEY_RATE_LIMIT_LOGIN_IP": "100000/minute",
    "TILLKEY_RATE_LIMIT_LOGIN_USERNAME": "100000/minute",
    # Admin 2FA defaults to "required"; most tests (and my-magento, which cannot do 2FA, just as
    # with real Magento) log admins in with a password only. tests/test_totp.py sets its own mode.
    "TILLKEY_ADMIN_2FA": "off",
    # A 429 is answered at once, not after a jittered pause of up to a second (the default): the
    # pause costs only wall time, and tests/test_abuse.py tests it in-process with its own setting.
    "TILLKEY_REFUSAL_PAUSE_SECONDS": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pg_available() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed"
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return None
    except OSError as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc})"


def need_postgres() -> None:
    reason = pg_available()
    if reason is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def redis_available(host: str = "127.0.0.1", port: int = 6379) -> str | None:
    """None if Redis accepts connections, else the reason it does not."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return None
    except OSError as exc:
        return f"Redis is not reachable on {host}:{port} ({exc})"


def need_redis() -> str:
    """The shared test Redis URL; skips (or fails under TILLKEY_TEST_REQUIRE_SERVICES=1) without it."""
    parsed = httpx.URL(REDIS_URL)
    reason = redis_available(parsed.host, parsed.port or 6379)
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    return REDIS_URL


def redis_env() -> dict[str, str]:
    """Settings that put a server on the test Redis, under a key prefix no other server uses."""
    return {"TILLKEY_REDIS_URL": need_redis(), "TILLKEY_REDIS_KEY_PREFIX": f"tktest-{secrets.token_hex(4)}"}


def need_node(what: str) -> None:
    """The interop tests that drive npm clients need Node.js and npm; CI has them, so there a
    missing one is a failure, not a skip."""
    if shutil.which("node") is not None and shutil.which("npm") is not None:
        return
    reason = f"node and npm are needed for {what}"
    if REQUIRE_SERVICES:
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[private_mariadb.MariaDB]:
    """A MariaDB of this test session's own on a free loopback port (tests/mariadb.py); skips
    without Debian's mariadb-server (fails under TILLKEY_TEST_REQUIRE_SERVICES=1)."""
    reason = private_mariadb.available()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    with private_mariadb.running(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN_DSN, "-q", "-c", sql], check=True, capture_output=True)


@dataclass
class Database:
    url: str
    name: str | None = None

    def drop(self) -> None:
        if self.name:
            _psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def make_database(backend: str, data_dir: Path, *, migrated: bool = False) -> Database:
    """A new database. `migrated`: already at the newest schema, cloned from a template database
    (PostgreSQL's CREATE DATABASE … TEMPLATE copies files; SQLite's is a copy of a migrated file,
    as `data_dir/tillkey.db`, where the server and the CLI find it): running every migration costs
    tenths of a CPU second per start. Without it the server or the test runs them from scratch."""
    if backend == "sqlite":
        if migrated:
            migrated_sqlite(data_dir)
        return Database("")
    need_postgres()
    name = f"tillkey_test_{secrets.token_hex(4)}"
    if migrated:
        with _template_lock():
            _psql(f'CREATE DATABASE "{name}" TEMPLATE "{_template()}"')
    else:
        _psql(f'CREATE DATABASE "{name}"')
    return Database(f"{PG_DATABASE_URL}/{name}", name)


PG_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
MIGRATIONS = Path(__file__).parents[1] / "src" / "tillkey" / "store" / "migrations" / "versions"


@contextlib.contextmanager
def _template_lock(kind: str = "pg") -> Iterator[None]:
    """One builder or cloner at a time across pytest-xdist workers: a template may have no other
    session while it is copied."""
    with open(Path(tempfile.gettempdir()) / f"tillkey-test-{kind}-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _migrations_digest() -> str:
    """Names the templates: a changed migration makes new ones."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(MIGRATIONS.glob("*.py")))).hexdigest()[:12]


_SQLITE_TEMPLATES: dict[str, Path] = {}


def migrated_sqlite(data_dir: Path) -> None:
    """`data_dir/tillkey.db` at the newest schema, a copy of the template, unless there is one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Owner-only, as the server creates its own (store/db.py _create_private).
        fd = os.open(data_dir / "tillkey.db", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(_sqlite_template().read_bytes())


def _sqlite_template() -> Path:
    """The SQLite file at the newest schema for the current migrations, built once (by the real
    migrations, as `tillkey db upgrade` runs them) and shared by the workers: a scratch file
    migrated to head, checkpointed into one file, then renamed into place."""
    digest = _migrations_digest()
    path = _SQLITE_TEMPLATES.get(digest)
    if path is not None:
        return path
    path = Path(tempfile.gettempdir()) / f"tillkey-test-template-{digest}.db"
    with _template_lock("sqlite"):
        if not path.exists():
            from tillkey.store import db as store_db

            building = path.with_name(path.name + ".building")
            for stale in (building, *(Path(f"{building}{x}") for x in ("-wal", "-shm"))):
                stale.unlink(missing_ok=True)
            # In a thread of its own: Alembic runs an event loop, and the caller may be inside one.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(store_db.upgrade, f"sqlite+aiosqlite:///{building}").result()
            with contextlib.closing(sqlite3.connect(building)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            os.replace(building, path)
    _SQLITE_TEMPLATES[digest] = path
    return path


def _template() -> str:
    """The template database for the current migrations, named by their digest (a changed
    migration makes a new one), built once: a scratch database migrated to head, then renamed."""
    name = f"tillkey_template_{_migrations_digest()}"
    query = ["psql", PG_ADMIN_DSN, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"]  # noqa: S608 (a hex digest)
    if subprocess.run(query, check=True, capture_output=True, text=True).stdout.strip() != "1":
        from tillkey.store import db as store_db

        building = f"{name}_building"
        _psql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        _psql(f'CREATE DATABASE "{building}"')
        # In a thread of its own: Alembic runs an event loop, and the caller may be inside one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(store_db.upgrade, f"{PG_DATABASE_URL}/{building}").result()
        _psql(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


@dataclass
class Server:
    """A `tillkey serve` process on loopback, plus the CLI pointed at the same database."""

    data_dir: Path
    database: Database
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")}
        env.update(FAST_HASHING)
        env.update(
            {
                "TILLKEY_DATA_DIR": str(self.data_dir),
                "TILLKEY_DATABASE_URL": self.database.url,
                "TILLKEY_SYNC_INTERVAL": "0.2",
                "TILLKEY_ISSUER": "http://tillkey.test",
                # The integration endpoints of tests/test_oauth1.py listen on loopback; the refusal
                # of private endpoints (the default) is tested in tests/attacks/test_ssrf.py.
                "TILLKEY_INTEGRATION_ALLOW_PRIVATE_ENDPOINTS": "true",
            }
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`tillkey ARGS` against this server's data, through Typer's CliRunner in this process:
        the same entry point, arguments and environment as the operator's command, without the
        interpreter start and imports a subprocess pays for each call (seconds on a loaded machine).
        In a thread of its own: the command runs its own event loop, and the caller may be in one."""
        from typer.testing import CliRunner

        from tillkey.cli import app as cli_app

        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TILLKEY_")}
        env.update(self.env)
        with ThreadPoolExecutor(1) as pool:
            out = pool.submit(CliRunner().invoke, cli_app, list(args), env=env).result(timeout=120)
        res = subprocess.CompletedProcess([TILLKEY, *args], out.exit_code, out.stdout, out.stderr)
        if self.proc is not None and self.proc.poll() is None and "TILLKEY_REDIS_URL" not in self.env:
            # Without Redis a running server applies the CLI's change at its next change-feed poll
            # (every TILLKEY_SYNC_INTERVAL): wait until it has, as the operator's command exiting
            # used to (a known delay of its own, not what these tests are about).
            self.wait_caught_up()
        if check and res.returncode != 0:
            raise AssertionError(f"tillkey {' '.join(args)} failed ({res.returncode}): {res.stderr}{out.exception!r}")
        return res

    def wait_caught_up(self) -> None:
        """Until the running server has applied the newest entry of the change feed (its
        `tillkey_change_feed_seq` gauge reaches the feed's newest seq)."""
        newest = self._newest_change()
        eventually(lambda: self._applied_change() >= newest, within=30, interval=0.02, what="the server's feed poll")

    def _newest_change(self) -> int:
        url = self.env["TILLKEY_DATABASE_URL"]
        query = "SELECT coalesce(max(seq), 0) FROM auth_changes"
        if not url:
            with contextlib.closing(sqlite3.connect(Path(self.env["TILLKEY_DATA_DIR"]) / "tillkey.db")) as db:
                return int(db.execute(query).fetchone()[0])
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        return int(subprocess.run(["psql", dsn, "-tAc", query], check=True, capture_output=True, text=True).stdout)

    def _applied_change(self) -> int:
        r = httpx.get(self.url + "/metrics", timeout=10)
        assert r.status_code == 200, f"/metrics from loopback: {r.status_code}"
        for line in r.text.splitlines():
            if line.startswith("tillkey_change_feed_seq "):
                return int(float(line.split()[1]))
        raise AssertionError("no tillkey_change_feed_seq in /metrics")

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, port: int | None = None) -> None:
        """port: a port picked beforehand, e.g. to set TILLKEY_ISSUER to the server's own URL."""
        self.launch(port)
        self.wait_started()

    def launch(self, port: int | None = None) -> None:
        """`start` without the wait: several servers launched, then waited for, start side by side."""
        self.port = port or free_port()
        log = open(self.data_dir / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [TILLKEY, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_started(self) -> None:
        """Until the launched server answers /healthz (its startup failing or hanging fails here)."""
        assert self.proc is not None
        # Generous: seconds on an idle machine, much longer on a loaded one.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log()}")
            try:
                # A loaded machine can take seconds to answer the first request.
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        # Not left running behind the failure (whoever called start may not clean up).
        stop_process(self.proc)
        raise AssertionError(f"server did not start: {self.log()}")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)

    def restart(self, **extra_env: str) -> None:
        self.stop()
        self.extra_env.update(extra_env)
        self.start()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.data_dir.glob("server-*.log"))

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    # --- helpers used by many tests -----------------------------------------------------------

    def token(self, kind: str, username: str, password: str) -> str:
        r = httpx.post(
            f"{self.url}/rest/V1/integration/{kind}/token", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        tok = r.json()
        assert isinstance(tok, str)
        return tok


@pytest.fixture(scope="session")
def magento_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("my-magento")


@pytest.fixture
def magento(magento_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # my-magento writes log files into the working directory and finds its package-wide log
    # handler again by a path relative to it: a client built in another folder than the one the
    # package was imported in adds a None handler and fails on its first log line. Build every
    # client in one folder, and point the package handler at it whichever folder imported it.
    monkeypatch.chdir(magento_dir)
    module: Any = pytest.importorskip("magento", reason="my-magento is in the dev extras")
    name = module.utils.MagentoLogger.PACKAGE_LOG_NAME
    module.logger = module.utils.MagentoLogger(name=name, log_file=name + ".log", stdout_level="WARNING")
    return cast(ModuleType, module)


def start_server(tmp: Path, backend: str = "sqlite", **env: str) -> Server:
    """backend "postgres" is PostgreSQL + Redis, unless the caller sets TILLKEY_REDIS_URL itself."""
    tmp.mkdir(parents=True, exist_ok=True)
    if backend == "postgres" and "TILLKEY_REDIS_URL" not in env:
        env = {**redis_env(), **env}
    srv = Server(tmp, make_database(backend, tmp, migrated=True), dict(env))
    try:
        srv.start()
    except BaseException:
        # A server that never came up leaves no process and no database behind.
        srv.stop()
        srv.database.drop()
        raise
    return srv


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One seeded server per backend, shared by the tests that do not change global state:
    admin `alice` (Administrators), admin `carol` (role Catalog: products only), the demo data."""
    srv = start_server(tmp_path_factory.mktemp(f"srv-{request.param}"), request.param)
    try:
        srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
        srv.cli("role", "create", "Catalog", "--resource", "Magento_Catalog::catalog")
        srv.cli(
            "admin",
            "create",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--password",
            ADMIN_PASSWORD,
            "--role",
            "Catalog",
        )
        srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
        yield srv
    finally:
        srv.stop()
        srv.database.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that revoke, deactivate or restart."""
    srv = start_server(tmp_path / "srv", request.param)
    try:
        yield srv
    finally:
        srv.stop()
        srv.database.drop()


@pytest.fixture
def sqlite_server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start servers with extra settings (token format, algorithm, lifetimes) on SQLite."""
    started: list[Server] = []

    def make(**env: str) -> Server:
        srv = start_server(tmp_path / f"srv{len(started)}", "sqlite", **env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


# --- the in-process tier's databases (tests/inprocess.py) ---------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Settings of a fresh database on each backend, for `inprocess.running(tmp_path, **db)`, with
    the CLI (`inprocess.cli`) pointed at the same data."""
    from tests import inprocess

    with inprocess.database(request.param, tmp_path) as settings:
        inprocess.cli_environment(monkeypatch, tmp_path, settings.get("database_url", ""))
        yield settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def scaleout_db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """`db`, and on PostgreSQL Redis too (a key prefix of its own), as a scale-out deployment runs:
    the CLI's changes reach the app through pub/sub as well as through the change-feed poll."""
    from tests import inprocess

    with inprocess.database(request.param, tmp_path) as settings:
        inprocess.cli_environment(monkeypatch, tmp_path, settings.get("database_url", ""))
        if request.param == "postgres":
            for name, value in redis_env().items():
                monkeypatch.setenv(name, value)
                settings[name.removeprefix("TILLKEY_").lower()] = value
        yield settings


# --- pytest-xdist: one worker per shared fixture ------------------------------------------------
#
# Under `--dist loadgroup` (Makefile `test`) the tests that share a module- or session-scoped
# fixture of this suite (a server, nginx, Chromium, a node process, a shared in-process app) go to
# one worker, so each such fixture starts once, not on every worker that happens to run one of its
# tests (as `worksteal` or `load` do). Tests that share nothing go wherever a worker is free.
# pytest-xdist's own loadgroup reads `xdist_group` marks through `item._nodeid`, which pytest 9.2 no
# longer uses; so the workers write the groups they computed to a file the controller's scheduler
# reads (both through pytest-xdist's public hooks).

GROUPS_FILE = "tillkey_test_groups"


def _groups(items: list[pytest.Item]) -> dict[str, str]:
    """nodeid -> group, for the tests that share a fixture instance with another (union-find over
    the instances: a test using two shared fixtures joins their groups)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    uses: dict[str, list[str]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        shared = []
        for name in getattr(item, "fixturenames", ()):
            defs = info.name2fixturedefs.get(name) if info is not None else None
            if not defs or defs[-1].scope not in ("module", "session"):
                continue
            if not getattr(defs[-1].func, "__module__", "").startswith("tests."):
                continue  # pytest's own (tmp_path_factory, ...)
            where = getattr(getattr(item, "module", None), "__name__", "") if defs[-1].scope == "module" else ""
            shared.append(f"{where}:{name}[{params.get(name, '')}]")
        if shared:
            uses[item.nodeid] = shared
            for other in shared[1:]:
                parent[find(other)] = find(shared[0])
    return {nodeid: find(shared[0]) for nodeid, shared in uses.items()}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = getattr(config, "workerinput", {}).get(GROUPS_FILE)
    if path:
        scratch = Path(f"{path}.{os.getpid()}")
        scratch.write_text(json.dumps(_groups(items)))
        scratch.replace(path)  # whole or absent: the workers write the same map


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[GROUPS_FILE] = str(_groups_path(node.config))


def _groups_path(config: pytest.Config) -> Path:
    return Path(tempfile.gettempdir()) / f"tillkey-test-groups-{os.getpid()}.json"


# The order the scopes are handed out in: longest first (by the seconds each test took in earlier
# runs), so the run does not end with one worker on a long scope while the others idle. The
# seconds come from tests/durations.json (committed: CI starts from a fresh clone) and, when
# present, from this checkout's earlier runs (pytest's cache, written at the end of every run);
# a test neither knows (new, or under a second in tests/durations.json) is taken as short.
# `--store-durations` rewrites tests/durations.json from the run (tests of a second or more).

DURATIONS_FILE = Path(__file__).parent / "durations.json"
DURATIONS_CACHE = "tillkey/durations"
DEFAULT_SECONDS = 0.3


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations", action="store_true", help="write tests/durations.json (the scheduler's estimates)"
    )


def known_durations(config: pytest.Config) -> dict[str, float]:
    known: dict[str, float] = json.loads(DURATIONS_FILE.read_text()) if DURATIONS_FILE.exists() else {}
    if config.cache is not None:
        known.update(config.cache.get(DURATIONS_CACHE, {}))
    return known


_run_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # On the controller under xdist too (the workers' reports are replayed there): setup, call and
    # teardown together, as a scope costs its worker.
    _run_durations[report.nodeid] = _run_durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not _run_durations:
        return  # a worker: the controller records the whole run
    measured = {k: round(v, 2) for k, v in _run_durations.items()}
    if config.cache is not None:
        config.cache.set(DURATIONS_CACHE, {**config.cache.get(DURATIONS_CACHE, {}), **measured})
    if config.getoption("store_durations", False):
        stored = json.loads(DURATIONS_FILE.read_text()) if DURATIONS_FILE.exists() else {}
        stored.update({k: round(v, 1) for k, v in measured.items() if v >= 1.0})
        stored = {k: v for k, v in stored.items() if not (k in measured and measured[k] < 1.0)}
        DURATIONS_FILE.write_text(json.dumps(dict(sorted(stored.items())), indent=0) + "\n")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    known = known_durations(config)

    def estimate(nodeid: str) -> float:
        return known.get(nodeid, DEFAULT_SECONDS)

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """One scope per group of tests sharing a fixture, one per other test; the longest scopes
        (estimated seconds) are handed out first."""

        groups: dict[str, str] | None = None
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                path = _groups_path(config)
                self.groups = json.loads(path.read_text()) if path.exists() else {}
                path.unlink(missing_ok=True)
            return self.groups.get(nodeid, nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # The queue is whole by the first assignment (LoadScopeScheduling.schedule builds it,
            # then hands out); sort it once, longest scope first.
            if not self.ordered:
                self.ordered = True
                scopes = sorted(self.workqueue.items(), key=lambda item: -sum(map(estimate, item[1])))
                self.workqueue.clear()
                self.workqueue.update(scopes)
            super()._assign_work_unit(node)

    return SharedFixtureScheduling(config, log)
