"""`tillkey import medusa` against a PostgreSQL database laid out as Medusa v2's (the tables it
reads: "user", customer, auth_identity, provider_identity), with emailpass hashes made by npm
`scrypt-kdf` (tests/vectors/legacy_hashes/medusa.json): the imported people sign in with their
old passwords, a second run duplicates nothing, and --dry-run writes nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests import inprocess
from tests.conftest import make_database
from tests.js_packages import installed
from tillkey import audit
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery

JS = Path(__file__).parent / "js" / "medusa"
VECTORS = json.loads((Path(__file__).parent / "vectors" / "legacy_hashes" / "medusa.json").read_text())["vectors"]
ADMIN, SHOPPER = VECTORS[0], VECTORS[1]
# API keys as @medusajs/api-key stores them, made by Node's crypto (tests/js/medusa_api_keys).
KEYS = {
    k["name"]: k
    for k in json.loads((Path(__file__).parent / "vectors" / "medusa_api_keys" / "keys.json").read_text())["keys"]
}
IN_USE, REVOKED, PUBLISHABLE = KEYS["secret key in use"], KEYS["secret key revoked"], KEYS["publishable key"]

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
CREATE TABLE api_key (id text PRIMARY KEY, token text NOT NULL, salt text NOT NULL, redacted text NOT NULL,
    title text NOT NULL, type text NOT NULL, last_used_at timestamptz, created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), revoked_by text, revoked_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
"""
# (id, vector, created_by, revoked, deleted): "user_gone" is no Medusa user.
API_KEYS = [
    ("apk_1", IN_USE, "user_1", False, False),
    ("apk_2", REVOKED, "user_1", True, False),
    ("apk_3", PUBLISHABLE, "", False, False),
    ("apk_4", {**IN_USE, "redacted": "sk_000***000"}, "user_gone", False, False),
    ("apk_5", {**REVOKED, "redacted": "sk_111***111"}, "user_1", True, True),
]


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
        for key_id, k, created_by, revoked, deleted in API_KEYS:
            await conn.execute(
                "INSERT INTO api_key (id, token, salt, redacted, title, type, created_by, created_at, revoked_at,"
                " deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '30 days',"
                " CASE WHEN $8 THEN now() - interval '1 day' END, CASE WHEN $9 THEN now() END)",
                key_id,
                k["token"],
                k["salt"],
                k["redacted"],
                k["name"],
                k["type"],
                created_by,
                revoked,
                deleted,
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
            imported = {"admin": 1, "customer": 1, "sk_": 2, "pk_": 1}
            dry = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db, "--dry-run")
            assert dry["imported"] == imported
            async with t.tk.db.session() as s:
                assert await repo.customer_by_email(s, "shopper@shop.test") is None  # dry run: nothing written
            report = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert report["imported"] == imported
            assert {(x["kind"], x["reason"]) for x in report["skipped"]} == {
                ("customer", "no password"),
                ("customer", "invalid hash"),
                ("sk_", "its creator is not a Medusa user"),
            }
            again = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert again["imported"] == {}
            assert {"kind": "customer", "reason": "already in Tillkey", "count": 1} in again["skipped"]
            assert {"kind": "admin", "reason": "already in Tillkey", "count": 1} in again["skipped"]
            assert {"kind": "sk_", "reason": "already in Tillkey", "count": 2} in again["skipped"]

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


