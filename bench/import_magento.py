"""`tillkey import magento` of N generated customers (1,000,000 by default): rows/s, wall time and
the import process's peak RSS (issue 17's goal: under 10 minutes and 300 MB).

The source is a MariaDB of the bench's own (tests/mariadb.py: Debian's mariadbd on a free
loopback port, its data in a temporary directory), or the server `--source-dsn` names, loaded here
with Magento 2.4's customer_entity (the columns the tests define) and rows like a shop's: emails, names, two websites,
legacy hashes of every version the tests' PHP vectors hold (the import copies hashes, so their
variety costs nothing). The target is a fresh Tillkey database: SQLite in a temporary data
directory, or PostgreSQL with `--database-url`. The import runs as `tillkey import magento`, a
child process, so its RSS is its own.

    .venv/bin/python bench/import_magento.py [--customers N] [--batch 5000] [--database-url URL]
        [--source-dsn mysql://root@127.0.0.1:3306 [--keep-source NAME]]

It also prints the scheduler's account of the import's threads: on a shared machine the wall time
is mostly the time its threads were runnable but waited for a CPU another process held.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import mariadb  # noqa: E402
from tests.test_import_magento import ADMINS, ROLES, RULES, SCHEMA  # noqa: E402

HASHES = [v["hash"] for v in json.loads((ROOT / "tests/vectors/legacy_hashes/magento.json").read_text())["vectors"]]
FIRST = ["Anna", "Bo", "Chen", "Dara", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea", "Mia", "Noor"]
LAST = ["Smith", "Jansen", "Nguyen", "Rossi", "Müller", "García", "Kowalski", "Okafor", "Tanaka", "Silva"]
DOMAINS = ["example.com", "mail.test", "shop.test", "post.example", "inbox.test"]


def load_source(server: str, name: str, customers: int) -> None:
    conn = mariadb.connect(server, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")  # a name of our own, not input
        cur.execute(f"USE `{name}`")
        for ddl in SCHEMA:
            cur.execute(ddl)
        cur.executemany(
            "INSERT INTO authorization_role (role_id, parent_id, role_type, user_id, user_type, role_name)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [r for r in ROLES if r[4] == "2"],
        )
        cur.executemany(
            "INSERT INTO authorization_rule (role_id, resource_id, privileges, permission) VALUES (%s, %s, '', %s)",
            [r for r in RULES if r[0] in (1, 2)],
        )
        cur.executemany(
            "INSERT INTO admin_user (user_id, username, email, password, is_active, firstname)"
            " VALUES (%s, %s, %s, %s, %s, 'A')",
            ADMINS,
        )

        # Generated inside MariaDB (its SEQUENCE engine): one statement, not a million round trips.
        def pick(values: list[str], n: int) -> str:
            return f"ELT(1 + (seq * {n}) % {len(values)}, {', '.join(conn.escape(v) for v in values)})"

        cur.execute(
            "INSERT INTO customer_entity (website_id, email, firstname, lastname, password_hash, increment_id,"  # noqa: S608 (our constants, escaped)
            " group_id, store_id, created_at)"
            f" SELECT 1 + seq % 2, CONCAT(LOWER({pick(FIRST, 7)}), '.', seq, '@', {pick(DOMAINS, 3)}),"
            f" {pick(FIRST, 7)}, {pick(LAST, 11)}, {pick(HASHES, 1)}, LPAD(seq, 9, '0'), 1, 1,"
            f" NOW() - INTERVAL seq MINUTE FROM seq_0_to_{customers - 1}"
        )
        conn.commit()
    conn.close()


def _exists(server: str, name: str) -> bool:
    conn = mariadb.connect(server)
    with conn.cursor() as cur:
        found = cur.execute("SHOW DATABASES LIKE %s", (name,))
    conn.close()
    return bool(found)


def drop_source(server: str, name: str) -> None:
    conn = mariadb.connect(server, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def _schedstat(pid: int) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for one), summed over a process's threads
    (/proc/PID/task/*/schedstat); None once it is gone."""
    on_cpu = waiting = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ran, waited, _slices = f.read().split()
            on_cpu, waiting = on_cpu + int(ran), waiting + int(waited)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return on_cpu / 1e9, waiting / 1e9


