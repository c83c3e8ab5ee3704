"""`make bench-peers`: Tillkey beside its peers on the same machine, ratios first.

    python bench/peers.py                          # first run installs the peers (~3 min), then ~5 min
    python bench/peers.py --only oidc --duration 5 --rounds 1
    TILLKEY_PEER_DIR=/srv/peers python bench/peers.py

Each peer is installed by this script into a scratch folder outside the repository ($TILLKEY_PEER_DIR,
default ~/.cache/tillkey-peers; reused by later runs, never committed), started on 127.0.0.1,
seeded, measured and stopped:

- a real Medusa 2.21 server (shared/specs/medusa-peer.md: npm, PostgreSQL on 127.0.0.1:5432),
  authenticated GET /admin/users/me with the Bearer JWT of POST /auth/user/emailpass;
- fastapi-users (JWT strategy, SQLite) in its own virtualenv, protected GET /users/me;
- node oidc-provider: client-credentials token endpoint and token introspection, with the same access
  token format on both sides: opaque against a second Tillkey server with
  TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT=opaque, and ES256 JWT against Tillkey's default (oidc-provider
  does not introspect its JWTs, so introspection is compared on opaque tokens).

One Tillkey server (1 uvicorn worker, SQLite, as `make bench`) runs throughout; every peer is a
single process too. Each pair is measured with the same wrk, connections and duration, Tillkey and
the peer back to back, alternating in each round (ABBA), so drift on a shared machine hits both.
Results go to stdout and to bench/results/peers-<timestamp>.json. Not part of `make test` or CI.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/peers.py`
    sys.path.insert(0, str(ROOT))

from bench import oauth2_load  # noqa: E402
from bench.run import (  # noqa: E402
    HOST,
    NOISY,
    RESULTS_DIR,
    BenchError,
    CpuSnapshot,
    Sample,
    Wrk,
    account,
    ensure_wrk,
    free_port,
    machine_info,
    scrape_audit_metrics,
    serving,
    tillkey_cli,
    tillkey_env,
)

APPS = ROOT / "bench" / "peer_apps"  # our side of the peers: app source and config, committed
MEDUSA_VERSION = "2.21.2"
MEDUSA_PACKAGES = (
    f"@medusajs/medusa@{MEDUSA_VERSION}",
    f"@medusajs/framework@{MEDUSA_VERSION}",
    f"@medusajs/cli@{MEDUSA_VERSION}",
    "@swc/core",
    "typescript@5",
    "ts-node",
    "@types/node@20",
)
OIDC_PACKAGE = "oidc-provider@9.13.3"  # ESM, runs on Node 20.19+
FASTAPI_USERS_REQS = ("fastapi-users[sqlalchemy]==15.0.5", "aiosqlite", "uvicorn[standard]")
NODE_MIN = (20, 19)
# wrk gives a request up after this: a slow peer's late answers count in its latency instead of
# vanishing as wrk timeouts (2 s by default).
WRK_TIMEOUT = 30  # seconds
MEDUSA_TARGET = 20.0  # Tillkey's GET /admin/users/me over Medusa's, requests/s
# Medusa's login, as in shared/specs/medusa-peer.md; the database is the peer's own scratch state.
MEDUSA_EMAIL, MEDUSA_PASSWORD = "admin@test.com", "supersecret"
MEDUSA_DB_URL = "postgres://medusa:medusa@127.0.0.1:5432/medusa_peer"
# Which access token Tillkey's client-credentials grant issues (settings.oauth2_access_token_format).
OAUTH2_FORMAT_ENV = "TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT"


# --- processes ----------------------------------------------------------------------------------


def sh(
    cmd: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900
) -> str:
    """Run a setup step; a failure stops the bench with the step's own last words."""
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise BenchError(f"{what} failed ({done.returncode}):\n{tail}")
    return done.stdout


class Process:
    """A peer server in its own process group, ready once `ready_path` answers below 500."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.cwd, self.env, self.log = name, cmd, cwd, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, url: str, timeout: float = 120.0) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not answer {url} within {timeout:.0f} s:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group we started: node and anything it spawned
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def running(proc: Process, ready_url: str) -> Iterator[Process]:
    try:
        proc.start(ready_url)
        yield proc
    finally:
        proc.stop()


# --- what gets measured -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One side of a pair: a URL wrk loads, with a Bearer token (GET) or a Lua script (POST)."""

    server: str
    pid: int
    url: str
    token: str = ""
    script: Callable[[], Path] | None = None  # written afresh before each run (introspection: a live token)
    verify: Callable[[], None] = lambda: None  # after each run: what was measured still works
    # Processes outside the server's own tree that do its work (Medusa's PostgreSQL backends),
    # counted in its CPU per request; Tillkey's SQLite runs inside its process.
    helpers: Callable[[], list[int]] = lambda: []


