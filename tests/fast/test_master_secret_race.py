"""Two processes starting at once on a new data directory (two workers, `serve` and a CLI command)
both create secret.key: exactly one secret wins, and every one of them reads it whole, never a
file that exists but is still empty (crypto/secrets.py)."""

from __future__ import annotations

import multiprocessing
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tillkey.crypto.secrets import MasterSecret

CREATORS = 8


def _load_after(barrier: threading.Barrier, data_dir: Path) -> bytes:
    barrier.wait()
    return MasterSecret.load("", data_dir).derive("test")


def test_concurrent_creators_in_threads_agree(tmp_path: Path) -> None:
    for round_ in range(25):
        data_dir = tmp_path / f"data{round_}"
        barrier = threading.Barrier(CREATORS)
        with ThreadPoolExecutor(CREATORS) as pool:
            keys = list(pool.map(_load_after, [barrier] * CREATORS, [data_dir] * CREATORS))
        assert len(set(keys)) == 1
        assert [p.name for p in data_dir.iterdir()] == ["secret.key"]  # no temporary file left
        assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600


def _process(data_dir: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[bytes]) -> None:
    start.wait()
    out.put(MasterSecret.load("", Path(data_dir)).derive("test"))


def test_concurrent_creators_in_processes_agree(tmp_path: Path) -> None:
    # forkserver: a fork of this (threaded) pytest process is what Python warns against.
    ctx = multiprocessing.get_context("forkserver")
    for round_ in range(2):
        data_dir = tmp_path / f"data{round_}"
        start = ctx.Event()
        out: multiprocessing.Queue[bytes] = ctx.Queue()
        procs = [ctx.Process(target=_process, args=(str(data_dir), start, out)) for _ in range(CREATORS)]
        for p in procs:
            p.start()
        start.set()
        keys = {out.get(timeout=60) for _ in procs}
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert len(keys) == 1
        assert [p.name for p in data_dir.iterdir()] == ["secret.key"]