def _server_pid(server: str) -> int:
    """The source server's process id (from its pid file), 0 when it is not on this machine."""
    conn = mariadb.connect(server)
    with conn.cursor() as cur:
        cur.execute("SELECT @@pid_file")
        (pid_file,) = cur.fetchone() or ("",)
    conn.close()
    try:
        return int(Path(pid_file).read_text())
    except (OSError, ValueError):
        return 0


def _mariadb_cpu(pid: int) -> float:
    """mariadbd's CPU time so far (user + system), 0 when it is not found."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--database-url", default="", help="Tillkey's database (default: SQLite in a temp dir)")
    parser.add_argument(
        "--source-dsn", default="", help="the MariaDB server: mysql://USER[:PASS]@HOST[:PORT] (default: a private one)"
    )
    parser.add_argument(
        "--keep-source", default="", help="load into this database name and keep it (re-runs; needs --source-dsn)"
    )
    args = parser.parse_args()
    if args.keep_source and not args.source_dsn:
        parser.error("--keep-source needs --source-dsn: the bench's own server is gone after the run")
    if args.source_dsn:
        bench(args, args.source_dsn.rstrip("/"))
        return
    with tempfile.TemporaryDirectory() as tmp, mariadb.running(Path(tmp)) as server:
        bench(args, server.dsn().rstrip("/"))


def bench(args: argparse.Namespace, server: str) -> None:
    name = args.keep_source or f"tillkey_bench_{secrets.token_hex(4)}"
    started = time.perf_counter()
    if not _exists(server, name):
        load_source(server, name, args.customers)
        print(f"source: {args.customers:,} customers loaded in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")}
            env |= {"TILLKEY_DATA_DIR": str(Path(tmp) / "data"), "TILLKEY_DATABASE_URL": args.database_url}
            tillkey = str(ROOT / ".venv/bin/tillkey")
            subprocess.run([tillkey, "db", "upgrade"], env=env, check=True, capture_output=True)
            dsn = f"{server}/{name}"
            server_pid = _server_pid(server)
            source_cpu = _mariadb_cpu(server_pid)
            started = time.perf_counter()
            command = [tillkey, "import", "magento", "--dsn", dsn, "--batch", str(args.batch), "--json"]
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
                on_cpu = waiting = 0.0
                while True:  # the scheduler's account of the child's threads, while it lives
                    on_cpu, waiting = _schedstat(child.pid) or (on_cpu, waiting)
                    # wait4: the import's own resource usage (not `db upgrade`'s or mariadb-install-db's)
                    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                    if pid:
                        break
                    time.sleep(0.5)
                wall = time.perf_counter() - started
                child.returncode = os.waitstatus_to_exitcode(status)
                out.seek(0)
                err.seek(0)
                stdout, stderr = out.read(), err.read()
            if child.returncode:
                raise SystemExit(f"the import failed ({child.returncode}): {stderr}")
            source_cpu = _mariadb_cpu(server_pid) - source_cpu
            rss_mib = usage.ru_maxrss / 1024
            cpu = usage.ru_utime + usage.ru_stime
            report = json.loads(stdout)
    finally:
        if not args.keep_source:
            drop_source(server, name)
    imported = report["imported"].get("customer", 0)
    print(
        f"import: {imported:,} customers (+{report['imported'].get('admin', 0)} admins) in {wall:.1f} s = "
        f"{imported / wall:,.0f} customers/s; CPU {cpu:.1f} s; peak RSS of the import process {rss_mib:.0f} MiB; "
        f"batch {args.batch}; target {args.database_url.split('://')[0] if args.database_url else 'sqlite'}"
    )
    print(
        f"the import's threads: {on_cpu:.1f} s on a CPU, {waiting:.1f} s runnable but waiting for one "
        f"(another process had it); mariadbd: {source_cpu:.1f} s of CPU"
    )
    print(f"skipped: {report['skipped']}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
