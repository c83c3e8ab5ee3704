"""Append-only JSON-lines files (the audit mirror, the audit anchors, the mail outbox): one owner for
how Tillkey appends to a file that other processes, and the operator's shipper, also read."""

from __future__ import annotations

import os
from pathlib import Path


def append(path: Path, data: bytes) -> None:
    """Append `data` (whole lines) to `path`, created 0600 (it holds names, IPs or tokens).

    O_APPEND with the whole batch in one write call: lines from several processes never interleave.
    Reopened on every call, so a file rotated by the operator is followed. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
