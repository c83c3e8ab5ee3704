"""Does the token cache stay bounded? RSS of a serving worker while it sees N distinct tokens.

Run by bench/run.py against its 1-worker SQLite server (or alone, given a server): mints N valid
login tokens for one admin with the server's own signing key (a second Tillkey runtime on the same
data dir, started without migrations or sync), sends each once to a guarded route over a few
pipelined keep-alive connections, and reads the worker's VmRSS from /proc at checkpoints. Every
token is verified (a signature check: a cache miss) and cached by the worker; its cache holds at
most TILLKEY_TOKEN_CACHE_SIZE entries (default 100,000, the oldest dropped first), so RSS should
rise until the cache is full and stay flat after it.

    python -m bench.token_memory --base http://127.0.0.1:PORT --pid PID --uid ADMIN_ID --count 1000000

(with the server's TILLKEY_* environment). Prints one JSON object: checkpoints of tokens sent,
RSS in MiB, seconds since start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PATH = "/bench/empty-protected"
CONNECTIONS = 4
DEPTH = 32  # requests in flight per connection (HTTP/1.1 pipelining: uvicorn answers them in order)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def checkpoints(count: int) -> list[int]:
    marks = {count}
    step = 100_000 if count >= 500_000 else max(1, count // 10)
    marks.update(range(step, count, step))
    return sorted(marks)


async def _connection(host: str, port: int, tokens: asyncio.Queue[bytes | None], done: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer ".encode()
    try:
        finished = False
        while not finished:
            # The first token waits; then whatever is queued, up to DEPTH (never waiting for more).
            batch: list[bytes] = []
            token = await tokens.get()
            while token is not None:
                batch.append(head + token + b"\r\n\r\n")
                if len(batch) >= DEPTH or tokens.empty():
                    break
                token = tokens.get_nowait()
            finished = token is None
            if not batch:
                break
            writer.write(b"".join(batch))
            for _ in batch:
                status_head = await reader.readuntil(b"\r\n\r\n")
                status = status_head[9:12]
                if status != b"200":
                    raise RuntimeError(f"{PATH} answered {status.decode()} to a fresh token")
                length = 0
                for line in status_head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                done[0] += 1
    finally:
        writer.close()


async def run(base: str, pid: int, uid: int, count: int) -> dict[str, object]:
    from tillkey.principal import UserType
    from tillkey.runtime import Tillkey
    from tillkey.settings import Settings

    runtime = Tillkey(Settings())
    await runtime.start(migrate=False, sync=False)
    try:
        url = urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CONNECTIONS * DEPTH * 4)
        done = [0]
        started = time.monotonic()
        points = [{"tokens": 0, "rss_mb": round(rss_mb(pid), 1), "seconds": 0.0}]
        workers = [asyncio.create_task(_connection(host, port, queue, done)) for _ in range(CONNECTIONS)]
        marks = checkpoints(count)
        sent = 0
        for mark in marks:
            while sent < mark:
                minted = await runtime.issuer.login_token(int(UserType.ADMIN), uid, 3600)
                await queue.put(minted.token.encode())
                sent += 1
                if any(w.done() for w in workers):
                    break
            while done[0] < mark and not any(w.done() for w in workers):  # noqa: ASYNC110 (a counter, not an event)
                await asyncio.sleep(0.01)
            for w in workers:
                if w.done() and w.exception() is not None:
                    raise w.exception()  # type: ignore[misc]
            rss = round(rss_mb(pid), 1)
            points.append({"tokens": mark, "rss_mb": rss, "seconds": round(time.monotonic() - started, 1)})
            print(f"  token cache: {mark:>9,} distinct tokens, worker RSS {rss:7.1f} MiB", file=sys.stderr, flush=True)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        return {"tokens": count, "path": PATH, "cache_size": runtime.settings.token_cache_size, "points": points}
    finally:
        await runtime.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--base", required=True, help="the server, http://127.0.0.1:PORT")
    ap.add_argument("--pid", type=int, required=True, help="the worker process whose RSS is read")
    ap.add_argument("--uid", type=int, required=True, help="an admin's id, for whom the tokens are minted")
    ap.add_argument("--count", type=int, default=1_000_000)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args.base, args.pid, args.uid, args.count))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
