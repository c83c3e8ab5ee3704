"""The attack suite: each case is a request that must be refused with the right status. In process
(tests/inprocess.py): expiries and key grace periods run out by moving the injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import inprocess
from tillkey.access.delegation import OPERATOR

ROUTE = "/rest/V1/store/websites"  # Magento_Backend::store: alice may, customers may not


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _sign_hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    signing_input = _b64(header) + "." + _b64(claims)
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


async def _genuine(t: inprocess.InProcess) -> dict[str, Any]:
    await t.create_admin("alice")
    token = await t.admin_token("alice")
    header = jwt.get_unverified_header(token)
    jwks = (await t.client.get("/.well-known/jwks.json")).json()
    pub = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    return {
        "token": token,
        "header": header,
        "claims": jwt.decode(token, options={"verify_signature": False}),
        "pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "now": t.clock.now_int(),
    }


def _forgeries(g: dict[str, Any]) -> dict[str, str]:
    claims, kid, now = g["claims"], g["header"]["kid"], g["now"]
    stranger = ec.generate_private_key(ec.SECP256R1())
    sig = g["token"].split(".")[2]
    return {
        "alg none": _b64({"alg": "none", "kid": kid}) + "." + _b64(claims) + ".",
        "alg none, no kid": _b64({"alg": "none"}) + "." + _b64(claims) + ".",
        "HS256 keyed with the public key": _sign_hs256({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, g["pem"]),
        "someone else's key": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid}),
        "unknown kid": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "does-not-exist"}),
        "kid path traversal": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "../../../dev/null"}),
        "kid SQL injection": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "' OR '1'='1"}),
        "kid not a string": _b64({"alg": "ES256", "kid": 1}) + "." + _b64(claims) + "." + sig,
        "uid changed": g["token"].split(".")[0] + "." + _b64({**claims, "uid": claims["uid"] + 1}) + "." + sig,
        "utypid changed": g["token"].split(".")[0] + "." + _b64({**claims, "utypid": 1}) + "." + sig,
        "exp extended": g["token"].split(".")[0] + "." + _b64({**claims, "exp": now + 10**6}) + "." + sig,
        "signature stripped": g["token"].rsplit(".", 1)[0] + ".",
        "wrong iss": jwt.encode({**claims, "iss": "https://evil.example"}, stranger, "ES256", headers={"kid": kid}),
        "two tokens glued": g["token"] + "." + g["token"],
        "oversized token": "eyJ" + "A" * 20_000,
    }


CASES = [
    "alg none",
    "alg none, no kid",
    "HS256 keyed with the public key",
    "someone else's key",
    "unknown kid",
    "kid path traversal",
    "kid SQL injection",
    "kid not a string",
    "uid changed",
    "utypid changed",
    "exp extended",
    "signature stripped",
    "wrong iss",
    "two tokens glued",
    "oversized token",
]


@pytest.mark.parametrize("case", CASES)
def test_forged_token_is_401(tmp_path: Path, case: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            genuine = await _genuine(t)
            forged = _forgeries(genuine)[case]
            r = await t.client.get(ROUTE, headers=t.bearer(forged))
            assert r.status_code == 401, (case, r.text)
            assert r.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'
            assert r.json()["message"] == "The consumer isn't authorized to access %resources."
            # the genuine token still works: nothing above poisoned a cache
            assert (await t.client.get(ROUTE, headers=t.bearer(genuine["token"]))).status_code == 200

    inprocess.run(body)


def test_signed_with_the_real_key_but_dated_in_the_future(tmp_path: Path) -> None:
    # Only a holder of the signing key could mint these; the reader still refuses clock games.
    async def body() -> None:
        async with inprocess.running(tmp_path, jwt_alg="HS256") as t:
            await t.create_admin("alice")
            token = await t.admin_token("alice")
            kid = jwt.get_unverified_header(token)["kid"]
            secret = _hs256_secret(tmp_path / "data", kid)
            claims = jwt.decode(token, options={"verify_signature": False})
            now = t.clock.now_int()

            async def status(claims: dict[str, Any]) -> int:
                signed = jwt.encode(claims, secret, "HS256", headers={"kid": kid})
                return (await t.client.get(ROUTE, headers=t.bearer(signed))).status_code

            assert await status({**claims, "jti": "a" * 32}) == 200  # the key extraction below is right
            for bad in ({"iat": now + 3600}, {"nbf": now + 3600}, {"exp": now - 1}):
                assert await status({**claims, **bad, "jti": "b" * 32}) == 401, bad
            assert await status({**claims, "iat": now + 30, "jti": "c" * 32}) == 200  # within the leeway

    inprocess.run(body)


def _hs256_secret(data_dir: Path, kid: str) -> bytes:
    """Reads the HMAC key the way an insider with the data dir could (test oracle only)."""
    import sqlite3

    from tillkey.crypto.secrets import MasterSecret

    master = MasterSecret((data_dir / "secret.key").read_text().strip().encode())
    with sqlite3.connect(data_dir / "tillkey.db") as db:
        (blob,) = db.execute("SELECT secret_enc FROM signing_keys WHERE kid = ?", (kid,)).fetchone()
    return master.decrypt(blob, f"signing-key:{kid}")


def test_customer_token_on_admin_route_is_403(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("roni_cost@example.com")
            token = await t.customer_token("roni_cost@example.com")
            assert (await t.client.get(ROUTE, headers=t.bearer(token))).status_code == 403

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_revoked_and_deleted_users_tokens_are_401(tmp_path: Path, backend: str) -> None:
    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            async with inprocess.running(tmp_path, **db) as t:
                mallory = await t.create_admin("mallory")
                await t.create_customer("v@example.com")
                admin = await t.admin_token("mallory")
                customer = await t.customer_token("v@example.com")
                await t.accounts.delete_admin(OPERATOR, mallory.id)
                await t.client.post("/rest/V1/integration/customer/revoke-customer-token", headers=t.bearer(customer))
                assert (await t.client.get(ROUTE, headers=t.bearer(admin))).status_code == 401
                assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(customer))).status_code == 401

    inprocess.run(body)


def test_oversized_header_is_refused_cleanly(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            r = await t.client.get(ROUTE, headers=t.bearer("a" * 60_000))
            assert r.status_code in (400, 401, 431)
            assert r.headers["content-type"].startswith("application/json")

    inprocess.run(body)


def test_brute_force_past_the_lock_gets_nowhere(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice")
            guesses = ["123456", "password", "Admin-pass", "letmein", "qwerty", "alice", "admin"]
            codes = []
            for guess in [*guesses, inprocess.ADMIN_PASSWORD]:
                r = await t.client.post(
                    "/rest/V1/integration/admin/token", json={"username": "alice", "password": guess}
                )
                codes.append(r.status_code)
            assert codes == [401] * 8  # the right password, 8th try, arrives after the lock

    inprocess.run(body)


def test_token_of_a_rotated_out_key_after_its_grace_period_is_401(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("alice")
            token = await t.admin_token("alice")
            assert (await t.client.get(ROUTE, headers=t.bearer(token))).status_code == 200  # verified, and cached
            await t.tk.services.keys.rotate(publish_ahead=0, grace=1)
            assert (await t.client.get(ROUTE, headers=t.bearer(token))).status_code == 200  # within the grace
            t.advance(2)
            r = await t.client.get(ROUTE, headers=t.bearer(token))
            assert r.status_code == 401
            assert 'error="invalid_token"' in r.headers["www-authenticate"]

    inprocess.run(body)
