"""Schemathesis against the live /openapi.json: no 5xx, documented statuses and content types,
bodies that match the schema. Bounded for CI; run it longer with:

    SCHEMATHESIS_MAX_EXAMPLES=500 .venv/bin/pytest tests/test_fuzz_openapi.py -s
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server, start_server

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """One server for the three runs, and each caller's token, taken before any run: a run changes
    only what its own caller may change (the admin's runs last, see the order below), and a token
    taken up front stays valid whatever the earlier runs did to sign-in state (lockouts, throttles)."""
    srv = start_server(tmp_path_factory.mktemp("fuzz") / "srv")
    try:
        srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
        srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
        tokens = {
            "admin": srv.token("admin", "alice", ADMIN_PASSWORD),
            "customer": srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD),
        }
        yield srv, tokens
    finally:
        srv.stop()


# The admin may change anything (accounts included), so it runs after the others on the shared server.
@pytest.mark.parametrize("who", ["customer", "anonymous", "admin"])
def test_schemathesis_finds_nothing(seeded: tuple[Server, dict[str, str]], who: str, tmp_path: Path) -> None:
    pytest.importorskip("schemathesis", reason="schemathesis is in the dev extras")
    srv, tokens = seeded
    headers = ["-H", f"Authorization: Bearer {tokens[who]}"] if who in tokens else []
    cmd = [
        SCHEMATHESIS, "run", f"{srv.url}/openapi.json", "--checks", CHECKS,
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"), "--workers", "2",
        "--seed", "20261128", "--no-color", "--request-timeout", "30",
        # The coverage phase crashes inside hypothesis on CPython 3.11 ("AST constructor recursion
        # depth mismatch" while describing a filter lambda) before sending anything.
        "--phases", "examples,fuzzing,stateful",
        # These revoke the very token the run authenticates with; they are covered elsewhere.
        "--exclude-path-regex", "revoke|logout",
        *headers,
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-12000:] + res.stderr[-2000:]
