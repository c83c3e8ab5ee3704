"""Verified traffic during a login flood: p99 of GET /rest/V1/products/{sku} with and without
hundreds of concurrent wrong-password logins (target: within 2x).

    make bench-flood            # about 90 s
    python bench/flood.py --duration 20

Each flood request names a different user, and the login rate limits are lifted, so every one
costs a real argon2id verification (default cost): the worst case for the hashing pool.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import HOST, BenchError, Sample, admin_token, ensure_wrk, parse_wrk, serving, tillkey_cli

SETTLE = 2  # seconds between starting the flood and measuring beside it

# A different username per request: the per-username throttle would otherwise stop the hashing.
FLOOD_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"username":"flood' .. counter .. '-' .. math.random(1, 1000000000) .. '","password":"Wrong-pass-123"}'
  return wrk.format("POST", "/rest/V1/integration/admin/token",
    {["Content-Type"] = "application/json",
     ["X-Forwarded-For"] = "203.0.113.9", ["X-Forwarded-Proto"] = "https"}, body)
end
"""


def wrk(binary: str, url: str, seconds: int, connections: int, *extra: str) -> subprocess.Popen[str]:
    cmd = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], seconds: int) -> Sample:
    out, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed: {err or out}")
    return parse_wrk(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="quiet/flooded pairs (default 3; the median is reported)")
    ap.add_argument("--flood-connections", type=int, default=200, help="concurrent flood connections (default 200)")
    ap.add_argument(
        "--default-limits",
        action="store_true",
        help="keep the default login rate limits (the flood then mostly gets 429)",
    )
    args = ap.parse_args()
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tillkey-flood-") as tmp_name:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")}
        env |= {
            "TILLKEY_DATA_DIR": str(tmp / "data"),
            "TILLKEY_LOG_LEVEL": "WARNING",
            "TILLKEY_ADMIN_2FA": "off",
            "TILLKEY_RATE_LIMIT_DEFAULT": "",
            "TILLKEY_RATE_LIMIT_LOGIN_IP": "",
            "TILLKEY_RATE_LIMIT_LOGIN_USERNAME": "",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        # Hashing cost and login admission may be varied from the environment, to compare settings.
        tunable = ("TILLKEY_ARGON2_", "TILLKEY_LOGIN_", "TILLKEY_PASSWORD_HASH_", "TILLKEY_REFUSAL_")
        env |= {k: v for k, v in os.environ.items() if k.startswith(tunable)}
        if args.default_limits:
            # Login limits at their defaults; the general per-IP budget stays lifted, or the
            # verified client (1000+ req/s from one address) would be limited itself.
            for suffix in ("LOGIN_IP", "LOGIN_USERNAME"):
                del env[f"TILLKEY_RATE_LIMIT_{suffix}"]
            # The flood and the verified client come from different (proxied) addresses, as they
            # would in the field; otherwise the flood would spend the verified client's budget.
            env["TILLKEY_TRUSTED_PROXIES"] = HOST
        password = "Pw-" + secrets.token_urlsafe(16)
        tillkey_cli(env, "admin", "create", "--username", "perf", "--email", "perf@example.com", "--password", password)
        tillkey_cli(env, "demo", "seed", "--customer-password", "Pw-" + secrets.token_urlsafe(16))
        script = tmp / "flood.lua"
        script.write_text(FLOOD_LUA)
        with serving(1, env, tmp) as server:
            token = admin_token(server.base, "perf", password)
            url = f"http://{HOST}:{server.port}/rest/V1/products/24-MB01"
            auth = ("-H", f"Authorization: Bearer {token}")
            auth += ("-H", "X-Forwarded-For: 198.51.100.7", "-H", "X-Forwarded-Proto: https")
            finish(wrk(binary, url, 2, 8, *auth), 2)  # warm-up
            # Rounds of (quiet, flooded) measurements, so drift on a shared machine hits both alike.
            rounds = []
            for _ in range(args.rounds):
                quiet = finish(wrk(binary, url, args.duration, 8, *auth), args.duration)
                flood = wrk(binary, server.base, args.duration + SETTLE + 1, args.flood_connections, "-s", str(script))
                time.sleep(SETTLE)  # past the flood's opening burst of connections, into its steady state
                during = finish(wrk(binary, url, args.duration, 8, *auth), args.duration)
                rounds.append((quiet, during, finish(flood, args.duration + SETTLE + 1)))
    print(f"{'':24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}")
    ratios = []
    for i, (quiet, during, flooded) in enumerate(rounds, 1):
        print(f"round {i}")
        for name, smp in (
            ("products, quiet", quiet),
            ("products, during flood", during),
            ("flood (wrong logins)", flooded),
        ):
            cols = f"{smp.rps:>9.0f}{smp.p50_ms:>9.2f}{smp.p99_ms:>9.2f}{smp.non_2xx:>9}{smp.socket_errors:>8}"
            print(f"  {name:22}{cols}")
        ratios.append(during.p99_ms / quiet.p99_ms if quiet.p99_ms else float("inf"))
    ratio = statistics.median(ratios)
    print(f"\np99 during flood / quiet p99, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"median: {ratio:.2f} (target <= 2.0) {'ok' if ratio <= 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