@dataclass(frozen=True, slots=True)
class Pair:
    key: str
    metric: str
    note: str
    tillkey: Target
    peer: Target
    target: float | None = None  # Tillkey/peer requests/s the issue asks for, if any
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"tillkey": [], "peer": []})


def run_target(wrk: Wrk, t: Target, seconds: int) -> Sample:
    script = t.script() if t.script is not None else None
    helpers = t.helpers()
    before = CpuSnapshot.take(t.pid, helpers)
    s = wrk.run(t.url, seconds, script, timeout_s=WRK_TIMEOUT, token=t.token)
    # A helper that appeared during the run did all its work during the run.
    other, cpu_us = account(before, CpuSnapshot.take(t.pid, set(helpers) | set(t.helpers())), s.requests)
    if s.non_2xx:
        raise BenchError(f"{t.server} {t.url}: {s.non_2xx} of {s.requests} responses were not 2xx")
    t.verify()
    return replace(s, other_cpu=other, cpu_us=cpu_us)


def measure(pair: Pair, wrk: Wrk, seconds: int, rounds: int, warmup: int) -> dict[str, Any]:
    sides = (("tillkey", pair.tillkey), ("peer", pair.peer))
    for _, t in sides:  # JIT, caches and connection pools warm on both sides first
        run_target(wrk, t, warmup)
    for i in range(rounds):
        for side, t in sides if i % 2 == 0 else tuple(reversed(sides)):
            s = run_target(wrk, t, seconds)
            pair.samples[side].append(s)
            busy = f"  (other processes: {s.other_cpu:.0%} of the CPUs)" if s.other_cpu >= 0.05 else ""
            print(
                f"  round {i + 1}/{rounds} {pair.key:<22} {t.server:<14} {s.rps:>9.0f} req/s "
                f"{s.cpu_us:>7.0f} us CPU/req{busy}",
                flush=True,
            )
    return summarize(pair)


def summarize(pair: Pair) -> dict[str, Any]:
    tk, peer = pair.samples["tillkey"], pair.samples["peer"]
    rounds = list(zip(tk, peer, strict=True))

    def side(t: Target, got: list[Sample]) -> dict[str, Any]:
        return {
            "server": t.server,
            "url": t.url,
            "rps": statistics.median(s.rps for s in got),
            "p50_ms": statistics.median(s.p50_ms for s in got),
            "p99_ms": statistics.median(s.p99_ms for s in got),
            "cpu_us": statistics.median(s.cpu_us for s in got),
            "socket_errors": sum(s.socket_errors for s in got),
            "other_cpu_max": max(s.other_cpu for s in got),
            "samples": [asdict(s) for s in got],
        }

    per_round = [a.rps / b.rps for a, b in rounds]
    return {
        "metric": pair.metric,
        "note": pair.note,
        "target": pair.target,
        # Headline: the median of per-round ratios; both sides of a round ran back to back.
        "ratio": statistics.median(per_round),
        "per_round": per_round,
        # The same in server CPU per request: what a quiet machine's requests/s ratio would be.
        "cpu_ratio": statistics.median(cpu) if (cpu := [b.cpu_us / a.cpu_us for a, b in rounds if a.cpu_us]) else None,
        "tillkey": side(pair.tillkey, tk),
        "peer": side(pair.peer, peer),
    }


def bearer_check(url: str, token: str, expect: str) -> Callable[[], None]:
    """Refuse to measure unless the route answers the token's owner, and refuses a missing token."""

    def check() -> None:
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if r.status_code != 200 or expect not in r.text:
            raise BenchError(f"GET {url} with the token answered {r.status_code}: {r.text[:200]}")

    check()
    anonymous = httpx.get(url, timeout=10)
    if anonymous.status_code != 401:
        raise BenchError(f"GET {url} without a token answered {anonymous.status_code}, expected 401")
    return check


def form_post(url: str, post: oauth2_load.FormPost) -> httpx.Response:
    return httpx.post(url, content=post.body, headers=post.headers, timeout=10)


