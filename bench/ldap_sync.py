"""The cost of an LDAP / Active Directory sync (issue 15): `tillkey idp sync` of a generated
directory of N users (10,000 by default) in a private slapd (tests/slapd.py: Debian's slapd on a
free loopback port, loaded with slapadd), into a fresh Tillkey database (SQLite in a temporary
data directory, or PostgreSQL with `--database-url`).

Four runs, each `tillkey idp sync NAME --json` as a child process (its wall time includes the
CLI's start, measured at the end with `idp list`); CPU seconds are the child's own:
  1. first sync: every member of a mapped group provisioned (an admin, its identity, the audit);
  2. again, nothing changed: the directory read and compared, nothing written;
  3. after moving 5% of the users to another mapped group and removing 5% from every group:
     role changes and deactivations (tokens revoked, sessions ended);
  4. again, nothing changed.

    .venv/bin/python bench/ldap_sync.py [--users 10000] [--database-url URL]

The directory: 40% in Sales, 20% in Sales EU (nested inside Sales), 30% in Support, 10% in no
mapped group; the provider maps Sales and Support, with --nested-groups.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import slapd as directory  # noqa: E402

TILLKEY = str(ROOT / ".venv/bin/tillkey")
PASSWORD = "bench-Directory-1"  # noqa: S105 (the generated users' own, in a throwaway directory)


def generate(users: int) -> tuple[str, dict[str, list[str]]]:
    groups: dict[str, list[str]] = {"Sales": [], "Sales EU": [], "Support": [], "Other": []}
    people = []
    for i in range(users):
        uid = f"user{i:06d}"
        people.append(directory.person_ldif(uid, PASSWORD, name=f"User {i}"))
        share = i % 10
        group = "Sales" if share < 4 else "Sales EU" if share < 6 else "Support" if share < 9 else "Other"
        groups[group].append(directory.user_dn(uid))
    groups["Sales"].append(directory.group_dn("Sales EU"))
    ldif = directory.base_ldif() + "".join(people)
    ldif += "".join(directory.group_ldif(cn, members) for cn, members in groups.items())
    return ldif, groups


def cli(env: dict[str, str], *args: str) -> tuple[float, float, dict[str, object]]:
    """Wall and CPU seconds (user + system, the child's own: robust on a shared machine) and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([TILLKEY, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 and not done.stdout.strip().startswith("{"):
        sys.exit(f"tillkey {' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return took, cpu, json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}


def churn(server: directory.Slapd, groups: dict[str, list[str]], users: int) -> None:
    """5% from Support to Sales, 5% of Sales removed from every group."""
    n = max(1, users // 20)
    moved, removed = groups["Support"][:n], groups["Sales"][:n]
    changes = [
        f"dn: {directory.group_dn('Support')}\nchangetype: modify\ndelete: member\n"
        + "".join(f"member: {m}\n" for m in moved)
        + "-\n",
        f"dn: {directory.group_dn('Sales')}\nchangetype: modify\nadd: member\n"
        + "".join(f"member: {m}\n" for m in moved)
        + "-\n",
        f"dn: {directory.group_dn('Sales')}\nchangetype: modify\ndelete: member\n"
        + "".join(f"member: {m}\n" for m in removed)
        + "-\n",
    ]
    server.modify("\n".join(changes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    reason = directory.available()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory(prefix="tillkey-ldap-bench-") as tmp:
        started = time.perf_counter()
        ldif, groups = generate(args.users)
        server = directory.make(Path(tmp) / "slapd", ldif)
        print(
            f"directory: {args.users} users generated, loaded (slapadd) and served in "
            f"{time.perf_counter() - started:.1f} s"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")},
            "TILLKEY_DATA_DIR": str(Path(tmp) / "data"),
            "TILLKEY_DATABASE_URL": args.database_url,
            "BENCH_BIND_PASSWORD": directory.SERVICE_PW,
        }
        try:
            cli(env, "role", "create", "Sales Manager", "-r", "Magento_Sales::sales")
            cli(env, "role", "create", "Support", "-r", "Magento_Catalog::catalog")
            cli(
                env,
                "idp",
                "add",
                "--name",
                "ad",
                "--protocol",
                "ldap",
                "--actor",
                "admin",
                "--url",
                server.url,
                "--bind-dn",
                directory.SERVICE_DN,
                "--bind-password-env",
                "BENCH_BIND_PASSWORD",
                "--user-base",
                directory.PEOPLE,
                "--user-filter",
                "(&(objectClass=inetOrgPerson)(uid={username}))",
                "--group-base",
                directory.GROUPS,
                "--nested-groups",
                "--sync-interval",
                "0",
                "--role-map",
                f"{directory.group_dn('Sales')}=Sales Manager",
                "--role-map",
                f"{directory.group_dn('Support')}=Support",
                "--json",
            )
            runs = [
                ("first sync (provision)", None),
                ("no change", None),
                ("5% moved, 5% removed", churn),
                ("no change", None),
            ]
            for label, before in runs:
                if before is not None:
                    before(server, groups, args.users)
                took, cpu, out = cli(env, "idp", "sync", "ad", "--json")
                counts = {k: out.get(k) for k in ("members", "created", "updated", "deactivated", "error")}
                print(f"{label:24} wall {took:6.1f} s  cpu {cpu:6.1f} s  {counts}", flush=True)
            took, cpu, _ = cli(env, "idp", "list", "--json")
            print(f"{'(CLI start: idp list)':24} wall {took:6.1f} s  cpu {cpu:6.1f} s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
