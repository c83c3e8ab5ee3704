"""Passwords imported from Magento and Medusa keep working, and become argon2id at first sign-in.

The hashes are not made by the code under test: tests/vectors/legacy_hashes/magento.json comes
from PHP with libsodium, the way Magento's Encryptor hashes (magento_hashes.php beside it), and
medusa.json from the npm `scrypt-kdf` package Medusa uses (tests/js/scrypt_kdf/make_hashes.mjs).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests.conftest import REQUIRE_SERVICES
from tests.inprocess import InProcess
from tillkey import audit
from tillkey.crypto import legacy_hashes
from tillkey.principal import UserType
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery

VECTORS = Path(__file__).parent / "vectors" / "legacy_hashes"
MAGENTO: list[dict[str, str]] = json.loads((VECTORS / "magento.json").read_text())["vectors"]
MEDUSA: list[dict[str, str]] = json.loads((VECTORS / "medusa.json").read_text())["vectors"]
CUSTOMER_TOKEN = "/rest/V1/integration/customer/token"


def _ids(vectors: list[dict[str, str]]) -> list[str]:
    return [v["name"] for v in vectors]


@pytest.mark.parametrize("vector", MAGENTO + MEDUSA, ids=_ids(MAGENTO + MEDUSA))
def test_each_external_vector_verifies_with_its_password_only(vector: dict[str, str]) -> None:
    assert legacy_hashes.scheme_of(vector["hash"]) is not None
    assert legacy_hashes.verify(vector["hash"], vector["password"])
    assert not legacy_hashes.verify(vector["hash"], vector["password"] + "x")
    assert not legacy_hashes.verify(vector["hash"], "")


def test_php_still_makes_the_committed_magento_vectors() -> None:
    """The committed vectors are what the committed PHP script prints (its salts are fixed)."""
    if shutil.which("php") is None:
        reason = "php-cli (with sodium) is needed to regenerate the Magento vectors"
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}") if REQUIRE_SERVICES else pytest.skip(reason)
    out = subprocess.run(
        ["php", str(VECTORS / "magento_hashes.php")], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert json.loads(out)["vectors"] == MAGENTO


@pytest.mark.parametrize(
    "stored",
    [
        "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaA",  # Tillkey's own: not legacy
        "5f4dcc3b5aa765d61d8327deb882cf99:salt",  # a bare Magento 1 hash: Magento never matches it
        "5f4dcc3b5aa765d61d8327deb882cf99:salt:9",  # an unknown version
        "nothex:salt:1",
        "",
    ],
)
def test_other_values_are_not_read_as_legacy_hashes(stored: str) -> None:
    assert legacy_hashes.scheme_of(stored) is None
    assert not legacy_hashes.verify(stored, "password")


def test_a_hash_asking_for_absurd_costs_is_refused_without_running_them() -> None:
    # 4 GiB of argon2 memory, and a scrypt blob with logN 30: a corrupt row must not exhaust memory.
    assert not legacy_hashes.verify("00:salt:3_32_2_4294967296", "pw")
    blob = bytearray(base64.b64decode(MEDUSA[0]["hash"]))
    blob[7] = 30
    assert not legacy_hashes.verify(base64.b64encode(bytes(blob)).decode(), MEDUSA[0]["password"])


def test_audit_names_the_scheme_never_the_hash() -> None:
    stored = next(v["hash"] for v in MAGENTO if v["hash"].endswith(":1:2"))
    assert legacy_hashes.describe(stored) == "magento:1:2"
    assert legacy_hashes.describe(MEDUSA[0]["hash"]) == "medusa-scrypt"


async def _imported_customer(t: InProcess, email: str, stored: str) -> int:
    """A customer as an import leaves it: the hash copied verbatim from the shop's database."""
    customer = await t.create_customer(email)
    async with t.tk.db.transaction() as s:
        await repo.set_customer_password_hash(s, customer.id, stored)
    return customer.id


async def _hash_of(t: InProcess, customer_id: int) -> str:
    async with t.tk.db.session() as s:
        found = await repo.customer_by_id(s, customer_id)
    assert found is not None
    return found.password_hash


async def _rehashed(t: InProcess) -> list[dict[str, Any]]:
    found = await t.tk.audit.search(AuditQuery(event=audit.PASSWORD_REHASHED, limit=1000))
    return [{"id": r.actor_id, **json.loads(r.details or "{}")} for r in found]


