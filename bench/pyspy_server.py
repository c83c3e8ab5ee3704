"""Sample a real server under wrk with py-spy: where a hot route's time goes, uvicorn included.

bench/profile_forward_auth.py prices each piece in process; this one shows what the server adds
around them (httptools parsing, uvicorn's protocol code, the event loop), which only a live
server under load has. py-spy is a profiling tool, not a dependency: `pip install py-spy`.

    python bench/pyspy_server.py                              # forward-auth, 10 s, top functions
    python bench/pyspy_server.py --path /bench/empty --seconds 6
    python bench/pyspy_server.py --bare                       # the bare Starlette route instead
    python bench/pyspy_server.py --oauth2 oauth2-token-cc     # client-credentials issuance (POST)
    python bench/pyspy_server.py --oauth2 oauth2-token-cc --oauth2-format opaque   # opaque tokens
    python bench/pyspy_server.py --flamegraph /tmp/fa.svg     # a flame graph as well

Prints the functions holding the most samples, by own time and by time including callees.
"""

from __future__ import annotations

import argparse
import collections
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import oauth2_load  # noqa: E402
from bench.run import (  # noqa: E402
    FORWARD_HEADERS,
    FORWARD_PATH,
    BenchError,
    Wrk,
    admin_token,
    ensure_wrk,
    serving,
    tillkey_cli,
    tillkey_env,
)


def top(collapsed: str, n: int) -> str:
    """Own and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    for title, counter in (("own time", own), ("including callees", inclusive)):
        out.append(f"-- {title}:")
        out += [f"  {c / total:6.1%}  {frame}" for frame, c in counter.most_common(n)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--path", default=FORWARD_PATH, help=f"route to load (default {FORWARD_PATH})")
    ap.add_argument("--bare", action="store_true", help="profile bench/bare.py's route instead")
    ap.add_argument(
        "--oauth2",
        choices=["oauth2-token-cc", "oauth2-introspect"],
        help="profile an OAuth 2 POST instead (bench/oauth2_load.py): client-credentials issuance or introspection",
    )
    ap.add_argument(
        "--oauth2-format",
        choices=["jwt", "opaque"],
        default="jwt",
        help="access tokens the client-credentials grant issues (TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT, default jwt)",
    )
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--flamegraph", type=Path, help="also write a flame graph (SVG) here")
    ap.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    ap.add_argument("--database-url", help="an existing, empty database instead of SQLite (scale-out mode)")
    ap.add_argument("--redis-url", help="Redis for scale-out mode, e.g. redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tillkey-pyspy-"))
    try:
        env = tillkey_env() | {"TILLKEY_DATA_DIR": str(tmp / "data")}
        env["TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT"] = args.oauth2_format
        if args.database_url:
            env["TILLKEY_DATABASE_URL"] = args.database_url
        if args.redis_url:
            env["TILLKEY_REDIS_URL"] = args.redis_url
        password = "Pw-" + secrets.token_urlsafe(16)
        tillkey_cli(
            env, "admin", "create", "--username", "perfadmin", "--email", "p@example.com", "--password", password
        )
        tillkey_cli(env, "demo", "seed", "--customer-password", "Pw-" + secrets.token_urlsafe(16))
        grant = ["--type", "confidential", "--grant", "client_credentials", "--scope", "Magento_Catalog::products"]
        client = tillkey_cli(env, "client", "create", "--name", "bench", *grant)
        path = "/bench/empty" if args.bare else args.path
        with serving(1, env, tmp) as tk, serving(1, env, tmp, app="bench.bare:app") as bare:
            server = bare if args.bare else tk
            wrk = Wrk(ensure_wrk(), 1, 32, admin_token(tk.base, "perfadmin", password))
            headers = FORWARD_HEADERS if path == FORWARD_PATH else ()
            script: Path | None = None
            if args.oauth2:
                posts = oauth2_load.setup(tk.base, client["client_id"], client["client_secret"], tmp)
                post, script = next((p, s) for p, s in posts if p.key == args.oauth2)
                path = post.path
            wrk.run(server.base + path, 2, script, headers=headers)  # warm up
            out = tmp / "stacks.txt"
            record = [pyspy, "record", "--pid", str(server.pid), "--rate", str(args.rate), "--nonblocking"]
            record += ["--duration", str(args.seconds), "--format", "raw", "--output", str(out)]
            spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            load = threading.Thread(
                target=wrk.run, args=(server.base + path, args.seconds + 1, script), kwargs={"headers": headers}
            )
            load.start()
            _, err = spy.communicate(timeout=args.seconds + 60)
            load.join()
            if spy.returncode != 0:
                print(f"py-spy failed: {err.decode(errors='replace')}", file=sys.stderr)
                return 1
            text = out.read_text()
            if args.raw is not None:
                args.raw.write_text(text)
            method = "POST" if script is not None else "GET"
            print(f"{method} {path} ({'bare Starlette' if args.bare else 'Tillkey'}), {args.seconds} s under wrk -c32:")
            print(top(text, args.top))
            if args.flamegraph is not None:
                fold = [pyspy, "record", "--pid", str(server.pid), "--duration", "3", "--nonblocking"]
                fold += ["--output", str(args.flamegraph)]
                load = threading.Thread(
                    target=wrk.run, args=(server.base + path, 4, script), kwargs={"headers": headers}
                )
                load.start()
                subprocess.run(fold, capture_output=True, check=False, timeout=60)
                load.join()
                print(f"flame graph: {args.flamegraph}")
    except BenchError as exc:
        print(f"aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
