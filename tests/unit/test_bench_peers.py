"""`make bench-peers` without the peers and without benchmarking: Tillkey's side of every pair is
set up against a live server exactly as the bench does it (Medusa-style logins, the who-am-I routes,
client credentials and introspection of a live token), and the ratios and report come out of what
wrk reports. wrk is replaced by canned reports; a second "peer" is the same server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from bench import peers
from bench.run import BenchError, Sample, parse_wrk

from tests.conftest import Server


def _wrk_output(rps: float) -> str:
    return f"""Running 1s test @ http://127.0.0.1:1/x
  Latency Distribution
     50%    1.00ms
     99%   {1000 / rps:.2f}ms
  {int(rps)} requests in 1.00s, 1.00MB read
Requests/sec:   {rps:.2f}
"""


class _FakeWrk:
    """Answers `rps_by_url` for each URL, and records each call."""

    def __init__(self, rps_by_url: dict[str, float]) -> None:
        self.rps_by_url = rps_by_url
        self.calls: list[tuple[str, Path | None, str | None]] = []

    def run(
        self, url: str, seconds: int, script: Path | None = None, timeout_s: int = 2, token: str | None = None
    ) -> Sample:
        self.calls.append((url, script, token))
        return parse_wrk(_wrk_output(self.rps_by_url[url]))


def test_peer_pairs_against_a_live_tillkey(sqlite_server_factory: Any, tmp_path: Path) -> None:
    srv: Server = sqlite_server_factory()
    password = "Pw-bench-peers-123"
    client = peers.seed_tillkey(srv.cli_json, password)
    # The admin logs in through POST /auth/user/emailpass, as against Medusa; the customer as in Magento.
    tk = peers.tillkey_side(os.getpid(), srv.url, password, client, env={})

    me = srv.url + "/admin/users/me"
    check = peers.bearer_check(me, tk.admin_token, peers.ADMIN_EMAIL)  # also: 401 without the token
    peers.bearer_check(srv.url + "/rest/V1/customers/me", tk.customer_token, peers.CUSTOMER_EMAIL)
    with pytest.raises(BenchError, match="answered 401"):
        peers.bearer_check(me, tk.customer_token, peers.ADMIN_EMAIL)  # a customer is no admin
    token, introspect = peers.oauth2_targets(
        "tillkey", os.getpid(), srv.url, "/oauth2/token", "/oauth2/introspect", client, tmp_path, "jwt/ES256"
    )
    assert introspect is not None
    users_me = peers.Pair(
        "users-me",
        "GET /admin/users/me",
        "same server twice",
        peers.Target("tillkey", os.getpid(), me, tk.admin_token, verify=check),
        peers.Target("peer", os.getpid(), me + "?peer", tk.admin_token, verify=check),
        target=20.0,
    )
    oauth = peers.Pair("introspect", "POST introspection", "", introspect, token)
    wrk = _FakeWrk({me: 6000.0, me + "?peer": 300.0, introspect.url: 1000.0, token.url: 2000.0})
    results = [peers.measure(p, wrk, seconds=1, rounds=3, warmup=1) for p in (users_me, oauth)]  # type: ignore[arg-type]

    assert results[0]["ratio"] == 20.0 and results[0]["per_round"] == [20.0] * 3
    assert results[0]["tillkey"]["rps"] == 6000.0 and results[0]["peer"]["p99_ms"] == pytest.approx(3.33)
    assert results[1]["ratio"] == 0.5
    # warm-up on each side, then each side once per round; GETs carry the token, POSTs a script
    assert len(wrk.calls) == 2 * (2 + 2 * 3)
    assert all(tok == tk.admin_token and script is None for url, script, tok in wrk.calls if url.startswith(me))
    scripts = [script for url, script, _ in wrk.calls if not url.startswith(me)]
    assert all(s is not None and 'wrk.method = "POST"' in s.read_text() for s in scripts)
    # Each introspection run gets a token issued just before it, still active after the run.
    introspect_bodies = {s.read_text() for url, s, _ in wrk.calls if url == introspect.url and s is not None}
    assert len(introspect_bodies) == 1  # the same file, rewritten: its last token is the live one
    introspect.verify()

    machine = {"nproc": 2, "cpu_model": "x", "python": "CPython", "loadavg_before": 0.0, "wrk": "wrk"}
    config = {"threads": 1, "connections": 32, "duration": 1, "rounds": 3}
    text = peers.report(machine, config, results)
    assert text.index("ratios: Tillkey / peer") < text.index("req/s")
    assert "20.00 [20.00-20.00]" in text and ">=20x ok" in text and "0.50 [0.50-0.50]" in text


def test_scratch_folder_stays_outside_the_repository(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="inside the repository"):
        peers.peer_dir(str(peers.ROOT / "bench" / "scratch"))
    assert peers.peer_dir(str(tmp_path / "p")) == (tmp_path / "p").resolve()
