"""An unknown name is checked against a dummy hash at the cost of the stored hashes (issue 12).

After TILLKEY_ARGON2_* is lowered, dormant accounts keep their old, costlier hashes until their
next sign-in. A dummy at the new cost made unknown names answer faster than dormant ones: an
enumeration oracle. These tests compare the argon2 parameters each check runs with, not timings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests.conftest import make_database
from tests.inprocess import CUSTOMER_PASSWORD, InProcess
from tillkey.crypto.passwords import Cost, DummyHashes, PasswordHashing
from tillkey.store import accounts

OLD = {"argon2_time_cost": 3}  # memory and parallelism as FAST_SETTINGS: only the time cost moves
NEW = {"argon2_time_cost": 2}
OLD_COST = Cost(3, 19456, 1)
NEW_COST = Cost(2, 19456, 1)


def _checked_costs(t: InProcess) -> list[Cost | None]:
    """Record the cost of every argon2 check the server runs from now on."""
    seen: list[Cost | None] = []
    check = t.tk.passwords.check_sync

    def spy(hashed: str, password: str) -> bool:
        seen.append(Cost.of(hashed))
        return check(hashed, password)

    t.tk.passwords.check_sync = spy  # type: ignore[method-assign]
    return seen


async def _customer_login(t: InProcess, email: str, password: str = CUSTOMER_PASSWORD) -> int:
    r = await t.client.post("/rest/V1/integration/customer/token", json={"username": email, "password": password})
    return r.status_code


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings for the backend: the cost census is one grouped query, on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield {}
        return
    db = make_database("postgres", tmp_path)
    try:
        yield {"database_url": db.url}
    finally:
        db.drop()


def test_after_the_cost_is_lowered_unknown_names_are_checked_at_the_dormant_accounts_cost(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **OLD, **database) as t:
            await t.create_customer("dormant@example.com")
            await t.create_admin("sleepy")
        async with inprocess.running(tmp_path, **NEW, **database) as t:  # the same database, a cheaper setting
            seen = _checked_costs(t)
            assert await _customer_login(t, "nobody@example.com") == 401
            assert await _customer_login(t, "dormant@example.com", "wrong-password") == 401
            assert seen == [OLD_COST, OLD_COST]  # unknown and dormant: the same work
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "ghost", "password": "whatever-pw"}
            )
            assert r.status_code == 401 and seen[-1] == OLD_COST
            r = await t.client.post("/auth/customer/emailpass", json={"email": "x@example.com", "password": "p"})
            assert r.status_code == 401 and len(seen) == 4 and seen[-1] == OLD_COST  # Medusa's emailpass too

    inprocess.run(body)


def test_a_fresh_install_checks_unknown_names_at_the_configured_cost(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **NEW) as t:
            seen = _checked_costs(t)
            assert await _customer_login(t, "nobody@example.com") == 401
            assert seen == [NEW_COST]

    inprocess.run(body)


def test_with_both_costs_in_use_each_unknown_name_keeps_one_in_the_stored_proportions(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **OLD) as t:
            for i in range(3):
                await t.create_customer(f"old{i}@example.com")
        async with inprocess.running(tmp_path, **NEW) as t:
            await t.create_customer("new@example.com")
        async with inprocess.running(tmp_path, **NEW) as t:
            passwords = t.tk.passwords
            picks = [Cost.of(passwords.dummy_for("3", f"user{i}@example.com")) for i in range(400)]
            assert set(picks) == {OLD_COST, NEW_COST}
            assert 0.65 < picks.count(OLD_COST) / len(picks) < 0.85  # 3 of 4 stored hashes are old
            # A name always gets the same one: asking again tells nothing.
            assert all(Cost.of(passwords.dummy_for("3", f"user{i}@example.com")) == picks[i] for i in range(50))
            # Admins are their own population: none is stored, so the configured cost.
            assert Cost.of(passwords.dummy_for("2", "user0@example.com")) == NEW_COST

    inprocess.run(body)


def test_the_choice_is_keyed_so_another_server_secret_picks_differently() -> None:
    # Keyed by the master secret: the mapping from names to costs cannot be computed from outside.
    costs = {OLD_COST: 1, NEW_COST: 1}

    def picks(key: bytes) -> list[Cost]:
        dummies = DummyHashes(key, NEW_COST, "$argon2id$new")
        dummies.add(OLD_COST, "$argon2id$old")
        dummies.census("3", costs)
        return [dummies.cost_for("3", f"user{i}") for i in range(64)]

    assert picks(b"a" * 32) == picks(b"a" * 32)
    assert picks(b"a" * 32) != picks(b"b" * 32)


def test_cost_of_reads_an_encoded_hash_and_its_prefix() -> None:
    assert Cost.of("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA") == Cost(3, 65536, 4)
    assert Cost.of("$argon2id$v=19$m=65536,t=3,p=4") == Cost(3, 65536, 4)
    assert Cost.of("$2b$12$bcrypt") is None


# --- imported (legacy) hashes: no oracle on which accounts still have one (issue 17) -------------

LEGACY = json.loads((Path(__file__).parents[1] / "vectors" / "legacy_hashes" / "magento.json").read_text())["vectors"]
MD5 = next(v for v in LEGACY if v["hash"].endswith(":0"))
ARGON = next(v for v in LEGACY if v["hash"].endswith(":3_32_2_67108864"))


def test_a_legacy_md5_account_costs_one_argon2_check_at_the_configured_cost_right_or_wrong(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            native = await t.create_customer("native@example.com")
            legacy = await t.create_customer("legacy@example.com")
            async with t.tk.db.transaction() as s:
                await accounts.set_customer_password_hash(s, legacy.id, MD5["hash"])
            seen = _checked_costs(t)
            assert await _customer_login(t, "native@example.com", "wrong-password") == 401
            assert await _customer_login(t, "legacy@example.com", "wrong-password") == 401
            assert await _customer_login(t, "nobody@example.com", "wrong-password") == 401
            assert seen == [NEW_COST, NEW_COST, NEW_COST]  # native, legacy, unknown: the same work
            assert native.id != legacy.id

    inprocess.run(body)


def test_a_costly_legacy_check_is_topped_up_to_a_native_checks_time() -> None:
    hashing = PasswordHashing(time_cost=2, memory_kib=19456, parallelism=1, workers=1, queue=1)
    try:
        hashing.native_seconds = 60.0  # as if a native check took a minute here
        seen: list[Cost | None] = []
        check = hashing.check_sync

        def spy(hashed: str, password: str) -> bool:
            seen.append(Cost.of(hashed))
            return check(hashed, password)

        hashing.check_sync = spy  # type: ignore[method-assign]
        assert hashing.legacy_sync(MD5["hash"], "wrong-password") == (False, 0.0, None)
        assert seen == [Cost(2, 19456, 1)]  # a cheap format: a real argon2 check at the configured cost
        assert hashing.native_seconds < 60.0  # which the running estimate learns from
        hashing.native_seconds = 60.0
        ok, owed, _ = hashing.legacy_sync(ARGON["hash"], "wrong-password")
        assert not ok and 55.0 < owed < 60.0  # the argon2id13 check ran; the rest is waited off the pool
        ok, owed, _ = hashing.legacy_sync(ARGON["hash"], ARGON["password"])
        assert ok and 55.0 < owed < 60.0  # right or wrong: the same
        assert len(seen) == 1  # a costly format does the work itself
        hashing.native_seconds = 0.0  # slower than native: nothing owed, nothing added
        assert hashing.legacy_sync(ARGON["hash"], "wrong-password") == (False, 0.0, None)
    finally:
        hashing.close()


def test_waiting_off_what_is_owed_makes_the_answer_as_slow_as_a_native_one() -> None:
    async def body() -> None:
        hashing = PasswordHashing(time_cost=2, memory_kib=19456, parallelism=1, workers=1, queue=1)
        try:
            hashing.native_seconds = 5.0
            started = asyncio.get_running_loop().time()
            assert not await hashing.verify(ARGON["hash"], "wrong-password")
            assert asyncio.get_running_loop().time() - started >= 4.9
        finally:
            hashing.close()

    inprocess.run(body)
