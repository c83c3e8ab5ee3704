"""`tillkey import magento` against MariaDB loaded with Magento 2.4's definitions of the tables it
reads (magento-migration.md §A.1) and password hashes made by PHP the way Magento's Encryptor does
(tests/vectors/legacy_hashes/magento.json): imported admins and customers sign in with their old
passwords, roles keep the resources Tillkey knows, and a second run duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyotp
import pytest
import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

from tests import inprocess
from tests.mariadb import MariaDB, connect
from tillkey import audit
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery
from tillkey.storeapi.seed import seed

VECTORS = {
    v["name"]: v
    for v in json.loads((Path(__file__).parent / "vectors/legacy_hashes/magento.json").read_text())["vectors"]
}
LATEST = VECTORS["version 3_32_2_67108864 (2.4.7+ default)"]
CHAIN = VECTORS["chain 1:2 (sha256 upgraded by customer:hash:upgrade)"]
MD5 = VECTORS["version 0 (md5)"]
M1 = VECTORS["Magento 1 md5 with a 2-character salt, migrated"]
# Secrets encrypted at rest by PHP as Magento's Encryptor does (tests/vectors/magento_encryptor).
ENCRYPTED = json.loads((Path(__file__).parent / "vectors/magento_encryptor/magento.json").read_text())
SECRET = {v["name"]: v for v in ENCRYPTED["vectors"]}
TOKEN = ENCRYPTED["tokens"]
ERP = {  # sodium with the newest key
    "consumer_key": TOKEN["erp consumer key"],
    "consumer_secret": SECRET["erp consumer secret, sodium, newest key"]["stored"],
    "token": TOKEN["erp access token"],
    "token_secret": SECRET["erp access token secret, sodium, newest key"]["stored"],
}
PIM = {  # the consumer secret under the older key, the token secret stored plain (before 2.4.3-p2)
    "consumer_key": TOKEN["pim consumer key"],
    "consumer_secret": SECRET["pim consumer secret, sodium, older key"]["stored"],
    "token": TOKEN["pim access token"],
    "token_secret": SECRET["pim access token secret, plain (before 2.4.3-p2)"]["stored"],
}

# Magento 2.4's db_schema.xml for these tables, as MySQL DDL (the columns the import reads and
# their neighbours; foreign keys to the store tables left out).
SCHEMA = [
    """CREATE TABLE admin_user (user_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        firstname varchar(32), lastname varchar(32), email varchar(128), username varchar(40),
        password varchar(255) NOT NULL, created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
        modified timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, logdate timestamp NULL,
        lognum smallint unsigned NOT NULL DEFAULT 0, reload_acl_flag smallint NOT NULL DEFAULT 0,
        is_active smallint NOT NULL DEFAULT 1, extra text, rp_token text, rp_token_created_at timestamp NULL,
        interface_locale varchar(16) NOT NULL DEFAULT 'en_US', failures_num smallint DEFAULT 0,
        first_failure timestamp NULL, lock_expires timestamp NULL, UNIQUE KEY ADMIN_USER_USERNAME (username))""",
    """CREATE TABLE authorization_role (role_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        parent_id int unsigned NOT NULL DEFAULT 0, tree_level smallint unsigned NOT NULL DEFAULT 0,
        sort_order smallint unsigned NOT NULL DEFAULT 0, role_type varchar(1) NOT NULL DEFAULT '0',
        user_id int unsigned NOT NULL DEFAULT 0, user_type varchar(16), role_name varchar(50))""",
    """CREATE TABLE authorization_rule (rule_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        role_id int unsigned NOT NULL DEFAULT 0, resource_id varchar(255), privileges varchar(20),
        permission varchar(10),
        CONSTRAINT AUTHORIZATION_RULE_ROLE_ID FOREIGN KEY (role_id)
            REFERENCES authorization_role (role_id) ON DELETE CASCADE)""",
    """CREATE TABLE customer_entity (entity_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        website_id smallint unsigned, email varchar(255), group_id smallint unsigned NOT NULL DEFAULT 0,
        increment_id varchar(50), store_id smallint unsigned DEFAULT 0,
        created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
        is_active smallint unsigned NOT NULL DEFAULT 1, firstname varchar(255), lastname varchar(255),
        password_hash varchar(128), rp_token varchar(128), confirmation varchar(64),
        failures_num smallint DEFAULT 0, first_failure timestamp NULL, lock_expires timestamp NULL,
        UNIQUE KEY CUSTOMER_ENTITY_EMAIL_WEBSITE_ID (email, website_id))""",
    """CREATE TABLE tfa_user_config (config_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        user_id int unsigned NOT NULL, encoded_providers text, encoded_config text, default_provider varchar(255))""",
    """CREATE TABLE oauth_consumer (entity_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at timestamp NULL,
        name varchar(255) NOT NULL, `key` varchar(32) NOT NULL, secret varchar(128) NOT NULL,
        callback_url text, rejected_callback_url text NOT NULL,
        UNIQUE KEY OAUTH_CONSUMER_KEY (`key`), UNIQUE KEY OAUTH_CONSUMER_SECRET (secret))""",
    """CREATE TABLE oauth_token (entity_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        consumer_id int unsigned, admin_id int unsigned, customer_id int unsigned,
        type varchar(16) NOT NULL, token varchar(32) NOT NULL, secret varchar(128) NOT NULL,
        verifier varchar(32), callback_url text NOT NULL, revoked smallint unsigned NOT NULL DEFAULT 0,
        authorized smallint unsigned NOT NULL DEFAULT 0, user_type int,
        created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE KEY OAUTH_TOKEN_TOKEN (token),
        CONSTRAINT OAUTH_TOKEN_CONSUMER_ID FOREIGN KEY (consumer_id)
            REFERENCES oauth_consumer (entity_id) ON DELETE CASCADE)""",
    """CREATE TABLE integration (integration_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name varchar(255) NOT NULL, email varchar(255) NOT NULL, endpoint varchar(255),
        status smallint unsigned NOT NULL, consumer_id int unsigned,
        created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, setup_type smallint unsigned NOT NULL DEFAULT 0,
        identity_link_url varchar(255), UNIQUE KEY INTEGRATION_NAME (name),
        UNIQUE KEY INTEGRATION_CONSUMER_ID (consumer_id),
        CONSTRAINT INTEGRATION_CONSUMER_ID_OAUTH_CONSUMER_ENTITY_ID FOREIGN KEY (consumer_id)
            REFERENCES oauth_consumer (entity_id) ON DELETE CASCADE)""",
]
ROLES = [  # (role_id, parent, type, user_id, user_type, name)
    (1, 0, "G", 0, "2", "Administrators"),
    (2, 0, "G", 0, "2", "Catalog editors"),
    (3, 1, "U", 1, "2", "Bo"),
    (4, 2, "U", 2, "2", "Eddie"),
    (5, 1, "U", 4, "2", "Gone"),
    (9, 1, "U", 5, "2", "Tia"),
    # Integrations hold their rules on their own U row: user_type '1', role_name "1" + id.
    (6, 0, "U", 1, "1", "11"),
    (7, 0, "U", 2, "1", "12"),
    (8, 0, "U", 3, "1", "13"),
]
RULES = [  # a role that is not "all" has one row per resource: allow or deny
    (1, "Magento_Backend::all", "allow"),
    (2, "Magento_Backend::admin", "allow"),
    (2, "Magento_Catalog::products", "allow"),
    (2, "Magento_Sales::actions_view", "deny"),
    (2, "Vendor_Module::thing", "allow"),
    (6, "Magento_Backend::admin", "allow"),
    (6, "Magento_Catalog::products", "allow"),
    (6, "Magento_Sales::actions_view", "deny"),
    (7, "Magento_Backend::all", "allow"),
    (8, "Magento_Backend::all", "allow"),
]
# (consumer id, name, key, encrypted secret); 3's secret is under a key the crypt/key lacks.
CONSUMERS = [
    (1, "ERP", ERP["consumer_key"], ERP["consumer_secret"]),
    (2, "PIM", PIM["consumer_key"], PIM["consumer_secret"]),
    (3, "Lost", "l" * 32, "5" + ERP["consumer_secret"][1:]),
]
TOKENS = [  # (consumer id, type, token, secret, revoked): only the newest unrevoked access token counts
    (1, "access", "r" * 32, SECRET["non-ASCII, sodium"]["stored"], 1),
    (1, "access", ERP["token"], ERP["token_secret"], 0),
    (2, "verifier", "v" * 32, "w" * 32, 0),
    (2, "access", PIM["token"], PIM["token_secret"], 0),
]
INTEGRATIONS = [(1, "ERP", "erp@shop.test", 1), (2, "PIM", "pim@shop.test", 1), (3, "Lost", "", 1)]
ADMINS = [  # (user_id, username, email, password, is_active); 3 has no role row
    (1, "boss", "boss@shop.test", LATEST["hash"], 1),
    (2, "eddie", "eddie@shop.test", CHAIN["hash"], 1),
    (3, "orphan", "orphan@shop.test", MD5["hash"], 1),
    (4, "gone", "gone@shop.test", MD5["hash"], 0),
    (5, "tia", "tia@shop.test", LATEST["hash"], 1),  # with Google two-factor (TFA below)
]
# tfa_user_config rows: (user_id, encoded_providers, encoded_config), the config encrypted by PHP.
TFA = [(5, '["google"]', ENCRYPTED["totp"]["encoded_config"])]
CUSTOMERS = [  # (website_id, email, password_hash)
    (1, "new@shop.test", LATEST["hash"]),
    (1, "m1@shop.test", M1["hash"]),
    (2, "M1@shop.test", MD5["hash"]),  # the same person on a second website
    (1, "nopass@shop.test", None),
]


@pytest.fixture
def magento_db(mariadb: MariaDB) -> Iterator[str]:
    """A Magento database of the test's own on the session's private MariaDB, as a DSN."""
    name = f"tillkey_magento_{secrets.token_hex(4)}"
    conn = connect(mariadb.dsn(), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"USE `{name}`")
            for ddl in SCHEMA:
                cur.execute(ddl)
            cur.executemany(
                "INSERT INTO authorization_role (role_id, parent_id, role_type, user_id, user_type, role_name)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                ROLES,
            )
            cur.executemany(
                "INSERT INTO authorization_rule (role_id, resource_id, privileges, permission) VALUES (%s, %s, '', %s)",
                RULES,
            )
            cur.executemany(
                "INSERT INTO admin_user (user_id, username, email, password, is_active, firstname)"
                " VALUES (%s, %s, %s, %s, %s, 'A')",
                ADMINS,
            )
            cur.executemany(
                "INSERT INTO tfa_user_config (user_id, encoded_providers, encoded_config) VALUES (%s, %s, %s)", TFA
            )
            cur.executemany(
                "INSERT INTO oauth_consumer (entity_id, name, `key`, secret, rejected_callback_url)"
                " VALUES (%s, %s, %s, %s, '')",
                CONSUMERS,
            )
            cur.executemany(
                "INSERT INTO oauth_token (consumer_id, type, token, secret, revoked, callback_url, user_type)"
                " VALUES (%s, %s, %s, %s, %s, 'oob', 1)",
                TOKENS,
            )
            cur.executemany(
                "INSERT INTO integration (integration_id, name, email, status, consumer_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(i, n, e, st, i) for i, n, e, st in INTEGRATIONS],
            )
            cur.executemany(
                "INSERT INTO customer_entity (website_id, email, password_hash, firstname, lastname)"
                " VALUES (%s, %s, %s, 'C', 'D')",
                CUSTOMERS,
            )
        yield mariadb.dsn(name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


CRYPT_KEY = ("--crypt-key-env", "MAGENTO_CRYPT_KEY")


def test_import_then_sign_in_with_the_old_passwords_and_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MAGENTO_CRYPT_KEY", ENCRYPTED["crypt_key"])

    async def body() -> None:
        # "optional": the admins who have a second factor must use it (tia), the others need none.
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            dry = await inprocess.cli_json("import", "magento", "--dsn", magento_db, "--dry-run")
            assert dry["imported"] == {"admin": 3, "customer": 2}  # tia's second factor needs the key
            assert {
                "kind": "admin",
                "reason": "two-factor secret encrypted: give the crypt/key (--crypt-key-env)",
                "count": 1,
            } in dry["skipped"]
            assert {(x["kind"], x["reason"], x["count"]) for x in dry["skipped"] if x["kind"] == "integration"} == {
                ("integration", "secret encrypted: give the crypt/key (--crypt-key-env)", 3)
            }
            report = await inprocess.cli_json("import", "magento", "--dsn", magento_db, *CRYPT_KEY)
            assert report["imported"] == {"admin": 4, "customer": 2, "integration": 2}
            assert {(x["kind"], x["reason"]) for x in report["skipped"]} == {
                ("admin", "no role"),
                ("customer", "same email on another website"),
                ("customer", "no password"),
                ("integration", "encrypted with key 5, which the crypt/key does not hold"),
            }
            assert report["unknown_resources"] == {"Vendor_Module::thing": 1}
            again = await inprocess.cli_json("import", "magento", "--dsn", magento_db, *CRYPT_KEY)
            assert again["imported"] == {}

            boss = await t.admin_token("boss", LATEST["password"])
            assert (await t.client.get("/rest/V1/orders", headers=t.bearer(boss))).status_code == 200
            eddie = await t.admin_token("eddie", CHAIN["password"])
            assert (await t.client.get("/rest/V1/products", headers=t.bearer(eddie))).status_code == 200
            assert (await t.client.get("/rest/V1/orders", headers=t.bearer(eddie))).status_code == 403  # denied
            gone = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "gone", "password": MD5["password"]}
            )
            assert gone.status_code == 401  # imported inactive, as in Magento
            await t.customer_token("new@shop.test", LATEST["password"])
            await t.customer_token("m1@shop.test", M1["password"])
            # tia's Google authenticator keeps working: the password alone is not enough.
            tia = {"username": "tia", "password": LATEST["password"]}
            alone = await t.client.post("/rest/V1/integration/admin/token", json=tia)
            assert alone.status_code == 400 and alone.json()["parameters"] == {"active_providers": ["google"]}
            otp = pyotp.TOTP(ENCRYPTED["totp"]["secret"]).at(t.clock.now())
            r = await t.client.post("/rest/V1/tfa/provider/google/authenticate", json={**tia, "otp": otp})
            assert r.status_code == 200, r.text
            rehashed = await t.tk.audit.search(AuditQuery(event=audit.PASSWORD_REHASHED))
            schemes = sorted(json.loads(r.details or "{}")["scheme"] for r in rehashed)
            assert schemes == ["magento:0", "magento:1:2"] + ["magento:3_32_2_67108864"] * 3

    inprocess.run(body)


def _oauth1(machine: dict[str, str]) -> OAuth1:
    """What the ERP already signs with: its original consumer and access credentials, in the clear."""
    plain = {v["stored"]: v["plain"] for v in ENCRYPTED["vectors"]}
    return OAuth1(
        machine["consumer_key"],
        plain[machine["consumer_secret"]],
        machine["token"],
        plain[machine["token_secret"]],
        signature_method=SIGNATURE_HMAC_SHA256,
    )


def test_real_clients_use_what_was_imported_requests_oauthlib_and_my_magento(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str, magento: ModuleType
) -> None:
    """requests-oauthlib signs with an imported integration's original secrets; my-magento signs in
    as an imported admin with the password Magento had."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MAGENTO_CRYPT_KEY", ENCRYPTED["crypt_key"])

    async def body() -> None:
        async with inprocess.running(tmp_path) as t, inprocess.listening(t) as url:
            await seed(t.tk, inprocess.CUSTOMER_PASSWORD)
            report = await inprocess.cli_json("import", "magento", "--dsn", magento_db, *CRYPT_KEY)
            assert report["imported"]["integration"] == 2
            await t.tk.reload_integrations()

            def get(path: str, machine: dict[str, str]) -> requests.Response:
                return requests.get(url + path, auth=_oauth1(machine), timeout=10)

            erp = await asyncio.to_thread(get, "/rest/V1/products", ERP)
            assert erp.status_code == 200, erp.text
            assert {p["sku"] for p in erp.json()["items"]} >= {"24-MB01"}
            # Its own role's grant came along: products allowed, sales denied.
            assert (await asyncio.to_thread(get, "/rest/V1/orders", ERP)).status_code == 403
            # PIM: a consumer secret under the older key, a token secret stored plain; all resources.
            assert (await asyncio.to_thread(get, "/rest/V1/orders", PIM)).status_code == 200
            # The revoked older token, and a wrong secret, stay refused.
            revoked = {**ERP, "token": "r" * 32, "token_secret": SECRET["non-ASCII, sodium"]["stored"]}
            assert (await asyncio.to_thread(get, "/rest/V1/products", revoked)).status_code == 401
            listed = (await inprocess.cli_json("integration", "list"))["integrations"]
            assert {(i["name"], i["status"], i["consumer_key"]) for i in listed} == {
                ("ERP", "active", ERP["consumer_key"]),
                ("PIM", "active", PIM["consumer_key"]),
            }
            assert "secret" not in json.dumps(listed).replace("has_access_token", "")

            # my-magento (PyPI), unchanged, signs in as an imported admin with the Magento password.
            def my_magento() -> str:
                client = magento.Client(
                    "127.0.0.1",
                    "boss",
                    LATEST["password"],
                    local=True,
                    user_agent="tillkey-tests",
                    login=False,
                    log_level="WARNING",
                )
                client.BASE_URL = f"{url}/rest/V1/"  # it drops the port from the domain
                assert client.authenticate() is True
                return str(client.products.by_sku("24-MB01").name)

            assert await asyncio.to_thread(my_magento) == "Joust Duffle Bag"

    inprocess.run(body)


