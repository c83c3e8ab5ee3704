"""argon2id password hashing (argon2-cffi), run off the event loop, plus the new-password policy.

Hashes imported from Magento and Medusa (crypto/legacy_hashes.py) are verified here too, at the
same cost as Tillkey's own, until their owner's next sign-in replaces them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, cast

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tillkey.crypto import legacy_hashes
from tillkey.errors import WeakPassword
from tillkey.security.flood import HashingQueue

# A few passwords every credential-stuffing list starts with; longer lists belong in a data file.
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "admin123",
        "administrator",
        "letmein1",
        "welcome1",
        "changeme",
        "magento123",
        "11111111",
        "00000000",
        "abcd1234",
        "passw0rd",
        "trustno1",
    }
)
MAX_PASSWORD_LENGTH = 256
# The cost part of an encoded argon2 hash: "$argon2id$v=19$m=65536,t=3,p=1".
_COST_PREFIX = re.compile(r"\$argon2(?:id|i|d)\$v=[0-9]+\$m=([0-9]+),t=([0-9]+),p=([0-9]+)")


class Cost(NamedTuple):
    """What makes an argon2 check slow: a hash is checked at the cost it was made with."""

    time_cost: int
    memory_kib: int
    parallelism: int

    @classmethod
    def of(cls, encoded: str) -> Cost | None:
        """The cost of an encoded hash (or of its leading "$argon2id$v=..$m=..,t=..,p=.." part)."""
        found = _COST_PREFIX.match(encoded)
        return cls(int(found[2]), int(found[1]), int(found[3])) if found else None


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
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        workers: int,
        queue: int,
        nice: int = 0,
        dummy_key: bytes = b"",
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority, initargs=(nice,)
        )
        self._queue = HashingQueue(workers + queue, detail="password hashing queue is full")
        self.cost = Cost(time_cost, memory_kib, parallelism)
        started = time.perf_counter()
        self._dummy = _dummy_hash(self.cost)
        # How long one check at the configured cost takes here, kept current by every such check:
        # what a legacy hash's check is evened out to (legacy_sync).
        self.native_seconds = time.perf_counter() - started
        self._dummies = DummyHashes(dummy_key, self.cost, self._dummy)

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def check_sync(self, hashed: str, password: str) -> bool:
        """One argon2 check of `password` against `hashed`, at the cost `hashed` was made with."""
        started = time.perf_counter()
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        finally:
            if Cost.of(hashed) == self.cost:
                self.native_seconds = 0.8 * self.native_seconds + 0.2 * (time.perf_counter() - started)

    def legacy_sync(self, hashed: str, password: str) -> tuple[bool, float, str | None]:
        """Check an imported hash, then spend what a check of Tillkey's own costs, right password
        or wrong, so the answer's timing tells neither which accounts still have an imported hash
        nor (for a locked account) whether the password was right. A cheap format (Magento's md5
        and sha256 versions) is followed by argon2 work at the configured cost: for the right
        password the argon2id hash that replaces it (so the first sign-in costs one argon2, not
        two), for a wrong one a check against the dummy: the same work, under load too. A costly
        one (argon2id13, scrypt) already did most of that work; the rest is returned as seconds
        to wait, off the pool, and the caller hashes anew if it may upgrade."""
        started = time.perf_counter()
        ok = legacy_hashes.verify(hashed, password)
        if not legacy_hashes.is_costly(hashed):
            if ok:
                return ok, 0.0, self.hash_sync(password)
            self.check_sync(self._dummy, password)
            return ok, 0.0, None
        return ok, max(0.0, self.native_seconds - (time.perf_counter() - started)), None

    def dummy_for(self, population: str, name: str) -> str:
        """The hash an unknown `name` is checked against (see DummyHashes)."""
        return self._dummies.choose(population, name)

    async def learn_costs(self, population: str, counts: Mapping[Cost, int]) -> None:
        """The costs of the stored hashes of a population (admins, customers) and how many have
        each; the dummy hashes for costs not seen before are made in the pool."""
        loop = asyncio.get_running_loop()
        for cost in counts:
            if not self._dummies.has(cost):
                self._dummies.add(cost, await loop.run_in_executor(self._pool, _dummy_hash, cost))
        self._dummies.census(population, counts)

    async def _run(self, fn: object, *args: object) -> object:
        async with self._queue.slot():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]

    async def hash(self, password: str) -> str:
        return str(await self._run(self.hash_sync, password))

    async def verify(self, hashed: str | None, password: str, *, population: str = "", name: str = "") -> bool:
        """Check `password` against `hashed`; None (no such account) checks it against a dummy
        hash of a stored hash's cost instead, so an unknown name costs what a known one does,
        and answers False."""
        ok, _upgrade = await self.verify_upgrading(hashed, password, population=population, name=name)
        return ok

    async def verify_upgrading(
        self, hashed: str | None, password: str, *, population: str = "", name: str = ""
    ) -> tuple[bool, str | None]:
        """`verify`, and for a right password against a cheap imported hash the argon2id hash
        made in the same turn in the pool (legacy_sync), for the caller to store if it may."""
        if hashed is not None and is_unusable(hashed):
            hashed = None  # no password: checked like an unknown name's, and never right
        if hashed is not None and legacy_hashes.scheme_of(hashed) is not None:
            ok, owed, upgrade = cast(
                tuple[bool, float, "str | None"], await self._run(self.legacy_sync, hashed, password)
            )
            await asyncio.sleep(owed)
            return ok, upgrade
        target = hashed if hashed is not None else self.dummy_for(population, name)
        return bool(await self._run(self.check_sync, target, password)) and hashed is not None, None

    def needs_rehash(self, hashed: str) -> bool:
        """True for a hash at another argon2 cost, and for every imported (legacy) hash."""
        if legacy_hashes.scheme_of(hashed) is not None:
            return True
        try:
            return self._hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False)


UNUSABLE_PREFIX = "!"  # no argon2 or legacy hash starts so


def unusable_hash() -> str:
    """The stored "hash" of an account with no password (provisioned from an identity provider):
    no password matches it, a check against it costs what any check does, and it says the account
    has no password, which decides whether its last linked identity may be removed."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(16)