def token_format(token: str) -> str:
    """`jwt/<alg>` for a JWS compact token, else `opaque`."""
    parts = token.split(".")
    if len(parts) != 3:
        return "opaque"
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return "opaque"
    return f"jwt/{header.get('alg')}" if isinstance(header, dict) else "opaque"


def oauth2_targets(
    server: str,
    pid: int,
    base: str,
    token_path: str,
    introspect_path: str,
    client: tuple[str, str],
    scratch: Path,
    fmt: str,
    introspect: bool = True,
) -> tuple[Target, Target | None]:
    """Client-credentials issuance and introspection of a live token, as bench/oauth2_load.py sends them.
    `fmt` is the access token format the server must issue (`opaque` or `jwt/ES256`): the bench refuses
    to compare unlike formats."""
    token_post, _ = oauth2_load.requests_for(*client, "")
    token_post = replace(token_post, path=token_path)
    name = f"{server.split()[0]}-{fmt.replace('/', '-')}"

    def issue() -> str:
        r = form_post(base + token_path, token_post)
        if r.status_code != 200 or not r.json().get("access_token"):
            raise BenchError(f"{server} POST {token_path} answered {r.status_code}: {r.text[:200]}")
        token: str = r.json()["access_token"]
        if (got := token_format(token)) != fmt:
            raise BenchError(f"{server} issued a {got} access token, expected {fmt}")
        return token

    def introspect_post(token: str) -> oauth2_load.FormPost:
        _, post = oauth2_load.requests_for(*client, token)
        return replace(post, path=introspect_path)

    def write(what: str, post: oauth2_load.FormPost) -> Path:
        path = scratch / f"{name}-{what}.lua"
        path.write_text(oauth2_load.lua_script(post))
        return path

    live: list[str] = []

    def introspect_script() -> Path:
        # A token issued just now: a peer that keeps tokens in a bounded in-memory store may have
        # dropped an older one while its token endpoint was being loaded.
        live[:] = [issue()]
        return write("introspect", introspect_post(live[0]))

    def still_active() -> None:
        r = form_post(base + introspect_path, introspect_post(live[0]))
        if r.status_code != 200 or r.json().get("active") is not True:
            raise BenchError(f"{server}: the introspected token is no longer active: {r.status_code} {r.text[:200]}")

    issue()
    token = Target(server, pid, base + token_path, script=lambda: write("token", token_post))
    if not introspect:
        return token, None
    introspect_script()
    still_active()
    return token, Target(server, pid, base + introspect_path, script=introspect_script, verify=still_active)


# --- Tillkey ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TillkeySide:
    pid: int
    base: str
    admin_token: str
    admin_email: str
    customer_token: str
    customer_email: str
    client: tuple[str, str]
    env: dict[str, str]  # the server's environment, for a twin on the same data (bench/peers.py oidc)


ADMIN_EMAIL, CUSTOMER_EMAIL = "bench-admin@example.com", "bench-customer@example.com"


def seed_tillkey(cli: Callable[..., Any], password: str) -> tuple[str, str]:
    """An admin and a customer with `password`, and a client-credentials client: (id, secret)."""
    cli("admin", "create", "--username", "benchadmin", "--email", ADMIN_EMAIL, "--password", password)
    cli(
        "customer",
        "create",
        "--email",
        CUSTOMER_EMAIL,
        "--password",
        password,
        "--first-name",
        "Bench",
        "--last-name",
        "Customer",
    )
    client = cli(
        "client",
        "create",
        "--name",
        "bench",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
    )
    return client["client_id"], client["client_secret"]


def tillkey_side(pid: int, base: str, password: str, client: tuple[str, str], env: dict[str, str]) -> TillkeySide:
    return TillkeySide(
        pid=pid,
        base=base,
        admin_token=emailpass_login(base, "user", ADMIN_EMAIL, password),
        admin_email=ADMIN_EMAIL,
        customer_token=customer_login(base, CUSTOMER_EMAIL, password),
        customer_email=CUSTOMER_EMAIL,
        client=client,
        env=env,
    )


@contextmanager
def tillkey(tmp: Path) -> Iterator[TillkeySide]:
    # OAuth 2 access tokens as JWTs (the default, ES256), said explicitly: the oidc pairs compare formats.
    env = tillkey_env() | {"TILLKEY_DATA_DIR": str(tmp / "tillkey-data"), OAUTH2_FORMAT_ENV: "jwt"}
    password = "Pw-" + secrets.token_urlsafe(16)
    print("Tillkey: seeding a throwaway database ...", flush=True)
    client = seed_tillkey(lambda *args: tillkey_cli(env, *args), password)
    with serving(1, env, tmp) as server:
        yield tillkey_side(server.pid, server.base, password, client, env)


