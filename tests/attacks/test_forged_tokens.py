"""The attack suite: each case is a request that must be refused with the right status."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server

ROUTE = "/rest/V1/store/websites"  # Magento_Backend::store: alice may, customers may not


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _sign_hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    signing_input = _b64(header) + "." + _b64(claims)
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def genuine(server: Server) -> dict[str, Any]:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    header = jwt.get_unverified_header(token)
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
    pub = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    return {
        "token": token,
        "header": header,
        "claims": jwt.decode(token, options={"verify_signature": False}),
        "pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    }


def _forgeries(g: dict[str, Any]) -> dict[str, str]:
    claims, kid = g["claims"], g["header"]["kid"]
    now = int(time.time())
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


@pytest.mark.parametrize(
    "case",
    [
        "alg none", "alg none, no kid", "HS256 keyed with the public key", "someone else's key", "unknown kid",
        "kid path traversal", "kid SQL injection", "kid not a string", "uid changed", "utypid changed",
        "exp extended", "signature stripped", "wrong iss", "two tokens glued", "oversized token",
    ],
)  # fmt: skip
def test_forged_token_is_401(server: Server, genuine: dict[str, Any], case: str) -> None:
    forged = _forgeries(genuine)[case]
    r = httpx.get(f"{server.url}{ROUTE}", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, (case, r.text)
    assert r.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'
    assert r.json()["message"] == "The consumer isn't authorized to access %resources."
    # the genuine token still works: nothing above poisoned a cache
    assert server.client(genuine["token"]).get(ROUTE).status_code == 200


def test_signed_with_the_real_key_but_dated_in_the_future(sqlite_server_factory: Any) -> None:
    # Only a holder of the signing key could mint these; the reader still refuses clock games.
    srv: Server = sqlite_server_factory(TILLKEY_JWT_ALG="HS256")
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    token = srv.token("admin", "alice", ADMIN_PASSWORD)
    kid = jwt.get_unverified_header(token)["kid"]
    secret = _hs256_secret(srv, kid)
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    ok = jwt.encode({**claims, "jti": "a" * 32}, secret, "HS256", headers={"kid": kid})
    assert srv.client(ok).get(ROUTE).status_code == 200  # the key extraction below is right
    for bad in ({"iat": now + 3600}, {"nbf": now + 3600}, {"exp": now - 1}):
        forged = jwt.encode({**claims, **bad, "jti": "b" * 32}, secret, "HS256", headers={"kid": kid})
        assert srv.client(forged).get(ROUTE).status_code == 401, bad
    within_leeway = jwt.encode({**claims, "iat": now + 30, "jti": "c" * 32}, secret, "HS256", headers={"kid": kid})
    assert srv.client(within_leeway).get(ROUTE).status_code == 200


def _hs256_secret(srv: Server, kid: str) -> bytes:
    """Reads the HMAC key the way an insider with the data dir could (test oracle only)."""
    import sqlite3

    from tillkey.crypto.secrets import MasterSecret

    master = MasterSecret((srv.data_dir / "secret.key").read_text().strip().encode())
    with sqlite3.connect(srv.data_dir / "tillkey.db") as db:
        (blob,) = db.execute("SELECT secret_enc FROM signing_keys WHERE kid = ?", (kid,)).fetchone()
    return master.decrypt(blob, f"signing-key:{kid}")


def test_customer_token_on_admin_route_is_403(server: Server) -> None:
    token = server.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert server.client(token).get(ROUTE).status_code == 403


def test_revoked_and_deleted_users_tokens_are_401(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "mallory", "--email", "m@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("customer", "create", "--email", "v@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "V", "--last-name", "W")  # fmt: skip
    admin = srv.token("admin", "mallory", ADMIN_PASSWORD)
    customer = srv.token("customer", "v@example.com", CUSTOMER_PASSWORD)
    srv.cli("admin", "delete", "mallory")
    srv.client(customer).post("/rest/V1/integration/customer/revoke-customer-token")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and srv.client(admin).get(ROUTE).status_code != 401:
        time.sleep(0.05)
    assert srv.client(admin).get(ROUTE).status_code == 401
    assert srv.client(customer).get("/rest/V1/customers/me").status_code == 401


def test_oversized_header_is_refused_cleanly(server: Server) -> None:
    r = httpx.get(f"{server.url}{ROUTE}", headers={"Authorization": "Bearer " + "a" * 60_000})
    assert r.status_code in (400, 401, 431)


def test_brute_force_past_the_lock_gets_nowhere(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory()
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    guesses = ["123456", "password", "Admin-pass", "letmein", "qwerty", "alice", "admin", ADMIN_PASSWORD]
    codes = [
        httpx.post(f"{srv.url}/rest/V1/integration/admin/token", json={"username": "alice", "password": g}).status_code
        for g in guesses
    ]
    assert codes == [401] * 8  # the right password, 7th guess, arrives after the lock


def test_token_of_a_rotated_out_key_after_its_grace_period_is_401(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory()
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    token = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert srv.client(token).get(ROUTE).status_code == 200  # verified, and cached from now on
    srv.cli("keys", "rotate", "--publish-ahead", "0", "--grace", "1")
    time.sleep(2.5)  # grace over, and the sync interval (1 s) passed
    r = srv.client(token).get(ROUTE)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
