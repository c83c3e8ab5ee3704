"""A private MariaDB for the Magento import's tests and bench: Debian's `mariadbd` (package
mariadb-server) on a free loopback port, with its data directory, socket and pid file in a folder of
the caller's, root without a password. Never the machine's own server: the caller gets a DSN with
the private port, and the start checks that the server answering there has the data directory made
for it.

A data directory is made once per MariaDB version (`mariadb-install-db` takes seconds, most of it
waiting for its bootstrap server) and copied for each start (a fraction of a second)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from tests.polling import eventually

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
# Small and quick: the tests' databases hold a few rows and the tests do not crash the server, so
# the writes need not reach the disk before a commit returns.
OPTIONS = [
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=0",
    "--skip-innodb-doublewrite",
]


def available() -> str | None:
    """None if MariaDB's server is installed, else the reason it is not usable."""
    missing = [path for path in (MARIADBD, INSTALL_DB) if not os.access(path, os.X_OK)]
    if missing:
        return f"MariaDB is not installed (Debian package mariadb-server): {', '.join(missing)} missing"
    return None


def connect(dsn: str, **kwargs: Any) -> pymysql.connections.Connection[Any]:
    """A PyMySQL connection for a mysql://USER[:PASS]@HOST[:PORT][/DB] DSN (what `tillkey import
    magento --dsn` takes)."""
    url = urlsplit(dsn)
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/") or None,
        **kwargs,
    )


@dataclass(frozen=True)
class MariaDB:
    """A running private server."""

    port: int
    datadir: Path
    pid: int

    def dsn(self, database: str = "") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"


def _as_root() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses to run as root otherwise


def _template() -> Path:
    """The initialised data directory for this MariaDB version, made once per machine; a lock keeps
    parallel test workers from making it twice, a rename keeps a half-made one from being used."""
    version = subprocess.run([MARIADBD, "--version"], check=True, capture_output=True, text=True).stdout
    base = Path(tempfile.gettempdir()) / f"tillkey-test-mariadb-{hashlib.sha256(version.encode()).hexdigest()[:12]}"
    with open(f"{base}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not base.is_dir():
            building = Path(f"{base}.building")
            shutil.rmtree(building, ignore_errors=True)
            command = [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={building}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *_as_root(),
                *OPTIONS,
            ]
            made = subprocess.run(command, capture_output=True, text=True)
            if made.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed ({made.returncode}): {made.stdout}{made.stderr}")
            building.rename(base)
    return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(folder: Path) -> Iterator[MariaDB]:
    """Start a private mariadbd with its files under `folder`, yield it once it answers, stop it
    (SIGTERM is its clean shutdown; SIGKILL if that hangs)."""
    datadir = folder / "data"
    shutil.copytree(_template(), datadir)
    port = _free_port()
    log = folder / "error.log"
    command = [
        MARIADBD,
        "--no-defaults",
        *_as_root(),
        f"--datadir={datadir}",
        "--bind-address=127.0.0.1",
        f"--port={port}",
        f"--socket={folder / 'mariadb.sock'}",
        f"--pid-file={folder / 'mariadb.pid'}",
        f"--log-error={log}",
        *OPTIONS,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited ({proc.returncode}): {log.read_text() if log.exists() else ''}")
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", connect_timeout=1)
        except pymysql.err.OperationalError:
            return False
        with conn, conn.cursor() as cur:
            cur.execute("SELECT @@datadir")
            (served,) = cur.fetchone() or ("",)
        if Path(served).resolve() != datadir.resolve():
            raise RuntimeError(f"another server answers on 127.0.0.1:{port} (data directory {served})")
        return True

    try:
        eventually(answers, within=60, interval=0.05, what=f"mariadbd answering on 127.0.0.1:{port}")
        yield MariaDB(port, datadir, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":  # how long a start takes: python -m tests.mariadb
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with running(Path(tmp)) as server:
            up = time.perf_counter() - started
        print(f"started in {up:.2f} s, stopped in {time.perf_counter() - started - up:.2f} s: port {server.port}")
