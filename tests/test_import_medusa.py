"""`tillkey import medusa` against a PostgreSQL database laid out as Medusa v2's (the tables it
reads: "user", customer, auth_identity, provider_identity), with emailpass hashes made by npm
`scrypt-kdf` (tests/vectors/legacy_hashes/medusa.json): the imported people sign in with their
old passwords, a second run duplicates nothing, and --dry-run writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests import inprocess
from tests.conftest import make_database
from tillkey import audit
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


# (actor table, id, email, first, last, has_account, emailpass password or None for no identity)
PEOPLE: list[tuple[str, str, str, str | None, str | None, bool, str | None]] = [
    ("user", "user_1", "owner@shop.test", "Olive", "Owner", True, ADMIN["hash"]),
    ("customer", "cus_1", "shopper@shop.test", "Sam", "Shopper", True, SHOPPER["hash"]),
    ("customer", "cus_2", "guest@shop.test", None, None, False, None),  # a guest checkout: no account
    ("customer", "cus_3", "nopass@shop.test", "No", "Pass", True, None),  # signed up with another provider
    ("customer", "cus_4", "broken@shop.test", "Bro", "Ken", True, "not-a-scrypt-blob"),
]


async def _load(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        for n, (table, actor_id, email, first, last, has_account, password) in enumerate(PEOPLE):
            if table == "user":
                await conn.execute(
                    'INSERT INTO "user" (id, email, first_name, last_name) VALUES ($1, $2, $3, $4)',
                    actor_id,
                    email,
                    first,
                    last,
                )
            else:
                await conn.execute(
                    "INSERT INTO customer (id, email, first_name, last_name, has_account) VALUES ($1, $2, $3, $4, $5)",
                    actor_id,
                    email,
                    first,
                    last,
                    has_account,
                )
            if password is None:
                continue
            app_metadata = json.dumps({f"{table}_id": actor_id})
            await conn.execute("INSERT INTO auth_identity VALUES ($1, $2::jsonb, NULL)", f"authid_{n}", app_metadata)
            await conn.execute(
                "INSERT INTO provider_identity VALUES ($1, $2, 'emailpass', $3, NULL, $4::jsonb, NULL)",
                f"pi_{n}",
                email,
                f"authid_{n}",
                json.dumps({"password": password}),
            )
    finally:
        await conn.close()


@pytest.fixture
def medusa_db(tmp_path: Path) -> Iterator[str]:
    db = make_database("postgres", tmp_path)
    assert db.name is not None
    dsn = f"postgresql://postgres@127.0.0.1:5432/{db.name}"
    asyncio.run(_load(dsn))
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
            assert dry["imported"] == {"admin": 1, "customer": 1}
            async with t.tk.db.session() as s:
                assert await repo.customer_by_email(s, "shopper@shop.test") is None  # dry run: nothing written
            report = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert report["imported"] == {"admin": 1, "customer": 1}
            assert {(x["kind"], x["reason"]) for x in report["skipped"]} == {
                ("customer", "no password"),
                ("customer", "invalid hash"),
            }
            again = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert again["imported"] == {}
            assert {"kind": "customer", "reason": "already in Tillkey", "count": 1} in again["skipped"]
            assert {"kind": "admin", "reason": "already in Tillkey", "count": 1} in again["skipped"]

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