def _basic(raw: str) -> dict[str, str]:
    """What @medusajs/js-sdk sends for a secret key (medusa.md §4)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{raw}:".encode()).decode()}


def test_imported_secret_keys_keep_working_with_the_same_sk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            await t.tk.reload_grants()  # what the change feed brings within a second
            await t.tk.reload_api_keys()
            # A key with the same redacted form but another middle is no key: refused after the check.
            raw = IN_USE["raw"]
            forged = raw[:6] + ("0" if raw[6] != "0" else "1") + raw[7:]
            assert (await t.client.get("/admin/api-keys", headers=_basic(forged))).status_code == 401
            r = await t.client.get("/admin/api-keys", headers=_basic(raw))
            assert r.status_code == 200, r.text
            listed = {k["redacted"]: k for k in r.json()["api_keys"]}
            assert listed[IN_USE["redacted"]]["token"] == ""  # Medusa's verifier is never shown
            assert listed[PUBLISHABLE["redacted"]]["token"] == PUBLISHABLE["raw"]
            # Its first use gave it Tillkey's keyed digest: once audited, and the next call is plain.
            rehashed = await t.tk.audit.search(AuditQuery(event=audit.API_KEY_REHASHED))
            assert len(rehashed) == 1
            assert (await t.client.get("/rest/V1/products", headers=_basic(raw))).status_code == 200
            await t.tk.reload_api_keys()  # as another process loads it: from the database
            assert (await t.client.get("/admin/api-keys", headers=_basic(raw))).status_code == 200
            assert len(await t.tk.audit.search(AuditQuery(event=audit.API_KEY_REHASHED))) == 1
            # Revoked in Medusa, refused here; a forged key is still refused.
            assert (await t.client.get("/admin/api-keys", headers=_basic(REVOKED["raw"]))).status_code == 401
            assert (await t.client.get("/admin/api-keys", headers=_basic(forged))).status_code == 401
            # The publishable key opens the /store gate (the route then wants a customer).
            r = await t.client.get("/store/customers/me", headers={"x-publishable-api-key": PUBLISHABLE["raw"]})
            assert r.status_code == 401, r.text
            # Imported again after the upgrade: still one of each.
            again = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            assert "sk_" not in again["imported"]

    inprocess.run(body)


def test_an_imported_key_works_on_the_next_request_without_waiting_for_the_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    """The import runs in another process (the CLI) while the server polls only once a minute: the
    server finds the imported key on the next request (its change signal, or the catch-up on an
    unknown key: credentials/freshness.py), checks it against Medusa's verifier once, and from then
    on knows it by its keyed digest."""
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path, sync_interval=60) as t:
            await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            # The first request finds the key by settling on the import's change signal (store/signal.py)
            # or, when the signal is not in yet, by the catch-up an unknown credential asks for: at most
            # one catch-up, and none once the key is known.
            lookups = t.tk.catch_up.lookups
            assert (await t.client.get("/admin/api-keys", headers=_basic(IN_USE["raw"]))).status_code == 200
            after_first = t.tk.catch_up.lookups
            assert after_first - lookups <= 1
            assert (await t.client.get("/rest/V1/products", headers=_basic(IN_USE["raw"]))).status_code == 200
            assert t.tk.catch_up.lookups == after_first  # known now: no further catch-up
            assert len(await t.tk.audit.search(AuditQuery(event=audit.API_KEY_REHASHED))) == 1

    inprocess.run(body)


def test_medusa_js_sdk_signs_in_an_imported_customer_and_calls_with_an_original_sk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    installed("medusa", "@medusajs/js-sdk", what="the Medusa SDK test")
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t, inprocess.listening(t) as url:
            await inprocess.cli_json("import", "medusa", "--dsn", medusa_db)
            await t.tk.reload_grants()
            await t.tk.reload_api_keys()
            env = {
                "PATH": "/usr/bin:/bin:/usr/local/bin",
                "BASE": url,
                "EMAIL": "shopper@shop.test",
                "PASSWORD": SHOPPER["password"],
                "SECRET_KEY": IN_USE["raw"],
                "PUBLISHABLE_KEY": PUBLISHABLE["raw"],
            }
            res = await asyncio.to_thread(
                subprocess.run,
                ["node", "imported-flow.mjs"],
                cwd=JS,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert res.returncode == 0, res.stderr
            out = json.loads(res.stdout)
            assert out["login"] == {"ok": True, "value": "string"}
            assert out["me"] == {"ok": True, "value": "shopper@shop.test"}
            assert out["wrong_password"] == {"ok": False, "status": 401, "message": "Invalid email or password"}
            assert out["keys"]["ok"] and IN_USE["redacted"] in out["keys"]["value"]
            assert out["keys_again"]["ok"]

    inprocess.run(body)


async def _medusa(dsn: str, *statements: str) -> None:
    """Change the Medusa database between runs, as the shop keeps running during a migration."""
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def test_on_conflict_update_refreshes_keys_from_the_source_and_never_lifts_a_revocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    """After the first import, Medusa renamed and revoked the key in use and renamed the
    publishable key, which an operator had revoked in Tillkey meanwhile. `skip` and
    `update --dry-run` write nothing; `update` renames both (audited), revokes the secret key here
    too, keeps the publishable one revoked and leaves a key made in Tillkey alone; `fail` stops."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    args = ("import", "medusa", "--dsn", medusa_db)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            assert (await inprocess.cli_json(*args))["imported"]["sk_"] == 2
            own = await inprocess.cli_json(
                "api-key", "create", "--title", "Own", "--type", "secret", "--for", "owner@shop.test"
            )
            await t.tk.reload_grants()
            await t.tk.reload_api_keys()
            assert (await t.client.get("/admin/api-keys", headers=_basic(IN_USE["raw"]))).status_code == 200

            async def keys() -> dict[str, dict[str, object]]:
                return {k["redacted"]: k for k in (await inprocess.cli_json("api-key", "list"))["api_keys"]}

            before = await keys()
            pk = before[PUBLISHABLE["redacted"]]["id"]
            await inprocess.cli_json("api-key", "revoke", str(pk))
            before = await keys()
            await _medusa(
                medusa_db,
                "UPDATE api_key SET title = 'ERP (old)', revoked_at = now() - interval '1 minute' WHERE id = 'apk_1'",
                "UPDATE api_key SET title = 'Storefront' WHERE id = 'apk_3'",
            )
            skipped = await inprocess.cli_json(*args)
            assert {"kind": "sk_", "reason": "already in Tillkey", "count": 2} in skipped["skipped"]
            dry = await inprocess.cli_json(*args, "--on-conflict", "update", "--dry-run")
            assert dry["updated"] == {"admin": 1, "customer": 1, "sk_": 1, "pk_": 1}
            assert {"kind": "sk_", "reason": "already in Tillkey, unchanged", "count": 1} in dry["skipped"]
            assert await keys() == before
            await t.tk.reload_api_keys()
            assert (await t.client.get("/admin/api-keys", headers=_basic(IN_USE["raw"]))).status_code == 200

            updated = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert updated["updated"] == {"admin": 1, "customer": 1, "sk_": 1, "pk_": 1}
            after = await keys()
            assert after[IN_USE["redacted"]]["title"] == "ERP (old)" and after[IN_USE["redacted"]]["revoked_at"]
            assert after[PUBLISHABLE["redacted"]]["title"] == "Storefront"
            assert after[PUBLISHABLE["redacted"]]["revoked_at"] == before[PUBLISHABLE["redacted"]]["revoked_at"]
            assert after[own["redacted"]] == before[own["redacted"]]
            assert after[REVOKED["redacted"]] == before[REVOKED["redacted"]]
            await t.tk.reload_api_keys()  # what the change feed brings within a second
            assert (await t.client.get("/admin/api-keys", headers=_basic(IN_USE["raw"]))).status_code == 401
            r = await t.client.get("/store/customers/me", headers={"x-publishable-api-key": PUBLISHABLE["raw"]})
            assert r.status_code == 400 and "valid publishable key" in r.json()["message"]  # still revoked
            changed = await t.tk.audit.search(AuditQuery(event=audit.API_KEY_CHANGED))
            assert sorted(tuple(json.loads(r.details or "{}")["fields"]) for r in changed) == [
                ("title",),
                ("title", "revoked"),
            ]
            revoked = await t.tk.audit.search(AuditQuery(event=audit.API_KEY_REVOKED))
            assert [json.loads(r.details or "{}").get("imported") for r in revoked] == [True, None]

            again = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert "sk_" not in again["updated"] and "pk_" not in again["updated"]
            assert len(await t.tk.audit.search(AuditQuery(event=audit.API_KEY_CHANGED))) == 2
            failed = await inprocess.cli(*args, "--on-conflict", "fail", check=False)
            assert failed.exit_code == 1 and "already in Tillkey (--on-conflict fail)" in failed.stderr

    inprocess.run(body)
