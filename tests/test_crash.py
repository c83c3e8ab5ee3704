"""kill -9 in the middle of load: every revocation that was answered 200 survives the crash (the
token stays refused after a restart, and its audit record is in the chain), and nothing is
corrupted (the audit chain verifies; SQLite's integrity check passes)."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import queue
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import CUSTOMER_PASSWORD, Server, start_server

RONI, JOHN = "roni_cost@example.com", "john.smith@example.com"
ME = "/rest/V1/customers/me"
REVOCABLE = 40  # roni's tokens revoked one by one (per-token grain)
CONTROL = 4  # roni's tokens nobody revokes: they must still work after the restart
JOHNS = 6  # john's tokens, revoked together by one revoke-customer-token (per-user grain)
KILL_AFTER = 16  # answered revocations before the kill
MAX_LOAD_REQUESTS = 3000  # per load thread: the load stops by itself


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def _tokens(srv: Server, username: str, n: int) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: srv.token("customer", username, CUSTOMER_PASSWORD), range(n)))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_mid_load_loses_no_answered_revocation(tmp_path: Path, backend: str) -> None:
    srv = start_server(tmp_path / "srv", backend)
    try:
        srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)
        revocable, control = _tokens(srv, RONI, REVOCABLE), _tokens(srv, RONI, CONTROL)
        johns = _tokens(srv, JOHN, JOHNS)

        # What the revokers send, in order: per-token logouts, with john's per-user revoke among them.
        work: queue.Queue[tuple[str, str]] = queue.Queue()
        for i, token in enumerate(revocable):
            work.put(("/tillkey/v1/logout", token))
            if i == KILL_AFTER // 2:
                work.put(("/rest/V1/integration/customer/revoke-customer-token", johns[0]))
        answered: list[tuple[str, str]] = []  # (path, token) of every revocation answered 200
        lock = threading.Lock()
        enough = threading.Event()
        stop = threading.Event()

        def revoke() -> None:
            with httpx.Client(base_url=srv.url, timeout=10) as c:
                while not stop.is_set():
                    try:
                        path, token = work.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        r = c.post(path, headers={"Authorization": f"Bearer {token}"})
                    except httpx.HTTPError:
                        return  # the server is gone; this answer never came
                    if r.status_code == 200:
                        with lock:
                            answered.append((path, token))
                            if len(answered) >= KILL_AFTER:
                                enough.set()

        def load(n: int) -> None:
            # Reads on the hot path and logins (writes: tokens and audit records) while revoking.
            with httpx.Client(base_url=srv.url, timeout=10) as c:
                for i in range(MAX_LOAD_REQUESTS):
                    if stop.is_set():
                        return
                    try:
                        if i % 5 == n:
                            c.post(
                                "/rest/V1/integration/customer/token",
                                json={"username": RONI, "password": CUSTOMER_PASSWORD},
                            )
                        else:
                            c.get(ME, headers={"Authorization": f"Bearer {control[i % CONTROL]}"})
                    except httpx.HTTPError:
                        return

        threads = [threading.Thread(target=revoke) for _ in range(3)]
        threads += [threading.Thread(target=load, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        try:
            assert enough.wait(60), f"only {len(answered)} revocations answered: {srv.log()}"
            assert srv.proc is not None
            srv.proc.kill()  # SIGKILL: no shutdown, no flush, requests cut mid-flight
            srv.proc.wait()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert work.qsize() > 0, "the kill came after the last revocation, not in the middle"

        if backend == "sqlite":
            db = sqlite3.connect(srv.data_dir / "tillkey.db")
            try:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            finally:
                db.close()

        srv.start()
        with lock:
            done = list(answered)
        per_token = [token for path, token in done if path.endswith("/logout")]
        john_revoked = any(path.endswith("revoke-customer-token") for path, _ in done)
        dead = per_token + (johns if john_revoked else [])
        assert len(per_token) >= KILL_AFTER - 1
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            lost = [t for t in dead if c.get(ME, headers={"Authorization": f"Bearer {t}"}).status_code != 401]
            assert not lost, f"{len(lost)} of {len(dead)} revocations answered 200 were lost in the crash"
            # The check can fail: tokens nobody revoked still work after the restart.
            for t in control:
                assert c.get(ME, headers={"Authorization": f"Bearer {t}"}).status_code == 200

        # Nothing corrupted: the hash chain verifies, and holds the record of every answered revocation.
        assert "audit chain intact" in srv.cli("audit", "verify").stdout
        records = srv.cli("audit", "search", "--event", "token.revoked", "--limit", "500", "--json").stdout
        audited = {json.loads(line)["details"].get("jti") for line in records.splitlines() if line.strip()}
        missing = [t for t in per_token if _jti(t) not in audited]
        assert not missing, f"{len(missing)} answered revocations have no audit record"
        if john_revoked:
            assert '"scope":"all"' in records.replace(" ", "")
    finally:
        srv.stop()
        srv.database.drop()
