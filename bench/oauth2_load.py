"""OAuth 2 figures for `make bench`: client-credentials token issuance and token introspection
(requests/s, p99, server CPU per request), driven by wrk with a small Lua script per endpoint.

Both are POSTs of form bodies with HTTP Basic client authentication, exactly what a machine client
and a resource server send; the same request specs feed a one-off sanity check over httpx, so a
broken request fails loudly before any measurement (and in tests/unit/test_bench_oauth2.py).
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx


@dataclass(frozen=True, slots=True)
class FormPost:
    key: str
    path: str
    headers: dict[str, str]
    body: str


def requests_for(client_id: str, client_secret: str, access_token: str) -> list[FormPost]:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    return [
        FormPost("oauth2-token-cc", "/oauth2/token", headers, urlencode({"grant_type": "client_credentials"})),
        FormPost("oauth2-introspect", "/oauth2/introspect", headers, urlencode({"token": access_token})),
    ]


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lua_script(post: FormPost) -> str:
    """A wrk script that sends this POST on every request."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(post.body)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in post.headers.items()]
    return "\n".join(lines) + "\n"


def check(base: str, posts: list[FormPost]) -> None:
    """Each request once: 200 and the answer a real client expects, or ValueError."""
    for post in posts:
        r = httpx.post(base + post.path, content=post.body, headers=post.headers, timeout=10)
        if r.status_code != 200:
            raise ValueError(f"POST {post.path} answered {r.status_code}: {r.text[:200]}")
        body = r.json()
        if post.key == "oauth2-token-cc" and not body.get("access_token"):
            raise ValueError(f"POST {post.path} issued no access token: {r.text[:200]}")
        if post.key == "oauth2-introspect" and body.get("active") is not True:
            raise ValueError(f"POST {post.path} did not find the token active: {r.text[:200]}")


SETUP_TOKENS = 2  # tokens setup() has issued by the time it returns (its own, and check()'s)


def setup(base: str, client_id: str, client_secret: str, scratch: Path) -> list[tuple[FormPost, Path]]:
    """A token to introspect, the request specs checked once, and a Lua script for each."""
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    r = httpx.post(
        base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    if r.status_code != 200:
        raise ValueError(f"client credentials token: {r.status_code} {r.text[:200]}")
    posts = requests_for(client_id, client_secret, r.json()["access_token"])
    check(base, posts)
    out = []
    for post in posts:
        path = scratch / f"{post.key}.lua"
        path.write_text(lua_script(post))
        out.append((post, path))
    return out


def summarize(samples: dict[str, list[Any]]) -> dict[str, Any]:
    """Medians per endpoint of wrk samples (bench/run.py's Sample: rps, p50_ms, p99_ms, cpu_us)."""
    return {
        key: {
            "rps": statistics.median(s.rps for s in got),
            "p50_ms": statistics.median(s.p50_ms for s in got),
            "p99_ms": statistics.median(s.p99_ms for s in got),
            "cpu_us": statistics.median(s.cpu_us for s in got),
            "rounds": len(got),
        }
        for key, got in samples.items()
        if got
    }


def measure(
    posts: list[tuple[FormPost, Path]], run_one: Callable[[str, Path], Any], rounds: int
) -> dict[str, list[Any]]:
    """`run_one(path, script)` runs wrk once and answers a Sample; endpoints alternate per round."""
    samples: dict[str, list[Any]] = {post.key: [] for post, _ in posts}
    for i in range(rounds):
        for post, script in posts if i % 2 == 0 else list(reversed(posts)):
            samples[post.key].append(run_one(post.path, script))
    return samples
