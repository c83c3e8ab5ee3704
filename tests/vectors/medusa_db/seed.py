"""Seed a fresh Medusa 2.21.2 (shared/specs/medusa-peer.md) for tests/vectors/medusa_db/dump.sql.

The peer's auth module options: `{providers: [emailpass], mfa: {encryption_key:
"0123456789abcdef0123456789abcdef"}}` (the key the test gives `--mfa-key-env`).

Not a test: run once by hand against the running peer, after `medusa db:migrate` on an empty
database and `medusa user -e owner@shop.test -p Owner-pass-21` and `-e ops@shop.test -p
Ops-pass-2121`. Everything goes through Medusa's own HTTP API; what the test needs to sign in
with (passwords, the secret key shown once) is written to seed.json beside the dump.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pyotp

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9000"
OUT = Path(__file__).with_name("seed.json")
ADMINS = {"owner@shop.test": "Owner-pass-21", "ops@shop.test": "Ops-pass-2121"}
CUSTOMERS = {
    "ada@shop.test": ("Ada-pass-2121", "Ada", "Lovelace"),
    "bob@shop.test": ("Bob-pass-2121", "Bob", "Builder"),
    "carol@shop.test": ("Carol-pass-21", "Carol", "Mfa"),  # enables TOTP below
    "gone@shop.test": ("Gone-pass-2121", "Gone", "Deleted"),  # soft-deleted below
}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def main() -> None:
    c = httpx.Client(base_url=BASE, timeout=30)
    owner = c.post("/auth/user/emailpass", json={"email": "owner@shop.test", "password": ADMINS["owner@shop.test"]})
    admin = bearer(owner.raise_for_status().json()["token"])
    keys = c.get("/admin/api-keys", params={"type": "publishable"}, headers=admin).raise_for_status().json()
    pk = keys["api_keys"][0]["token"]
    secret = c.post("/admin/api-keys", json={"title": "ERP", "type": "secret"}, headers=admin).raise_for_status()
    sk = secret.json()["api_key"]
    revoked = c.post("/admin/api-keys", json={"title": "old ERP", "type": "secret"}, headers=admin).raise_for_status()
    old = revoked.json()["api_key"]
    c.post(f"/admin/api-keys/{old['id']}/revoke", json={}, headers=admin).raise_for_status()
    shop = c.post("/admin/api-keys", json={"title": "Web shop", "type": "publishable"}, headers=admin)
    shop.raise_for_status()

    ids = {}
    for email, (password, first, last) in CUSTOMERS.items():
        reg = c.post("/auth/customer/emailpass/register", json={"email": email, "password": password})
        headers = {**bearer(reg.raise_for_status().json()["token"]), "x-publishable-api-key": pk}
        body = {"email": email, "first_name": first, "last_name": last}
        ids[email] = c.post("/store/customers", json=body, headers=headers).raise_for_status().json()["customer"]["id"]
    # A guest: a customer record without an account (has_account false), made by an admin.
    guest = {"email": "guest@shop.test", "first_name": "Guest", "last_name": "Only"}
    c.post("/admin/customers", json=guest, headers=admin).raise_for_status()
    c.delete(f"/admin/customers/{ids['gone@shop.test']}", headers=admin).raise_for_status()

    # Carol turns TOTP on (Medusa 2.21's MFA), so the dump holds a customer with a factor.
    login = c.post("/auth/customer/emailpass", json={"email": "carol@shop.test", "password": "Carol-pass-21"})
    token = bearer(login.raise_for_status().json()["token"])
    started = c.post("/auth/mfa/factors", json={"provider": "totp"}, headers=token).raise_for_status().json()
    code = pyotp.TOTP(started["secret"]).at(time.time())
    factor = started["mfa_factor"]["id"]
    c.post(f"/auth/mfa/factors/{factor}/verify", json={"code": code}, headers=token).raise_for_status()

    OUT.write_text(
        json.dumps(
            {
                "admins": ADMINS,
                "customers": {e: p for e, (p, _, _) in CUSTOMERS.items()},
                "deleted_customer": "gone@shop.test",
                "guest": "guest@shop.test",
                "mfa_customer": {"email": "carol@shop.test", "totp_secret": started["secret"]},
                "secret_key": {"token": sk["token"], "title": sk["title"], "created_by": "owner@shop.test"},
                "revoked_secret_key": {"token": old["token"], "title": old["title"]},
                "publishable_keys": [pk, shop.json()["api_key"]["token"]],
                "mfa_encryption_key": "0123456789abcdef0123456789abcdef",
            },
            indent=2,
        )
        + "\n"
    )
    print("seeded; wrote", OUT)


if __name__ == "__main__":
    main()
