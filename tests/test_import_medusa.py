"""`tillkey import medusa` against a PostgreSQL database laid out as Medusa v2's (the tables it
reads: "user", customer, auth_identity, provider_identity), with emailpass hashes made by npm
`scrypt-kdf` (tests/vectors/legacy_hashes/medusa.json): the imported people sign in with their
old passwords, a second run duplicates nothing, and --dry-run writes nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import inprocess
from tests.conftest import make_database
from tillkey.security import audit
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery

VECTORS = json.loads((Path(__file__).parent / "vectors" / "legacy_hashes" / "medusa.json").read_text())["vectors"]
ADMIN, SHOPPER = VECTORS[0], VECTORS[1]

# The columns the import reads, as Medusa 2.x's models define them (ids are prefixed ULIDs).
SCHEMA = """
CREATE TABLE "user" (id text PRIMARY KEY, email text NOT NULL, first_name text, last_name text,
    created_at timestamptz DEFAULT now(), deleted_at timestamptz);
CREATE TABLE customer (id text PRIMARY KEY, email text, first_name text, last_name text,
    has_account boolean NOT NULL DEFAULT false, created_at timestamptz DEFAULT now(), deleted_at timestamptz);
CREATE TABLE auth_identity (id text PRIMARY KEY, app_metadata jsonb, deleted_at timestamptz);
CREATE TABLE provider_identity (id text PRIMARY KEY, entity_id text NOT NULL, provider text NOT NULL,
    auth_identity_id text REFERENCES auth_identity(id), user_metadata jsonb, provider_metadata jsonb,
    deleted_at timestamptz);
"""


def _identity(n: int, actor_key: str, actor_id: str, email: str, password: str | None) -> str:
    meta = json.dumps({"password": password}) if password else "null"
    return (
        f"INSERT INTO auth_identity VALUES ('authid_{n}', '{{\"{actor_key}\": \"{actor_id}\"}}', NULL);"
        f"INSERT INTO provider_identity VALUES ('pi_{n}', '{email}', 'emailpass', 'authid_{n}', NULL, '{meta}', NULL);"
    )


ROWS = (
    "INSERT INTO \"user\" (id, email, first_name, last_name) VALUES ('user_1', 'owner@shop.test', 'Olive', 'Owner');"
    + _identity(1, "user_id", "user_1", "owner@shop.test", ADMIN["hash"])
    + "INSERT INTO customer (id, email, first_name, last_name, has_account) VALUES"
    " ('cus_1', 'shopper@shop.test', 'Sam', 'Shopper', true),"
    " ('cus_2', 'guest@shop.test', NULL, NULL, false),"  # a guest checkout: no account
    " ('cus_3', 'nopass@shop.test', 'No', 'Pass', true),"  # signed up with another provider
    " ('cus_4', 'broken@shop.test', 'Bro', 'Ken', true);"
    + _identity(2, "customer_id", "cus_1", "shopper@shop.test", SHOPPER["hash"])
    + _identity(4, "customer_id", "cus_4", "broken@shop.test", "not-a-scrypt-blob")
)


@pytest.fixture
def medusa_db(tmp_path: Path) -> Iterator[str]:
    db = make_database("postgres", tmp_path)
    assert db.name is not None
    dsn = f"postgresql://postgres@127.0.0.1:5432/{db.name}"
    subprocess.run(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA + ROWS], check=True, capture_output=True)
    try:
        yield dsn
    finally:
        db.drop()


def test_import_then_sign_in_with_the_old_passwords_and_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            dry = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db, "--dry-run")
            assert dry["imported"] == {"user": 1, "customer": 1}
            async with t.tk.db.session() as s:
                assert await repo.customer_by_email(s, "shopper@shop.test") is None  # dry run: nothing written
            report = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert report["imported"] == {"user": 1, "customer": 1}
            assert {(x["kind"], x["reason"]) for x in report["skipped"]} == {
                ("customer", "no emailpass identity"), ("customer", "invalid hash"),
            }  # fmt: skip
            again = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert again["imported"] == {}
            assert {"kind": "customer", "reason": "already in Tillkey", "count": 1} in again["skipped"]
            assert {"kind": "user", "reason": "already in Tillkey", "count": 1} in again["skipped"]

            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "shopper@shop.test", "password": SHOPPER["password"]}
            )
            assert r.status_code == 200, r.text
            r = await t.client.post(
                "/auth/user/emailpass", json={"email": "owner@shop.test", "password": ADMIN["password"]}
            )
            assert r.status_code == 200, r.text
            wrong = await t.client.post("/auth/user/emailpass", json={"email": "owner@shop.test", "password": "nope"})
            assert wrong.status_code == 401
            runs = await t.tk.audit.search(AuditQuery(event=audit.IMPORT_RUN))
            assert len(runs) == 2  # the dry run records nothing
            rehashed = await t.tk.audit.search(AuditQuery(event=audit.PASSWORD_REHASHED))
            assert len(rehashed) == 2

    inprocess.run(body)


def test_an_unreachable_source_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path):
            res = await inprocess.cli("import", "medusa", "--dsn", "postgresql://nobody@127.0.0.1:1/none", check=False)
            assert res.exit_code == 1 and res.stderr.startswith("error: cannot read the Medusa database")

    inprocess.run(body)
