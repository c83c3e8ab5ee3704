"""The OAuth 2 part of `make bench`, without benchmarking: the requests it would send are right
(checked once against a live server), the wrk scripts say what they should, and the figures are
the medians of what wrk reports. wrk itself is replaced by a canned report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import oauth2_load
from bench.run import Sample, measure_oauth2, parse_wrk

from tests.conftest import Server

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:1/oauth2/token
  1 threads and 32 connections
  Latency Distribution
     50%    2.00ms
     75%    3.00ms
     90%    4.00ms
     99%   12.50ms
  4000 requests in 2.00s, 1.00MB read
Requests/sec:   2000.00
Transfer/sec:    500.00KB
"""


def test_lua_script_posts_the_form_with_basic_auth() -> None:
    (token, introspect) = oauth2_load.requests_for("tkc_a", 'se"cret', "eyJ.x.y")
    script = oauth2_load.lua_script(token)
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "grant_type=client_credentials"' in script
    assert 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"' in script
    assert 'wrk.headers["Authorization"] = "Basic ' in script
    assert introspect.path == "/oauth2/introspect" and introspect.body == "token=eyJ.x.y"
    assert oauth2_load._lua_string('a"b\\c') == '"a\\"b\\\\c"'


class _FakeWrk:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Path | None]] = []

    def run(self, url: str, seconds: int, script: Path | None = None) -> Sample:
        self.calls.append((url, seconds, script))
        return parse_wrk(WRK_OUTPUT)


class _FakeServer:
    workers = 1
    pid = os.getpid()

    def __init__(self, base: str) -> None:
        self.base = base


def test_bench_oauth2_figures_against_a_live_server(sqlite_server_factory: Any, tmp_path: Path) -> None:
    srv: Server = sqlite_server_factory()
    client = srv.cli_json(
        "client",
        "create",
        "--name",
        "bench",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
    )
    wrk = _FakeWrk()
    answered: dict[str, int] = {}
    figures = measure_oauth2(_FakeServer(srv.url), wrk, client, tmp_path, 2, 3, 1, answered)  # type: ignore[arg-type]
    assert set(figures) == {"oauth2-token-cc", "oauth2-introspect"}
    for fig in figures.values():
        assert fig["rps"] == 2000.0 and fig["p99_ms"] == 12.5 and fig["rounds"] == 3
    # warm-up once per endpoint, then 3 rounds of each, every call with its POST script
    assert len(wrk.calls) == 2 + 6 and all(script is not None and script.exists() for _, _, script in wrk.calls)
    assert {url for url, _, _ in wrk.calls} == {srv.url + "/oauth2/token", srv.url + "/oauth2/introspect"}
    # Every 2xx counted, warm-up included, for the audit check; the issuance peak by requests/s.
    per_run = parse_wrk(WRK_OUTPUT).requests
    assert answered == {"oauth2-token-cc": 4 * per_run, "oauth2-introspect": 4 * per_run, "peak": 2000}
