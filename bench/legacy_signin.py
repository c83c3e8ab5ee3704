"""Sign-in time of a customer with an imported (Magento, Medusa) hash against a native one.

In process (tests/inprocess.py: the whole app over httpx.ASGITransport), at the production argon2
cost (t=3, 64 MiB). Each "first sign-in" is a fresh imported account, so it includes the upgrade
to argon2id; each failure is a wrong password. Medians of N wall-clock runs, in milliseconds.

    .venv/bin/python bench/legacy_signin.py [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import inprocess  # noqa: E402

from tillkey.store import accounts as repo  # noqa: E402

VECTORS = ROOT / "tests" / "vectors" / "legacy_hashes"
ENDPOINT = "/rest/V1/integration/customer/token"


def _vector(file: str, suffix: str) -> dict[str, str]:
    found = json.loads((VECTORS / file).read_text())["vectors"]
    return next(v for v in found if v["hash"].endswith(suffix) or suffix == "*")


CASES = {
    "magento:0 (md5)": _vector("magento.json", ":0"),
    "magento:1 (sha256)": _vector("magento.json", ":1"),
    "magento:3_32_2_67108864": _vector("magento.json", ":3_32_2_67108864"),
    "medusa-scrypt": _vector("medusa.json", "*"),
}


async def main(n: int) -> None:
    settings = {
        "argon2_time_cost": 3,
        "argon2_memory_kib": 65536,
        "customer_lockout_failures": 100_000,
        "login_throttle_max_failures": 100_000,
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with inprocess.running(Path(tmp), **settings) as t:

            async def timed(email: str, password: str, status: int) -> float:
                started = time.perf_counter()
                r = await t.client.post(ENDPOINT, json={"username": email, "password": password})
                assert r.status_code == status, r.text
                return (time.perf_counter() - started) * 1000

            await t.create_customer("native@example.com")
            rows: dict[str, list[float]] = {"native, right": [], "native, wrong": []}
            for _ in range(n):
                rows["native, right"].append(await timed("native@example.com", inprocess.CUSTOMER_PASSWORD, 200))
                rows["native, wrong"].append(await timed("native@example.com", "wrong-password", 401))
            for name, vector in CASES.items():
                first, wrong = rows.setdefault(f"{name}, first (rehash)", []), rows.setdefault(f"{name}, wrong", [])
                for i in range(n):
                    email = f"{name.split()[0].replace(':', '-')}-{i}@example.com"
                    customer = await t.create_customer(email)
                    async with t.tk.db.transaction() as s:
                        await repo.set_customer_password_hash(s, customer.id, vector["hash"])
                    wrong.append(await timed(email, "wrong-password", 401))
                    first.append(await timed(email, vector["password"], 200))
    native = statistics.median(rows["native, right"])
    print(f"{'case':44} {'median ms':>10} {'p90 ms':>8} {'x native':>9}")
    for name, times in rows.items():
        med = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:44} {med:10.1f} {p90:8.1f} {med / native:9.2f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