PIM_AUTH = _oauth1(PIM)


def _source(dsn: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the Magento database between runs, as the shop keeps running during a migration."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            for sql, args in statements:
                cur.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def test_a_run_stopped_half_way_resumes_after_its_last_batch_and_update_keeps_newer_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MAGENTO_CRYPT_KEY", ENCRYPTED["crypt_key"])
    more = [(f"c{n}@shop.test", LATEST["hash"]) for n in range(1, 6)]  # read after the four above (entity_id)
    _source(
        magento_db,
        *[("INSERT INTO customer_entity (website_id, email, password_hash) VALUES (1, %s, %s)", m) for m in more],
    )

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("c3@shop.test")  # already here: the fourth batch stops a failing run
            args = ("import", "magento", "--dsn", magento_db, *CRYPT_KEY, "--batch", "2")
            stopped = await inprocess.cli(*args, "--on-conflict", "fail", check=False)
            assert stopped.exit_code == 1
            assert "already in Tillkey (--on-conflict fail)" in stopped.stderr
            async with t.tk.db.session() as s:  # the first batch committed, the failing one did not
                assert await repo.customer_by_email(s, "c2@shop.test") is not None
                assert await repo.customer_by_email(s, "c4@shop.test") is None

            resumed = await inprocess.cli_json(*args)
            assert resumed["resumed"] is True
            # Admins and integrations were done before the checkpoint; customers after c2 only.
            assert resumed["imported"] == {"customer": 2}  # c4, c5
            assert {"kind": "customer", "reason": "already in Tillkey", "count": 1} in resumed["skipped"]
            finished = await inprocess.cli_json(*args)
            assert finished["resumed"] is False and finished["imported"] == {}

            # The shop changed c1's password and name; new@ has signed in here since (rehashed).
            await t.customer_token("new@shop.test", LATEST["password"])
            _source(
                magento_db,
                (
                    "UPDATE customer_entity SET password_hash = %s, firstname = 'Cee' WHERE email = %s",
                    (MD5["hash"], "c1@shop.test"),
                ),
                ("UPDATE customer_entity SET password_hash = %s WHERE email = %s", (MD5["hash"], "new@shop.test")),
            )
            dry = await inprocess.cli_json(*args, "--on-conflict", "update", "--dry-run")
            assert dry["updated"]["customer"] == 7 and dry["imported"] == {}
            updated = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert updated["updated"] == {"admin": 4, "customer": 7}
            await t.customer_token("c1@shop.test", MD5["password"])
            async with t.tk.db.session() as s:
                c1 = await repo.customer_by_email(s, "c1@shop.test")
                assert c1 is not None and c1.firstname == "Cee"
            # Tillkey's own hash of new@ stays: the password it signed in with still works, the old one not.
            await t.customer_token("new@shop.test", LATEST["password"])
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": "new@shop.test", "password": MD5["password"]}
            )
            assert r.status_code == 401

    inprocess.run(body)