def customer_login(base: str, email: str, password: str) -> str:
    """Magento's customer login: a JWT for the /rest/V1 routes (Medusa's /store ones also want a
    publishable API key, which fastapi-users has no counterpart of)."""
    r = httpx.post(
        f"{base}/rest/V1/integration/customer/token", json={"username": email, "password": password}, timeout=30
    )
    if r.status_code != 200 or not isinstance(r.json(), str):
        raise BenchError(f"customer login at {base} answered {r.status_code}: {r.text[:200]}")
    token: str = r.json()
    return token


def emailpass_login(base: str, actor: str, email: str, password: str) -> str:
    """POST /auth/{actor}/emailpass, the Medusa login Tillkey and Medusa both speak."""
    r = httpx.post(f"{base}/auth/{actor}/emailpass", json={"email": email, "password": password}, timeout=30)
    if r.status_code != 200 or not isinstance(r.json().get("token"), str):
        raise BenchError(f"POST {base}/auth/{actor}/emailpass answered {r.status_code}: {r.text[:200]}")
    token: str = r.json()["token"]
    return token


# --- the peers ----------------------------------------------------------------------------------


def peer_dir(arg: str | None) -> Path:
    raw = arg or os.environ.get("TILLKEY_PEER_DIR")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = (Path(raw).expanduser() if raw else cache / "tillkey-peers").resolve()
    if path == ROOT or ROOT in path.parents:
        raise BenchError(f"the peers' scratch folder {path} is inside the repository; choose one outside it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def stamped(folder: Path, spec: str) -> bool:
    """Whether `folder` was installed from exactly `spec` (the stamp is written after success)."""
    stamp = folder / ".tillkey-installed"
    return stamp.exists() and stamp.read_text() == spec


def stamp(folder: Path, spec: str) -> None:
    (folder / ".tillkey-installed").write_text(spec)


def need_node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BenchError("node and npm are needed for the Medusa and oidc-provider peers (Node 20.19+)")
    version = sh([node, "--version"], "node --version").strip().lstrip("v")
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < NODE_MIN:
        raise BenchError(f"node {version} is too old for Medusa 2.21 and oidc-provider 9; install Node 20.19+")
    return npm


def npm_install(folder: Path, packages: tuple[str, ...], package_json: dict[str, Any]) -> None:
    spec = " ".join(packages)
    if stamped(folder, spec):
        return
    npm = need_node()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(package_json, indent=2) + "\n")
    print(f"installing {spec} into {folder} (npm) ...", flush=True)
    sh(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
        f"npm install in {folder}",
        cwd=folder,
    )
    stamp(folder, spec)


# Medusa -----------------------------------------------------------------------------------------

MEDUSA_CONFIG = """\
const { loadEnv, defineConfig } = require("@medusajs/framework/utils")

loadEnv(process.env.NODE_ENV || "development", process.cwd())

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: process.env.DATABASE_URL,
    http: {
      storeCors: "http://127.0.0.1", adminCors: "http://127.0.0.1", authCors: "http://127.0.0.1",
      jwtSecret: process.env.JWT_SECRET, cookieSecret: process.env.COOKIE_SECRET,
    },
  },
  admin: { disable: true },
})
"""
MEDUSA_TSCONFIG = {
    "compilerOptions": {
        "target": "ES2021",
        "esModuleInterop": True,
        "module": "Node16",
        "moduleResolution": "Node16",
        "emitDecoratorMetadata": True,
        "experimentalDecorators": True,
        "skipLibCheck": True,
        "skipDefaultLibCheck": True,
        "declaration": False,
        "sourceMap": False,
        "inlineSourceMap": True,
        "outDir": "./.medusa/server",
        "rootDir": "./",
        "jsx": "react-jsx",
        "forceConsistentCasingInFileNames": True,
        "resolveJsonModule": True,
        "checkJs": False,
        "strictNullChecks": True,
    },
    "ts-node": {"swc": True},
    "include": ["**/*", ".medusa/types/*"],
    "exclude": ["node_modules", ".medusa/server", ".medusa/admin", ".cache"],
}


