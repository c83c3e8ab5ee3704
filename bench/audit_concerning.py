"""Time of a console detail page's audit trail query (store.audit.concerning) on a large log.

Fills a fresh database with N audit records shaped like a busy shop's (most of them sign-ins,
tokens and sessions of 2,000 accounts; one in ten an account, credential or revocation event
naming a target), then times `AuditLog.concerning` for one account, and prints the query plans.
Rows are inserted directly (not chained): this measures reading, not the writer.

    .venv/bin/python bench/audit_concerning.py [N] [sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from tests import inprocess  # noqa: E402

from tillkey.audit.chain import canonical  # noqa: E402
from tillkey.audit.query import mentions  # noqa: E402
from tillkey.store import audit as repo  # noqa: E402
from tillkey.store.audit import AuditRecord  # noqa: E402

TRAFFIC = ("login.success", "token.issued", "session.created", "login.failure")
TARGETED = ("account.changed", "token.revoked", "api_key.created", "integration.changed")


def records(n: int, start: int) -> list[AuditRecord]:
    rng = random.Random(start)
    out = []
    for seq in range(start, start + n):
        if rng.random() < 0.9:
            event, actor, details = rng.choice(TRAFFIC), rng.randrange(1, 2000), {"methods": ["pwd"]}
        else:
            event, actor = rng.choice(TARGETED), rng.randrange(1, 20)
            details = {"target_type": 2, "target_id": rng.randrange(1, 2000), "change": "role"}
        out.append(
            AuditRecord(
                seq,
                1_700_000_000_000 + seq,
                event,
                "success",
                2,
                actor,
                f"user{actor}",
                "10.0.0.1",
                None,
                None,
                canonical(details),
                "0" * 64,
                "0" * 64,
            )
        )
    return out


async def main(n: int, backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, inprocess.database(backend, Path(tmp)) as settings:
        async with inprocess.running(Path(tmp), **settings) as t:
            first = 10_000_000  # after the records the start-up wrote
            for start in range(first, first + n, 20_000):
                async with t.tk.db.transaction() as s:
                    await repo.add(s, records(min(20_000, first + n - start), start))
            async with t.tk.db.transaction() as s:
                await s.execute(text("ANALYZE"))
            times = []
            for target in range(1, 41):
                began = time.perf_counter()
                found = await t.tk.audit.concerning(2, target, limit=20)
                times.append((time.perf_counter() - began) * 1000)
            print(
                f"{backend}, {n} records: concerning(admin, limit 20) median {statistics.median(times):.1f} ms,"
                f" max {max(times):.1f} ms (last found {len(found)})"
            )
            like = mentions(2, 7)[0].replace("_", "\\_")
            explain = "EXPLAIN QUERY PLAN" if backend == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS)"
            async with t.tk.db.session() as s:
                for sql in (
                    "SELECT seq FROM audit_events WHERE actor_type = 2 AND actor_id = 7 ORDER BY seq DESC LIMIT 20",
                    "SELECT seq FROM audit_events WHERE event = 'account.changed' AND details LIKE :pattern ESCAPE '\\'"
                    " ORDER BY seq DESC LIMIT 20",
                ):
                    print(" ", sql[:90], "…")
                    for row in await s.execute(text(f"{explain} {sql}"), {"pattern": f"%{like}%"}):
                        print("    ", row[-1])


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 200_000, args[1] if len(args) > 1 else "sqlite"))
