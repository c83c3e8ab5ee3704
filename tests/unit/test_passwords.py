"""Password policy and argon2id hashing."""

from __future__ import annotations

import asyncio

import pytest

from tillkey.crypto.passwords import PasswordHashing, check_policy
from tillkey.errors import Unavailable, WeakPassword


def test_policy_accepts_a_reasonable_passphrase() -> None:
    check_policy("correct horse battery", min_length=8, identifiers=("alice", "alice@example.com"))


@pytest.mark.parametrize("pw", ["", "short", "Password123", "x" * 300, "alice-is-great", "zzzzzzzzzz"])
def test_policy_refuses(pw: str) -> None:
    with pytest.raises(WeakPassword):
        check_policy(pw, min_length=8, identifiers=("alice",))


def _hashing(workers: int = 1, queue: int = 4) -> PasswordHashing:
    return PasswordHashing(time_cost=2, memory_kib=19456, parallelism=1, workers=workers, queue=queue)


def test_hash_is_argon2id_and_verifies() -> None:
    h = _hashing()
    hashed = h.hash_sync("a good password")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert h.check_sync(hashed, "a good password")
    assert not h.check_sync(hashed, "a good passworD")
    assert not h.check_sync("not a hash", "x")
    # An unknown user never passes, even with the dummy hash's own password.
    assert not asyncio.run(h.verify(None, "tillkey-dummy-password-for-timing", population="3", name="x"))


def test_stronger_settings_mark_old_hashes_for_rehash() -> None:
    weak = _hashing().hash_sync("pw-123456")
    strong = PasswordHashing(time_cost=3, memory_kib=19456, parallelism=1, workers=1, queue=1)
    assert strong.needs_rehash(weak)
    assert not strong.needs_rehash(strong.hash_sync("pw-123456"))


def test_login_queue_is_bounded() -> None:
    async def flood() -> list[object]:
        h = _hashing(workers=1, queue=2)
        hashed = h.hash_sync("pw-123456")
        return await asyncio.gather(*(h.verify(hashed, "pw-123456") for _ in range(10)), return_exceptions=True)

    results = asyncio.run(flood())
    assert results.count(True) == 3  # one hashing + two queued
    assert all(isinstance(r, Unavailable) for r in results if r is not True)
