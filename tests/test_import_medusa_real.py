"""`tillkey import medusa` on a database a real Medusa 2.21.2 made (issue 17): its own tables,
schema and rows as `pg_dump` took them (tests/vectors/medusa_db/dump.sql, seeded through Medusa's
HTTP API by seed.py beside it), loaded into a fresh PostgreSQL database. The imported admins and
customers sign in with the passwords they had in Medusa, the customer who had TOTP on in Medusa
still needs her authenticator app's code, the original `sk_` key keeps working (and the revoked
one does not), and @medusajs/js-sdk does both unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pyotp
import pytest

from tests import inprocess
from tests.conftest import make_database
from tests.js_packages import installed

VECTORS = Path(__file__).parent / "vectors" / "medusa_db"
SEED = json.loads((VECTORS / "seed.json").read_text())
JS = Path(__file__).parent / "js" / "medusa"


async def _load(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute((VECTORS / "dump.sql").read_text())
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


def _basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{raw}:".encode()).decode()}


def test_a_real_medusa_database_imports_and_everyone_signs_in_with_the_old_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medusa_db: str
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MEDUSA_MFA_KEY", SEED["mfa_encryption_key"])
    monkeypatch.setenv("WRONG", "another-key-than-the-shops")

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            # Without Medusa's mfa.encryption_key, Carol (TOTP on) is not imported weaker: skipped.
            dry = await inprocess.cli_json("import", "medusa", "--dsn", medusa_db, "--dry-run")
            assert dry["imported"] == {"admin": 2, "customer": 2, "sk_": 2, "pk_": 2}, dry
            needs_key = "TOTP factor on: give Medusa's mfa.encryption_key (--mfa-key-env)"
            assert dry["skipped"] == [{"kind": "customer", "reason": needs_key, "count": 1}], dry
            dry_run = ("import", "medusa", "--dsn", medusa_db, "--dry-run")
            wrong = await inprocess.cli_json(*dry_run, "--mfa-key-env", "WRONG")
            unopened = "TOTP secret does not open with the mfa.encryption_key"
            assert wrong["skipped"] == [{"kind": "customer", "reason": unopened, "count": 1}], wrong
            args = ("import", "medusa", "--dsn", medusa_db, "--mfa-key-env", "MEDUSA_MFA_KEY")
            report = await inprocess.cli_json(*args)
            # The guest (no account) and the customer Medusa deleted are not people to sign in.
            assert report["imported"] == {"admin": 2, "customer": 3, "sk_": 2, "pk_": 2}, report
            assert report["skipped"] == [], report
            await t.tk.reload_grants()
            await t.tk.reload_api_keys()

            for email, password in SEED["admins"].items():
                r = await t.client.post("/auth/user/emailpass", json={"email": email, "password": password})
                assert r.status_code == 200, (email, r.text)
                me = await t.client.get("/admin/users/me", headers=t.bearer(r.json()["token"]))
                assert me.status_code == 200 and me.json()["user"]["email"] == email, me.text
            pk = {"x-publishable-api-key": SEED["publishable_keys"][0]}
            for email in ("ada@shop.test", "bob@shop.test", "carol@shop.test"):
                creds = {"email": email, "password": SEED["customers"][email]}
                r = await t.client.post("/auth/customer/emailpass", json=creds)
                assert r.status_code == 200, (email, r.text)
                token = r.json()["token"]
                if email == "carol@shop.test":
                    # Her factor came along: the code of the app she enrolled in Medusa completes it.
                    assert r.json()["mfa_required"] is True, r.text
                    code = pyotp.TOTP(SEED["mfa_customer"]["totp_secret"]).at(t.clock.now())
                    r = await t.client.post(
                        f"/auth/mfa/challenges/{r.json()['mfa_challenge']['id']}/verify",
                        json={"method": "totp", "code": code},
                        headers=t.bearer(token),
                    )
                    assert r.status_code == 200, r.text
                    token = r.json()["token"]
                me = await t.client.get("/store/customers/me", headers={**pk, **t.bearer(token)})
                assert me.status_code == 200 and me.json()["customer"]["email"] == email, me.text
            wrong = {"email": "ada@shop.test", "password": SEED["customers"]["ada@shop.test"] + "x"}
            assert (await t.client.post("/auth/customer/emailpass", json=wrong)).status_code == 401
            gone = {"email": "gone@shop.test", "password": SEED["customers"]["gone@shop.test"]}
            assert (await t.client.post("/auth/customer/emailpass", json=gone)).status_code == 401

            sk = SEED["secret_key"]["token"]
            r = await t.client.get("/admin/api-keys", headers=_basic(sk))
            assert r.status_code == 200, r.text
            titles = {k["title"] for k in r.json()["api_keys"]}
            assert {"ERP", "old ERP", "Web shop", "Default Publishable API Key"} <= titles
            revoked = SEED["revoked_secret_key"]["token"]
            assert (await t.client.get("/admin/api-keys", headers=_basic(revoked))).status_code == 401
            for key in SEED["publishable_keys"]:  # both open the /store gate (the route then wants a customer)
                r = await t.client.get("/store/customers/me", headers={"x-publishable-api-key": key})
                assert r.status_code == 401, r.text

            again = await inprocess.cli_json(*args)
            assert again["imported"] == {}, again

    inprocess.run(body)


def test_medusa_js_sdk_signs_in_with_the_real_medusa_password_and_sk(
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
                "EMAIL": "bob@shop.test",
                "PASSWORD": SEED["customers"]["bob@shop.test"],
                "SECRET_KEY": SEED["secret_key"]["token"],
                "PUBLISHABLE_KEY": SEED["publishable_keys"][1],
            }
            cmd = ["node", "imported-flow.mjs"]
            res = await asyncio.to_thread(
                subprocess.run, cmd, cwd=JS, env=env, capture_output=True, text=True, timeout=120
            )
            assert res.returncode == 0, res.stderr
            out = json.loads(res.stdout)
            assert out["login"] == {"ok": True, "value": "string"}
            assert out["me"] == {"ok": True, "value": "bob@shop.test"}
            assert out["wrong_password"] == {"ok": False, "status": 401, "message": "Invalid email or password"}
            assert out["keys"]["ok"] and len(out["keys"]["value"]) == 4, out
            assert out["keys_again"]["ok"]

    inprocess.run(body)
