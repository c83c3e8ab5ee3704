"""Audit writer throughput: how many records a second reach the chain under a flood, and how many
are lost. No server: the AuditLog against a fresh SQLite file (or --database-url).

    python bench/audit_writer.py                 # about 30 s
    python bench/audit_writer.py --records 100000 --producers 400

Two floods, like the two kinds of callers:
- `soon`: producers that cannot wait (access denials) call record_soon as fast as they can;
- `issue`: token endpoints, one record per request, each request yielding to the loop once
  (record_queued where the release has it, else record_soon, as the token endpoint used to).
Printed per flood: records offered, records in the chain, lost, seconds, records/s written.
Runs against whichever tillkey is importable (PYTHONPATH=src of another checkout to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import tempfile
import time
from pathlib import Path
from typing import Any

from tillkey import audit
from tillkey.audit import AuditLog
from tillkey.clock import Clock
from tillkey.store import db as store_db
from tillkey.store.audit import AuditQuery


def make_log(db: store_db.Database) -> AuditLog:
    kw: dict[str, Any] = {}
    if "key" in inspect.signature(AuditLog).parameters:
        kw["key"] = b"bench-key-" * 4
    return AuditLog(db, Clock(), **kw)


async def flood(url: str, kind: str, records: int, producers: int) -> tuple[int, int, float]:
    db = store_db.Database(url)
    log = make_log(db)
    before = len(await log.search(AuditQuery(limit=10_000_000)))
    log.start()
    queued = getattr(log, "record_queued", None)
    per = records // producers

    async def producer(p: int) -> None:
        for i in range(per):
            if kind == "issue":
                if queued is not None:
                    await queued(audit.TOKEN_ISSUED, actor_type=3, actor_id=p, details={"i": i, "format": "jwt"})
                else:
                    log.record_soon(audit.TOKEN_ISSUED, actor_type=3, actor_id=p, details={"i": i, "format": "jwt"})
                await asyncio.sleep(0)
            else:
                log.record_soon(audit.ACCESS_DENIED, outcome=audit.FAILURE, actor_id=p, details={"i": i})
                if i % 100 == 0:
                    await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(*(producer(p) for p in range(producers)))
    await log.stop()
    elapsed = time.perf_counter() - started
    written = len(await log.search(AuditQuery(limit=10_000_000))) - before
    report = await log.check()
    await db.dispose()
    if not report.ok:
        raise SystemExit(f"chain broken after the flood: {report.first_break}")
    return per * producers, written, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=40_000, help="records per flood (default 40000)")
    ap.add_argument("--producers", type=int, default=200, help="concurrent producers (default 200)")
    ap.add_argument("--database-url", default="", help="SQLAlchemy async URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tillkey-audit-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
        store_db.upgrade(url)
        print(f"tillkey from {Path(audit.__file__).parent.parent}")
        print(f"{'flood':<6} {'offered':>8} {'written':>8} {'lost':>7} {'seconds':>8} {'records/s':>10}")
        for kind in ("soon", "issue"):
            offered, written, elapsed = asyncio.run(flood(url, kind, args.records, args.producers))
            lost = offered - written
            print(f"{kind:<6} {offered:>8} {written:>8} {lost:>7} {elapsed:>8.2f} {written / elapsed:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
