"""argon2id password hashing (argon2-cffi), run off the event loop, plus the new-password policy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tillkey.errors import Unavailable, WeakPassword

# A few passwords every credential-stuffing list starts with; longer lists belong in a data file.
_COMMON = frozenset(
    {
        "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyuiop",
        "qwerty123", "iloveyou", "admin123", "administrator", "letmein1", "welcome1", "changeme",
        "magento123", "11111111", "00000000", "abcd1234", "passw0rd", "trustno1",
    }
)  # fmt: skip
MAX_PASSWORD_LENGTH = 256


def check_policy(password: str, *, min_length: int, identifiers: tuple[str, ...] = ()) -> None:
    """Refuse a weak new password with a message that says what to change (NIST SP 800-63B)."""
    if not isinstance(password, str) or not password.strip():
        raise WeakPassword("The password must not be empty.")
    if len(password) < min_length:
        raise WeakPassword(f"The password must be at least {min_length} characters long.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 3:
        raise WeakPassword("The password is too common or too simple; choose another.")
    for ident in identifiers:
        if ident and ident.lower() in lowered:
            raise WeakPassword("The password must not contain the username or email.")


def _lower_priority(nice: int) -> None:
    """Runs in each hashing thread: on Linux a thread has its own nice value, so logins get the CPU
    the event loop leaves over instead of competing with verified API traffic for it."""
    if nice and sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class PasswordHashing:
    """Hashes and verifies passwords in a small dedicated thread pool.

    argon2 releases the GIL, so verified API traffic keeps running on the event loop while
    logins hash. The pool is bounded and so is the queue in front of it: past the limit a
    login gets 503 at once instead of piling up memory and latency.
    """

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int, queue: int, nice: int = 0
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority, initargs=(nice,)
        )
        self._slots = asyncio.Semaphore(workers + queue)
        # Verified against when the account does not exist, so unknown users cost the same time.
        self._dummy = self._hasher.hash("tillkey-dummy-password-for-timing")

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_sync(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy, password) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: object, *args: object) -> object:
        if self._slots.locked():
            raise Unavailable(headers={"Retry-After": "1"}, detail="password hashing queue is full")
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]

    async def hash(self, password: str) -> str:
        return str(await self._run(self.hash_sync, password))

    async def verify(self, hashed: str | None, password: str) -> bool:
        return bool(await self._run(self.verify_sync, hashed, password))

    def needs_rehash(self, hashed: str) -> bool:
        return self._hasher.check_needs_rehash(hashed)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
