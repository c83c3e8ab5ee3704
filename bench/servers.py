"""uvicorn or granian (issue 19): the bare Starlette route and Tillkey's forward-auth on each server,
measured in the same rounds, so the decision to keep uvicorn as the default rests on a measurement.

granian is not a dependency: `pip install granian` into the virtualenv to run this.

    python bench/servers.py                      # 3 rounds of 4 s, 1 worker, wrk -t1 -c32
    python bench/servers.py --rounds 5 --duration 6

Per round: the bare route and forward-auth (a cached ES256 admin token), each on uvicorn (uvloop,
httptools, no access log, as `make bench`) and on granian (ASGI, uvloop, no access log). Prints
requests/s, p99 and server CPU per request, and granian ÷ uvicorn per route, median [range].
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    FORWARD_HEADERS,
    FORWARD_PATH,
    HOST,
    BenchError,
    CpuSnapshot,
    Sample,
    Server,
    Wrk,
    account,
    admin_token,
    ensure_wrk,
    tillkey_cli,
    tillkey_env,
)


class GranianServer(Server):
    """bench/run.py's Server, started by granian instead of uvicorn."""

    def __init__(self, env: dict[str, str], log_path: Path, app: str) -> None:
        super().__init__(1, env, log_path, app)
        granian = shutil.which("granian") or str(Path(sys.executable).with_name("granian"))
        self.cmd = [granian, "--interface", "asgi", "--host", HOST, "--port", str(self.port)]
        self.cmd += ["--workers", "1", "--loop", "uvloop", "--log-level", "warning", "--no-ws"]
        self.cmd += [*(["--factory"] if app.endswith("create_bench_app") else []), app]


@contextmanager
def running(kind: str, env: dict[str, str], tmp: Path, app: str) -> Iterator[Server]:
    log = tmp / f"{kind}-{app.split(':')[0]}.log"
    server = GranianServer(env, log, app) if kind == "granian" else Server(1, env, log, app)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tillkey-servers-"))
    try:
        env = tillkey_env() | {"TILLKEY_DATA_DIR": str(tmp / "data")}
        password = "Pw-" + secrets.token_urlsafe(16)
        tillkey_cli(
            env, "admin", "create", "--username", "perfadmin", "--email", "p@example.com", "--password", password
        )
        tillkey_cli(env, "demo", "seed", "--customer-password", "Pw-" + secrets.token_urlsafe(16))
        with (
            running("uvicorn", env, tmp, "bench.bare:app") as ubare,
            running("granian", env, tmp, "bench.bare:app") as gbare,
            running("uvicorn", env, tmp, "bench.app:create_bench_app") as utk,
            running("granian", env, tmp, "bench.app:create_bench_app") as gtk,
        ):
            wrk = Wrk(ensure_wrk(), 1, 32, admin_token(utk.base, "perfadmin", password))
            targets = {
                ("bare", "uvicorn"): (ubare, "/bench/empty", ()),
                ("bare", "granian"): (gbare, "/bench/empty", ()),
                ("forward-auth", "uvicorn"): (utk, FORWARD_PATH, FORWARD_HEADERS),
                ("forward-auth", "granian"): (gtk, FORWARD_PATH, FORWARD_HEADERS),
            }
            for srv, path, headers in targets.values():
                wrk.run(srv.base + path, args.warmup, headers=headers)
            got: dict[tuple[str, str], list[Sample]] = {k: [] for k in targets}
            for i in range(args.rounds):
                order = list(targets.items())
                if i % 2:
                    order.reverse()
                for key, (srv, path, headers) in order:
                    before = CpuSnapshot.take(srv.pid)
                    s = wrk.run(srv.base + path, args.duration, headers=headers)
                    _, cpu_us = account(before, CpuSnapshot.take(srv.pid), s.requests)
                    if s.non_2xx:
                        raise BenchError(f"{key}: {s.non_2xx} of {s.requests} answers were not 2xx")
                    got[key].append(replace(s, cpu_us=cpu_us))
                    print(
                        f"  round {i + 1} {key[0]:<13} {key[1]:<8} {s.rps:>8.0f} req/s {cpu_us:>5.0f} us CPU/req "
                        f"p99 {s.p99_ms:.2f} ms",
                        flush=True,
                    )
        print(f"\n{'route':<13} {'server':<8} {'req/s':>8} {'p99 ms':>8} {'CPU us':>7}   granian ÷ uvicorn: req/s, CPU")
        for route in ("bare", "forward-auth"):
            u, g = got[route, "uvicorn"], got[route, "granian"]
            for name, samples in (("uvicorn", u), ("granian", g)):
                print(
                    f"{route:<13} {name:<8} {statistics.median(s.rps for s in samples):>8.0f} "
                    f"{statistics.median(s.p99_ms for s in samples):>8.2f} "
                    f"{statistics.median(s.cpu_us for s in samples):>7.0f}"
                )
            rps = [b.rps / a.rps for a, b in zip(u, g, strict=True)]
            cpu = [a.cpu_us / b.cpu_us for a, b in zip(u, g, strict=True) if b.cpu_us]
            print(
                f"{'':<31} {statistics.median(rps):.2f} [{min(rps):.2f}-{max(rps):.2f}], "
                f"{statistics.median(cpu):.2f} [{min(cpu):.2f}-{max(cpu):.2f}]"
            )
    except BenchError as exc:
        print(f"aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