def test_every_magento_version_signs_in_once_then_is_argon2id(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            for i, vector in enumerate(MAGENTO):
                email = f"m{i}@example.com"
                cid = await _imported_customer(t, email, vector["hash"])
                wrong = await t.client.post(CUSTOMER_TOKEN, json={"username": email, "password": "not-it-1234"})
                assert wrong.status_code == 401 and await _hash_of(t, cid) == vector["hash"], vector["name"]
                token = await t.customer_token(email, vector["password"])
                me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))
                assert me.status_code == 200 and me.json()["email"] == email
                upgraded = await _hash_of(t, cid)
                assert upgraded.startswith("$argon2id$") and vector["password"] not in upgraded
                await t.customer_token(email, vector["password"])  # and the new hash works
            rehashed = await _rehashed(t)
            assert sorted(r["scheme"] for r in rehashed) == sorted(legacy_hashes.describe(v["hash"]) for v in MAGENTO)
            assert all(set(r) == {"id", "scheme"} for r in rehashed)  # no hash, no salt in the log

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_medusa_scrypt_customer_signs_in_through_emailpass_and_magento_alike(tmp_path: Path, backend: str) -> None:
    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            async with inprocess.running(tmp_path, **db) as t:
                vector = MEDUSA[0]
                cid = await _imported_customer(t, "shopper@example.com", vector["hash"])
                creds = {"email": "shopper@example.com", "password": vector["password"]}
                bad = await t.client.post("/auth/customer/emailpass", json={**creds, "password": "wrong-pass-1"})
                assert bad.status_code == 401 and await _hash_of(t, cid) == vector["hash"]
                r = await t.client.post("/auth/customer/emailpass", json=creds)
                assert r.status_code == 200 and r.json()["token"]
                assert (await _hash_of(t, cid)).startswith("$argon2id$")
                assert await _rehashed(t) == [{"id": cid, "scheme": "medusa-scrypt"}]
                await t.customer_token("shopper@example.com", vector["password"])  # the same account on REST

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_the_upgrade_is_conditional_on_the_hash_that_was_checked(tmp_path: Path, backend: str) -> None:
    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            async with inprocess.running(tmp_path, **db) as t:
                vector = MAGENTO[0]
                cid = await _imported_customer(t, "race@example.com", vector["hash"])
                async with t.tk.db.transaction() as s:  # a password change got there first
                    assert await repo.replace_password_hash(
                        s, admin=False, user_id=cid, old=vector["hash"], new="$argon2id$changed"
                    )
                async with t.tk.db.transaction() as s:  # so the stale upgrade changes nothing
                    assert not await repo.replace_password_hash(
                        s, admin=False, user_id=cid, old=vector["hash"], new="$argon2id$stale"
                    )
                assert await _hash_of(t, cid) == "$argon2id$changed"

    inprocess.run(body)


def test_a_locked_legacy_account_is_refused_with_the_right_password_and_keeps_its_hash(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, customer_lockout_failures=3, login_throttle_max_failures=100) as t:
            vector = MAGENTO[1]
            cid = await _imported_customer(t, "locked@example.com", vector["hash"])
            for _ in range(3):
                r = await t.client.post(
                    CUSTOMER_TOKEN, json={"username": "locked@example.com", "password": "nope-1234"}
                )
                assert r.status_code == 401
            r = await t.client.post(
                CUSTOMER_TOKEN, json={"username": "locked@example.com", "password": vector["password"]}
            )
            assert r.status_code == 401 and await _hash_of(t, cid) == vector["hash"] and await _rehashed(t) == []
            t.advance(t.tk.settings.customer_lockout_seconds + 1)
            await t.customer_token("locked@example.com", vector["password"])
            assert (await _hash_of(t, cid)).startswith("$argon2id$")

    inprocess.run(body)


def test_an_imported_admin_still_needs_the_second_factor(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="required") as t:
            admin = await t.create_admin("imported")
            vector = MAGENTO[3]  # Magento 2.4.7's default version
            async with t.tk.db.transaction() as s:
                await repo.set_admin_password_hash(s, admin.id, vector["hash"])
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "imported", "password": vector["password"]}
            )
            # The password was right (so it is upgraded), but no token without the second factor.
            assert r.status_code == 400 and "Two-Factor" in r.json()["message"], r.text
            assert await t.tk.audit.search(AuditQuery(event=audit.LOGIN_SUCCESS)) == []
            (rehashed,) = await t.tk.audit.search(AuditQuery(event=audit.PASSWORD_REHASHED))
            assert (rehashed.actor_type, rehashed.actor_id) == (int(UserType.ADMIN), admin.id)

    inprocess.run(body)
