"""Change signal for the embedded database (issue 19, fresh as well as fast): a file beside the
SQLite database that every process touches after committing change-feed rows, and that a running
server watches with inotify. A credential the CLI deletes or revokes is then refused on the server's
very next request, not after its next change-feed poll (`sync_interval`): the watcher marks the
process stale as soon as the file changes, and a request that finds it stale waits for one poll
that started after the change (credentials/freshness.py `CatchUp.settle`).

The signal carries nothing: the change feed stays the truth, and a signal that is lost, late or
made by anyone else who can write the data folder costs at most one extra poll. Scale-out mode has
the same through Redis (store/broadcast.py). Without inotify (not Linux) the watcher is off and the
poll interval bounds how late a change is seen, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

from sqlalchemy.engine import make_url

log = logging.getLogger("tillkey.sync")

_IN_MODIFY, _IN_ATTRIB = 0x2, 0x4
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


def signal_path(database_url: str) -> str | None:
    """The signal file of an SQLite database on disk (None for PostgreSQL or in-memory)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return url.database + "-changed"


def touch(path: str) -> None:
    """Tell the watchers: the file's times change (created, owner-only, if missing). Never fails
    the caller: its change is committed; the poll interval still bounds a lost signal."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.utime(path)
    except OSError as exc:
        log.warning("change signal %s: %s", path, type(exc).__name__)


class Watcher:
    """Calls `on_change` from the event loop whenever the signal file changes (inotify)."""

    def __init__(self, path: str, on_change: Callable[[], None]) -> None:
        self.path = path
        self.on_change = on_change
        self._fd: int | None = None

    def start(self) -> bool:
        """True if watching; False where inotify is missing (the poll interval then bounds it)."""
        name = ctypes.util.find_library("c")
        if name is None:
            return False
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return False
        touch(self.path)  # the file must exist to be watched
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return False
        if add(fd, os.fsencode(self.path), _IN_MODIFY | _IN_ATTRIB) < 0:
            os.close(fd)
            return False
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)
        return True

    def _readable(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._fd, 4096):  # drain: one wake-up however many events queued
                pass
        self.on_change()

    def stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