def psql(sql: str, database: str = "postgres") -> str:
    psql_bin = shutil.which("psql")
    if psql_bin is None:
        raise BenchError("psql is needed for the Medusa peer (apt-get install -y postgresql-client)")
    cmd = [psql_bin, "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", database, "-tAc", sql]
    return sh(cmd, "psql on 127.0.0.1:5432 as postgres (is PostgreSQL running with trust auth?)", timeout=30).strip()


def installed_version(folder: Path, package: str) -> str | None:
    try:
        version = json.loads((folder / "node_modules" / package / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def write_once(path: Path, text: str) -> None:
    """A file of the peer's folder, written if missing: one already there (a folder set up by hand or
    by the Medusa tests, with its own modules configured) is that folder's and stays as it is."""
    if not path.exists():
        path.write_text(text)


def medusa_install(root: Path) -> Path:
    folder = root / "medusa-server"
    if installed_version(folder, "@medusajs/medusa") == MEDUSA_VERSION:
        # Installed already, by this script (stamped) or otherwise: no npm run, which would rewrite
        # package.json and the lock of a folder shared with others.
        if not stamped(folder, " ".join(MEDUSA_PACKAGES)):
            print(f"Medusa: reusing the Medusa {MEDUSA_VERSION} already installed in {folder}", flush=True)
    else:
        npm_install(
            folder, MEDUSA_PACKAGES, {"name": "medusa-peer", "private": True, "scripts": {"start": "medusa start"}}
        )
    write_once(folder / "medusa-config.js", MEDUSA_CONFIG)
    write_once(folder / "tsconfig.json", json.dumps(MEDUSA_TSCONFIG, indent=2) + "\n")
    write_once(folder / ".env", "".join(f"{k}={v}\n" for k, v in medusa_env_vars().items()))
    # The peer's own role and database (shared/specs/medusa-peer.md), created once.
    if psql("SELECT 1 FROM pg_roles WHERE rolname = 'medusa'") != "1":
        psql("CREATE ROLE medusa WITH LOGIN SUPERUSER PASSWORD 'medusa'")
    if psql("SELECT 1 FROM pg_database WHERE datname = 'medusa_peer'") != "1":
        psql("CREATE DATABASE medusa_peer OWNER medusa")
    env = medusa_env()
    medusa = str(folder / "node_modules" / ".bin" / "medusa")
    # Migrated once: a database with Medusa's tables (migrated by an earlier run, or by whoever set
    # up a shared folder) is not migrated again.
    if psql("SELECT to_regclass('public.user') IS NOT NULL", "medusa_peer") != "t":
        print("Medusa: migrating its database (about 15 s) ...", flush=True)
        sh([medusa, "db:migrate"], "medusa db:migrate", cwd=folder, env=env)
    return folder


def medusa_env_vars() -> dict[str, str]:
    return {
        "DATABASE_URL": MEDUSA_DB_URL,
        "JWT_SECRET": "supersecret",
        "COOKIE_SECRET": "supersecret",
        "MEDUSA_DISABLE_TELEMETRY": "true",
    }


def medusa_env() -> dict[str, str]:
    # development: `medusa start` would force production, whose Secure cookies plain http drops.
    # LOG_LEVEL=info: no line per request (development logs each at "http"), as Tillkey runs
    # without an access log.
    return {**os.environ, **medusa_env_vars(), "NODE_ENV": "development", "LOG_LEVEL": "info"}


def postgres_backends(user: str, database: str) -> list[int]:
    """PostgreSQL backends serving `user` on `database`: their process titles name both."""
    title = f" {user} {database} "
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # exited meanwhile
            if cmdline.startswith("postgres:") and title in cmdline:
                found.append(int(entry.name))
    return found


@contextmanager
def medusa(root: Path, tmp: Path, tk: TillkeySide, scratch: Path) -> Iterator[list[Pair]]:
    folder = medusa_install(root)
    port = free_port()
    cmd = [str(folder / "node_modules" / ".bin" / "medusa"), "start", "-H", HOST, "-p", str(port)]
    base = f"http://{HOST}:{port}"
    with running(Process("Medusa", cmd, folder, medusa_env(), tmp / "medusa.log"), base + "/health") as proc:
        try:
            token = emailpass_login(base, "user", MEDUSA_EMAIL, MEDUSA_PASSWORD)
        except BenchError:  # a fresh database: its admin is created once, as the spec does
            sh([cmd[0], "user", "-e", MEDUSA_EMAIL, "-p", MEDUSA_PASSWORD], "medusa user", cwd=folder, env=medusa_env())
            token = emailpass_login(base, "user", MEDUSA_EMAIL, MEDUSA_PASSWORD)
        me = "/admin/users/me"
        yield [
            Pair(
                "medusa-users-me",
                f"GET {me}",
                "Bearer JWT from POST /auth/user/emailpass; both load the admin from their database "
                "(Medusa: PostgreSQL, its backends' CPU counted as Medusa's; Tillkey: SQLite in process); "
                "Medusa with NODE_ENV=development as shared/specs/medusa-peer.md says, request log off",
                Target(
                    "tillkey",
                    tk.pid,
                    tk.base + me,
                    tk.admin_token,
                    verify=bearer_check(tk.base + me, tk.admin_token, tk.admin_email),
                ),
                Target(
                    "medusa 2.21",
                    proc.pid,
                    base + me,
                    token,
                    verify=bearer_check(base + me, token, MEDUSA_EMAIL),
                    helpers=lambda: postgres_backends("medusa", "medusa_peer"),
                ),
                target=MEDUSA_TARGET,
            )
        ]


# fastapi-users ----------------------------------------------------------------------------------


def fastapi_users_install(root: Path) -> Path:
    folder = root / "fastapi-users"
    python = folder / "venv" / "bin" / "python"
    spec = " ".join(FASTAPI_USERS_REQS)
    if not stamped(folder, spec):
        print(f"installing {spec} into {folder / 'venv'} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "venv", str(folder / "venv")], "python -m venv")
        sh([str(python), "-m", "pip", "install", "-q", *FASTAPI_USERS_REQS], "pip install fastapi-users")
        stamp(folder, spec)
    return python


@contextmanager
def fastapi_users(root: Path, tmp: Path, tk: TillkeySide, scratch: Path) -> Iterator[list[Pair]]:
    python = fastapi_users_install(root)
    port = free_port()
    # The same server settings as Tillkey's bench server: 1 worker, uvloop, httptools, no access log.
    cmd = [
        str(python),
        "-m",
        "uvicorn",
        "fastapi_users_app:app",
        "--app-dir",
        str(APPS),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PEER_DB": str(tmp / "fastapi-users.db"), "PEER_SECRET": secrets.token_urlsafe(32)}
    base = f"http://{HOST}:{port}"
    with running(Process("fastapi-users", cmd, tmp, env, tmp / "fastapi-users.log"), base + "/docs") as proc:
        email, password = "bench@example.com", "Pw-" + secrets.token_urlsafe(16)
        r = httpx.post(base + "/auth/register", json={"email": email, "password": password}, timeout=30)
        if r.status_code != 201:
            raise BenchError(f"fastapi-users POST /auth/register answered {r.status_code}: {r.text[:200]}")
        r = httpx.post(base + "/auth/jwt/login", data={"username": email, "password": password}, timeout=30)
        if r.status_code != 200:
            raise BenchError(f"fastapi-users POST /auth/jwt/login answered {r.status_code}: {r.text[:200]}")
        token = r.json()["access_token"]
        me, tk_me = "/users/me", "/rest/V1/customers/me"
        yield [
            Pair(
                "fastapi-users-me",
                f"GET {me} | Tillkey GET {tk_me}",
                "who am I with a JWT: verify the Bearer JWT, load that user by id from SQLite, answer it as "
                "JSON (Tillkey: the customer of a POST /rest/V1/integration/customer/token JWT)",
                Target(
                    "tillkey",
                    tk.pid,
                    tk.base + tk_me,
                    tk.customer_token,
                    verify=bearer_check(tk.base + tk_me, tk.customer_token, tk.customer_email),
                ),
                Target("fastapi-users", proc.pid, base + me, token, verify=bearer_check(base + me, token, email)),
            )
        ]


# oidc-provider ----------------------------------------------------------------------------------


def oidc_process(folder: Path, tmp: Path, client: tuple[str, str], fmt: str) -> tuple[Process, str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "CLIENT_ID": client[0], "CLIENT_SECRET": client[1]}
    env |= {"NODE_ENV": "production", "ACCESS_TOKEN_FORMAT": fmt}
    node = shutil.which("node") or "node"
    return Process(f"oidc-provider {fmt}", [node, "server.mjs"], folder, env, tmp / f"oidc-provider-{fmt}.log"), (
        f"http://{HOST}:{port}"
    )


@contextmanager
def oidc_provider(root: Path, tmp: Path, tk: TillkeySide, scratch: Path) -> Iterator[list[Pair]]:
    """Two like-for-like comparisons: opaque access tokens on both sides (oidc-provider's default, in
    its in-memory store; Tillkey with TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT=opaque, a second server on
    the same data), then ES256 JWT access tokens on both sides (oidc-provider through its resource
    indicators; Tillkey's default). oidc-provider refuses to introspect its JWTs, so introspection is
    compared on opaque tokens only."""
    folder = root / "oidc-provider"
    npm_install(folder, (OIDC_PACKAGE,), {"name": "oidc-peer", "private": True, "type": "module"})
    shutil.copyfile(APPS / "oidc_server.mjs", folder / "server.mjs")  # beside its node_modules
    client = ("bench-client", secrets.token_urlsafe(32))
    opaque_proc, opaque_base = oidc_process(folder, tmp, client, "opaque")
    jwt_proc, jwt_base = oidc_process(folder, tmp, client, "jwt")
    ready = "/.well-known/openid-configuration"
    twin_dir = scratch / "tillkey-opaque"
    twin_dir.mkdir()
    with (
        serving(1, tk.env | {OAUTH2_FORMAT_ENV: "opaque"}, twin_dir) as tk_opaque,
        running(opaque_proc, opaque_base + ready),
        running(jwt_proc, jwt_base + ready),
    ):
        paths = ("/token", "/token/introspection")
        tk_paths = ("/oauth2/token", "/oauth2/introspect")
        peer_o_token, peer_o_introspect = oauth2_targets(
            "oidc-provider", opaque_proc.pid, opaque_base, *paths, client, scratch, "opaque"
        )
        tk_o_token, tk_o_introspect = oauth2_targets(
            "tillkey", tk_opaque.pid, tk_opaque.base, *tk_paths, tk.client, scratch, "opaque"
        )
        peer_j_token, _ = oauth2_targets(
            "oidc-provider", jwt_proc.pid, jwt_base, *paths, client, scratch, "jwt/ES256", introspect=False
        )
        tk_j_token, _ = oauth2_targets(
            "tillkey", tk.pid, tk.base, *tk_paths, tk.client, scratch, "jwt/ES256", introspect=False
        )
        assert peer_o_introspect is not None and tk_o_introspect is not None
        basic = "HTTP Basic client auth, grant_type=client_credentials"
        yield [
            Pair(
                "oidc-token-opaque",
                "POST token (client credentials), opaque",
                f"{basic}; opaque access tokens on both sides (oidc-provider: its in-memory store; Tillkey "
                f"{OAUTH2_FORMAT_ENV}=opaque: a digest row in SQLite and a token.issued audit record)",
                tk_o_token,
                peer_o_token,
            ),
            Pair(
                "oidc-introspect",
                "POST introspection, opaque",
                "HTTP Basic client auth, token=<a live opaque client-credentials token>",
                tk_o_introspect,
                peer_o_introspect,
            ),
            Pair(
                "oidc-token-jwt",
                "POST token (client credentials), ES256 JWT",
                f"{basic}; ES256-signed JWT access tokens on both sides (oidc-provider: resource indicators, "
                f"accessTokenFormat 'jwt', nothing stored; Tillkey {OAUTH2_FORMAT_ENV}=jwt: a token.issued "
                "audit record); oidc-provider does not introspect its JWTs, so no introspection pair",
                tk_j_token,
                peer_j_token,
            ),
        ]
        for label, base in (("opaque", tk_opaque.base), ("jwt", tk.base)):
            audit = scrape_audit_metrics(base)
            print(
                f"  Tillkey ({label} tokens) audit after the oidc runs: "
                + ", ".join(f"{k} {v:.0f}" for k, v in audit.items()),
                flush=True,
            )


PEERS: dict[str, Callable[[Path, Path, TillkeySide, Path], Any]] = {
    "medusa": medusa,
    "fastapi-users": fastapi_users,
    "oidc": oidc_provider,
}


# --- report -------------------------------------------------------------------------------------


def report(machine: dict[str, Any], config: dict[str, Any], results: list[dict[str, Any]]) -> str:
    out = [
        "",
        f"machine: nproc={machine['nproc']}  cpu={machine['cpu_model']}  python={machine['python']}  "
        f"load average before={machine['loadavg_before']}  ({machine['wrk']})",
        f"load: wrk -t{config['threads']} -c{config['connections']} --timeout={WRK_TIMEOUT}s, "
        f"{config['duration']} s x {config['rounds']} "
        "rounds per side, Tillkey and peer alternating; medians. Every server: one process on 127.0.0.1",
        "",
        "ratios: Tillkey / peer requests/s (median of per-round ratios [min-max]), and by server CPU per request",
        f"{'pair':<18} {'metric':<44} {'req/s ratio':>20} {'CPU ratio':>10}  {'target':>10}",
    ]
    for r in results:
        verdict = ""
        if r["target"] is not None:
            verdict = f">={r['target']:.0f}x ok" if r["ratio"] >= r["target"] else f"<{r['target']:.0f}x MISS"
        span = f"{r['ratio']:.2f} [{min(r['per_round']):.2f}-{max(r['per_round']):.2f}]"
        cpu = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        out.append(f"{r['peer']['server']:<18} {r['metric']:<44} {span:>20} {cpu:>10}  {verdict:>10}")
    out += [
        "",
        f"{'pair':<18} {'server':<14} {'route':<42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}",
    ]
    for r in results:
        for side in ("tillkey", "peer"):
            s = r[side]
            path = "/" + s["url"].split("/", 3)[3]
            flag = f"  ({s['socket_errors']} socket errors)" if s["socket_errors"] else ""
            out.append(
                f"{r['peer']['server']:<18} {s['server']:<14} {path:<42} {s['rps']:>9.0f} {s['p50_ms']:>8.2f} "
                f"{s['p99_ms']:>8.2f} {s['cpu_us']:>11.0f}{flag}"
            )
    out += ["", "what is compared:"] + [f"  {r['peer']['server']}, {r['metric']}: {r['note']}" for r in results]
    worst = max((r[s]["other_cpu_max"] for r in results for s in ("tillkey", "peer")), default=0.0)
    if worst >= NOISY:
        out += [
            "",
            f"WARNING: other processes used up to {worst:.0%} of the CPUs during a measurement, so requests/s "
            "and latencies are noisy; trust the CPU ratio more, or rerun on a quiet machine.",
        ]
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--only", default=",".join(PEERS), help=f"comma-separated peers (default {','.join(PEERS)})")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per pair, each side once per round (default 2)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per side (default 3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32, as make bench)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument(
        "--peer-dir", help="scratch folder for the peers (default $TILLKEY_PEER_DIR or ~/.cache/tillkey-peers)"
    )
    ap.add_argument("--install-only", action="store_true", help="install the peers and stop")
    args = ap.parse_args(argv)
    args.peers = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown or not args.peers:
        ap.error(f"--only takes some of {', '.join(PEERS)}")
    if min(args.duration, args.rounds, args.warmup, args.connections, args.threads) < 1:
        ap.error("--duration, --rounds, --warmup, --connections and --threads must be at least 1")
    return args


def install_only(root: Path, peers: list[str]) -> None:
    if "medusa" in peers:
        medusa_install(root)
    if "fastapi-users" in peers:
        fastapi_users_install(root)
    if "oidc" in peers:
        npm_install(root / "oidc-provider", (OIDC_PACKAGE,), {"name": "oidc-peer", "private": True, "type": "module"})


def run(args: argparse.Namespace, tmp: Path) -> None:
    loadavg_before = os.getloadavg()[0]
    wrk = Wrk(ensure_wrk(), args.threads, args.connections, "")
    root = peer_dir(args.peer_dir)
    print(f"peers' scratch folder: {root}", flush=True)
    if args.install_only:
        install_only(root, args.peers)
        return
    config = {k: getattr(args, k) for k in ("duration", "rounds", "warmup", "connections", "threads")}
    results = []
    with tillkey(tmp) as tk:
        for name in args.peers:
            scratch = tmp / name
            scratch.mkdir()
            with PEERS[name](root, tmp, tk, scratch) as pairs:
                print(f"measuring Tillkey and {name} ...", flush=True)
                results += [measure(pair, wrk, args.duration, args.rounds, args.warmup) for pair in pairs]
    machine = machine_info(wrk, loadavg_before)
    print(report(machine, config, results))
    stamp_ = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"peers-{stamp_}.json"
    payload = {"timestamp": stamp_, "machine": machine, "config": config, "results": results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks, which stop every server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="tillkey-peers-"))
    try:
        run(args, tmp)
    except BenchError as exc:
        print(f"\nbench aborted: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
