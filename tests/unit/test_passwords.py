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


def test_a_legacy_hash_costs_what_a_native_check_does_right_password_or_wrong() -> None:
    """No timing tell on accounts still holding an imported hash: a cheap format (md5, sha256) is
    followed by one argon2 check at Tillkey's cost, the same check an unknown name costs; a costly
    one (argon2id13) is owed the rest of a native check's measured time, whatever the answer."""
    import json
    from pathlib import Path

    vectors = {
        v["name"]: v
        for v in json.loads((Path(__file__).parents[1] / "vectors/legacy_hashes/magento.json").read_text())["vectors"]
    }
    h = _hashing()
    checked: list[str] = []
    real = h.check_sync

    def spy(hashed: str, password: str) -> bool:
        checked.append(hashed)
        return real(hashed, password)

    made: list[str] = []
    real_hash = h.hash_sync

    def hash_spy(password: str) -> str:
        made.append(real_hash(password))
        return made[-1]

    h.check_sync = spy  # type: ignore[method-assign]
    h.hash_sync = hash_spy  # type: ignore[method-assign]
    for name in ("version 0 (md5)", "version 1 (sha256)", "chain 0:1 (md5 upgraded to sha256)"):
        v = vectors[name]
        for password, right in ((v["password"], True), ("not the password", False)):
            checked.clear()
            made.clear()
            ok, owed, upgrade = h.legacy_sync(v["hash"], password)
            assert (ok, owed) == (right, 0.0)
            # One argon2 operation at the configured cost either way: the hash that replaces the
            # imported one for the right password (no second one later), a dummy check for a wrong one.
            work = made if right else checked
            assert len(checked) + len(made) == 1
            assert work[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
            assert upgrade == (made[0] if right else None)
            assert upgrade is None or real(upgrade, password)
    costly = vectors["version 2 (argon2id13, interactive limits)"]
    h.native_seconds = 30.0  # as if a native check took that long here
    checked.clear()
    made.clear()
    for password, right in ((costly["password"], True), ("not the password", False)):
        ok, owed, upgrade = h.legacy_sync(costly["hash"], password)
        assert ok is right and 25.0 < owed < 30.0  # topped up to a native check's time, off the pool
        assert upgrade is None  # the caller hashes anew, if it may upgrade
    assert checked == [] and made == []