def test_on_conflict_update_refreshes_integrations_from_the_source_and_leaves_the_rest_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str
) -> None:
    """The shop went on running after the first import: ERP was renamed, granted sales and
    reauthorized (a new access token, the old one revoked), PIM deactivated. `skip` changes
    nothing, `update --dry-run` says what would change and writes nothing, `update` makes ERP
    and PIM as Magento has them (audited), leaves an integration made in Tillkey alone, and a
    second `update` finds nothing to do; a token Tillkey issued itself is never rolled back."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MAGENTO_CRYPT_KEY", ENCRYPTED["crypt_key"])
    new_token, new_secret = "n" * 16 + "0123456789abcdef", "s" * 16 + "fedcba9876543210"  # stored plain
    erp_v2 = OAuth1(
        ERP["consumer_key"],
        {v["stored"]: v["plain"] for v in ENCRYPTED["vectors"]}[ERP["consumer_secret"]],
        new_token,
        new_secret,
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    args = ("import", "magento", "--dsn", magento_db, *CRYPT_KEY)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t, inprocess.listening(t) as url:
            await seed(t.tk, inprocess.CUSTOMER_PASSWORD)
            assert (await inprocess.cli_json(*args))["imported"]["integration"] == 2
            await inprocess.cli_json("integration", "create", "--name", "Own", "-r", "Magento_Catalog::products")

            def get(path: str, auth: OAuth1) -> int:
                return requests.get(url + path, auth=auth, timeout=10).status_code

            async def status(path: str, auth: OAuth1) -> int:
                await t.tk.reload_integrations()  # what the change feed brings within a second
                return await asyncio.to_thread(get, path, auth)

            async def listed() -> dict[str, dict[str, object]]:
                return {i["name"]: i for i in (await inprocess.cli_json("integration", "list"))["integrations"]}

            before = await listed()
            _source(
                magento_db,
                ("UPDATE integration SET name = 'ERP v2', email = 'erp2@shop.test' WHERE integration_id = 1", ()),
                ("UPDATE integration SET status = 0 WHERE integration_id = 2", ()),
                ("UPDATE authorization_rule SET permission = 'allow' WHERE role_id = 6", ()),
                ("UPDATE oauth_token SET revoked = 1 WHERE consumer_id = 1", ()),
                (
                    "INSERT INTO oauth_token (consumer_id, type, token, secret, revoked, callback_url, user_type)"
                    " VALUES (1, 'access', %s, %s, 0, 'oob', 1)",
                    (new_token, new_secret),
                ),
            )
            skipped = await inprocess.cli_json(*args)
            assert {"kind": "integration", "reason": "already in Tillkey", "count": 2} in skipped["skipped"]
            dry = await inprocess.cli_json(*args, "--on-conflict", "update", "--dry-run")
            assert dry["updated"]["integration"] == 2
            for unchanged in (skipped, dry):
                assert "integration" not in unchanged["imported"]
            assert await listed() == before  # neither wrote anything
            assert await status("/rest/V1/products", _oauth1(ERP)) == 200
            assert await status("/rest/V1/orders", PIM_AUTH) == 200

            updated = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert updated["updated"]["integration"] == 2
            after = await listed()
            assert set(after) == {"ERP v2", "PIM", "Own"}
            assert after["ERP v2"]["email"] == "erp2@shop.test" and after["ERP v2"]["id"] == before["ERP"]["id"]
            assert after["PIM"]["status"] == "inactive"
            assert after["Own"] == before["Own"]  # made in Tillkey: the source does not name it
            assert await status("/rest/V1/products", _oauth1(ERP)) == 401  # revoked in Magento, so here
            assert await status("/rest/V1/products", erp_v2) == 200  # reauthorized there: works here
            assert await status("/rest/V1/orders", erp_v2) == 200  # sales granted since
            assert await status("/rest/V1/orders", PIM_AUTH) == 401  # deactivated there
            changes = await t.tk.audit.search(AuditQuery(event=audit.INTEGRATION_CHANGED))
            fields = {json.loads(r.details or "{}")["name"]: json.loads(r.details or "{}")["fields"] for r in changes}
            assert fields == {
                "ERP v2": ["name", "email", "resources", "access_token"],
                "PIM": ["status"],
            }

            again = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert "integration" not in again["updated"]
            assert {"kind": "integration", "reason": "already in Tillkey, unchanged", "count": 2} in again["skipped"]
            assert len(await t.tk.audit.search(AuditQuery(event=audit.INTEGRATION_CHANGED))) == 2

            # Reauthorized in Tillkey: Tillkey's own token stays whatever the source holds.
            own = await inprocess.cli_json("integration", "activate", "ERP v2")
            _source(magento_db, ("UPDATE integration SET email = 'erp3@shop.test' WHERE integration_id = 1", ()))
            third = await inprocess.cli_json(*args, "--on-conflict", "update")
            assert third["updated"]["integration"] == 1
            mine = OAuth1(
                ERP["consumer_key"],
                erp_v2.client.client_secret,
                own["access_token"],
                own["access_token_secret"],
                signature_method=SIGNATURE_HMAC_SHA256,
            )
            assert await status("/rest/V1/products", mine) == 200
            assert await status("/rest/V1/products", erp_v2) == 401

            failed = await inprocess.cli(*args, "--on-conflict", "fail", check=False)
            assert failed.exit_code == 1 and "already in Tillkey (--on-conflict fail)" in failed.stderr

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_customers_keep_their_website_store_group_active_flag_and_running_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str, backend: str
) -> None:
    """A customer of the second website's store 3 in the Wholesale group, one the shop set
    inactive, one locked for the next hour (Magento's lock_expires) and one whose lock ran out:
    each comes across as it was, and `update` brings later changes of the standing along. Into
    SQLite and into PostgreSQL (customers go in by COPY there)."""
    insert = (
        "INSERT INTO customer_entity (website_id, store_id, group_id, is_active, lock_expires, email, password_hash)"
        " VALUES (%s, %s, %s, %s, {lock}, %s, %s)"
    )
    _source(
        magento_db,
        (insert.format(lock="NULL"), (2, 3, 2, 1, "wholesale@shop.test", LATEST["hash"])),
        (insert.format(lock="NULL"), (1, 1, 1, 0, "inactive@shop.test", LATEST["hash"])),
        (insert.format(lock="NOW() + INTERVAL 1 HOUR"), (1, 1, 1, 1, "locked@shop.test", LATEST["hash"])),
        (insert.format(lock="NOW() - INTERVAL 1 HOUR"), (1, 1, 1, 1, "unlocked@shop.test", LATEST["hash"])),
    )

    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            inprocess.cli_environment(monkeypatch, tmp_path, db.get("database_url", ""))
            async with inprocess.running(tmp_path, **db) as t:
                await standing(t)

    async def standing(t: inprocess.InProcess) -> None:
        report = await inprocess.cli_json("import", "magento", "--dsn", magento_db, "--batch", "3")
        assert report["imported"]["customer"] == 6
        async with t.tk.db.session() as s:
            wholesale = await repo.customer_by_email(s, "wholesale@shop.test")
            assert wholesale is not None
            assert (wholesale.website_id, wholesale.store_id, wholesale.group_id) == (2, 3, 2)
        wholesale_token = await t.customer_token("wholesale@shop.test", LATEST["password"])
        me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(wholesale_token))
        assert (me.json()["website_id"], me.json()["store_id"], me.json()["group_id"]) == (2, 3, 2)
        await t.customer_token("unlocked@shop.test", LATEST["password"])

        async def refused(email: str) -> bool:
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": email, "password": LATEST["password"]}
            )
            return r.status_code == 401

        assert await refused("inactive@shop.test")
        assert await refused("locked@shop.test")  # the right password, within the lock
        t.clock.offset += 3601
        await t.customer_token("locked@shop.test", LATEST["password"])  # the lock ran out

        _source(
            magento_db,
            ("UPDATE customer_entity SET is_active = 1 WHERE email = 'inactive@shop.test'", ()),
            ("UPDATE customer_entity SET is_active = 0 WHERE email = 'wholesale@shop.test'", ()),
        )
        await inprocess.cli_json("import", "magento", "--dsn", magento_db, "--on-conflict", "update")
        await t.customer_token("inactive@shop.test", LATEST["password"])
        # Deactivated in Magento since: signed out here too, as Magento revokes its tokens.
        me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(wholesale_token))
        assert me.status_code == 401
        assert await refused("wholesale@shop.test")

    inprocess.run(body)


def test_on_a_terminal_a_progress_bar_counts_the_rows_with_an_eta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str
) -> None:
    """The bar shows only when stderr is a terminal: a real process with a pseudo-terminal there."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    tillkey = [sys.executable, "-m", "tillkey"]
    subprocess.run([*tillkey, "db", "upgrade"], check=True, capture_output=True, timeout=120)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [*tillkey, "import", "magento", "--dsn", magento_db, "--batch", "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env={**os.environ, "COLUMNS": "120"},
            timeout=120,
        )
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once everything written was read
            while chunk := os.read(controller, 65536):
                shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    text = shown.decode(errors="replace")
    # 5 admins, 3 integrations and 4 customers read; each counts, imported or skipped.
    assert "importing" in text and "12/12" in text and "100%" in text and "ETA" in text
    assert "Magento import" in done.stdout.decode()  # the report table on stdout


def test_customers_read_a_page_at_a_time_give_the_same_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magento_db: str
) -> None:
    """Pages of one row: every page boundary falls between the two websites' accounts of one
    email, and the older one still comes along while the other is reported."""
    from tillkey.migrate import magento as reader

    monkeypatch.setattr(reader, "READ_ROWS", 1)
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path):
            report = await inprocess.cli_json("import", "magento", "--dsn", magento_db)
            assert report["imported"]["customer"] == 2
            assert {(x["reason"], x["count"]) for x in report["skipped"] if x["kind"] == "customer"} == {
                ("same email on another website", 1),
                ("no password", 1),
            }

    inprocess.run(body)