def is_unusable(hashed: str) -> bool:
    return hashed.startswith(UNUSABLE_PREFIX)


def _dummy_hash(cost: Cost) -> str:
    hasher = PasswordHasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism, type=Type.ID
    )
    return hasher.hash("tillkey-dummy-password-for-timing")


class DummyHashes:
    """What an unknown name's password is checked against, so it answers as slowly as a real one.

    One dummy hash per argon2 cost found among the stored hashes, not only the configured cost:
    after the cost is lowered, dormant accounts keep their old, slower hashes until their next
    sign-in, and a dummy at the new cost would let anyone tell an unknown name from a dormant
    one by the time the answer takes. Several costs in use: each unknown name is given one of
    them, always the same (a keyed hash of the name picks it, so retrying reveals nothing), in
    the proportions the stored hashes have: unknown names look like a sample of the real ones.
    """

    def __init__(self, key: bytes, current: Cost, current_hash: str) -> None:
        self._key = key
        self._current = current
        self._hashes: dict[Cost, str] = {current: current_hash}
        self._weights: dict[str, list[tuple[Cost, int]]] = {}

    def has(self, cost: Cost) -> bool:
        return cost in self._hashes

    def add(self, cost: Cost, hashed: str) -> None:
        self._hashes[cost] = hashed

    def census(self, population: str, counts: Mapping[Cost, int]) -> None:
        self._weights[population] = sorted((c, n) for c, n in counts.items() if n > 0 and c in self._hashes)

    def cost_for(self, population: str, name: str) -> Cost:
        weights = self._weights.get(population)
        if not weights:
            return self._current
        total = sum(n for _, n in weights)
        digest = hmac.new(self._key, f"{population}\x00{name}".encode(), hashlib.sha256).digest()
        pick = int.from_bytes(digest[:8], "big") % total
        for cost, n in weights:
            if pick < n:
                return cost
            pick -= n
        return weights[-1][0]

    def choose(self, population: str, name: str) -> str:
        return self._hashes[self.cost_for(population, name)]
