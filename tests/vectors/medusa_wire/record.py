"""Record tests/vectors/medusa_wire/mfa_verification.json from a running Medusa 2.21.2.

Not a test: run by hand against the peer of shared/specs/medusa-peer.md, with the auth module
options and the `auth.verification_requested` capture subscriber that the recording's "how" field
lists. Two runs, as the two need different server settings:

    # MFA (defaults: challenge 300 s, 5 attempts), then one short-lived challenge
    .venv/bin/python tests/vectors/medusa_wire/record.py mfa --base http://127.0.0.1:9000 \
        --peer /tmp/peer/medusa-server
    # VERIFY_EMAIL=1 VERIF_TTL=6 MFA_TTL=4 on the server
    .venv/bin/python tests/vectors/medusa_wire/record.py verification --base ... --peer ...

Each run merges its calls into the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests import medusa_wire  # noqa: E402

ABOUT = {
    "recorded": "2026-12-06, by tests/vectors/medusa_wire/record.py over real HTTP (httpx) on 127.0.0.1",
    "server": "@medusajs/medusa, @medusajs/framework, @medusajs/cli 2.21.2 (npm), Node v20.20.2, PostgreSQL 15, "
    "`medusa start` with NODE_ENV=development as shared/specs/medusa-peer.md, admin disabled",
    "auth_module_options": {
        "providers": [{"resolve": "@medusajs/medusa/auth-emailpass", "id": "emailpass"}],
        "mfa": {"encryption_key": "<32 chars>", "disable_policy": "session"},
        "mfa_run": "challenge_ttl_seconds and challenge_max_attempts left at their defaults (300 s, 5)",
        "verification_run": "mfa.challenge_ttl_seconds 4 and verification providers "
        "[{id: token, options: {ttl_seconds: 6}}], so that expiry is recorded in seconds",
    },
    "verification_run_http": {
        "authVerificationsPerActor": {
            "customer": [{"auth_provider": "emailpass", "entity_type": "email"}],
            "user": [{"auth_provider": "emailpass", "entity_type": "email"}],
        }
    },
    "codes": "verification codes read from an `auth.verification_requested` subscriber; TOTP codes from pyotp",
    "markers": "values that differ per run are type markers: <jwt>, <id:PREFIX> (PREFIX_ULID), <datetime>, "
    "<email>, <otpauth-url>, <string>; lists as {<list>: length, item: first item's shape}",
}
OUT = Path(__file__).with_name("mfa_verification.json")
ADMIN = ("admin@test.com", "supersecret")
CUSTOMER_PASSWORD = "pw-Medusa-21"


def totp(secret: str, steps: int) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def publishable_key() -> str:
    sql = "SELECT token FROM api_key WHERE type = 'publishable' AND revoked_at IS NULL AND deleted_at IS NULL LIMIT 1"
    cmd = ["psql", "-h", "127.0.0.1", "-U", "medusa", "-d", "medusa_peer", "-tAc", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


async def new_customer(client: httpx.AsyncClient, email: str) -> None:
    creds = {"email": email, "password": CUSTOMER_PASSWORD}
    r = await client.post("/auth/customer/emailpass/register", json=creds)
    r.raise_for_status()
    headers = {"authorization": f"Bearer {r.json()['token']}", "x-publishable-api-key": publishable_key()}
    r = await client.post("/store/customers", json={"email": email}, headers=headers)
    r.raise_for_status()


async def new_user(peer_dir: Path, email: str, password: str) -> None:
    cli = str(peer_dir / "node_modules/.bin/medusa")
    quiet = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        cli, "user", "-e", email, "-p", password, cwd=peer_dir, stdout=quiet, stderr=quiet
    )
    await proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["mfa", "verification"])
    ap.add_argument("--base", default="http://127.0.0.1:9000")
    ap.add_argument("--peer", type=Path, default=Path("/tmp/peer/medusa-server"))
    args = ap.parse_args()
    stamp = secrets.token_hex(3)

    async def verification_code(email: str) -> str:
        for _ in range(50):
            f = args.peer / "last-auth_verification_requested.json"
            if f.exists():
                data = json.loads(f.read_text())
                if data["entity_id"] == email:
                    f.unlink()
                    return str(data["code"])
            await asyncio.sleep(0.1)
        raise RuntimeError("no auth.verification_requested event captured")

    async def expire(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async with httpx.AsyncClient(base_url=args.base, timeout=30) as client:
        (await client.get("/health")).raise_for_status()
        store = {"x-publishable-api-key": publishable_key()}
        rec = medusa_wire.Recorder(medusa_wire.Peer(client, totp, verification_code, expire, store))
        if args.part == "mfa":
            cust = f"mfa{stamp}@test.com"
            await new_customer(client, cust)
            state = await medusa_wire.mfa(rec, "customer", cust, CUSTOMER_PASSWORD, 5)
            await medusa_wire.mfa_disable(rec, "customer", cust, CUSTOMER_PASSWORD, state)
            admin = (f"adm{stamp}@test.com", "supersecret-admin")
            await new_user(args.peer, *admin)
            state = await medusa_wire.mfa(rec, "user", *admin, 5)
            await medusa_wire.mfa_disable(rec, "user", *admin, state)
        else:
            for actor in ("customer", "user"):
                email = f"ver{actor[0]}{stamp}@test.com"
                if actor == "customer":
                    await new_customer(client, email)
                else:
                    await new_user(args.peer, email, CUSTOMER_PASSWORD)
                await medusa_wire.verification(rec, actor, email, CUSTOMER_PASSWORD, 6)
                await medusa_wire.mfa_expiry(rec, actor, email, CUSTOMER_PASSWORD, 4)
                email2 = f"vex{actor[0]}{stamp}@test.com"
                if actor == "customer":
                    await new_customer(client, email2)
                else:
                    await new_user(args.peer, email2, CUSTOMER_PASSWORD)
                await medusa_wire.verification_expiry(rec, actor, email2, CUSTOMER_PASSWORD, 6)

    out: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    out["about"] = ABOUT
    out[args.part] = rec.calls
    OUT.write_text(medusa_wire.dump({k: out[k] for k in ("about", "mfa", "verification") if k in out}))
    print(f"{len(rec.calls)} calls recorded into {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
