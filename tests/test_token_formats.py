"""JWT and opaque tokens behind one interface; algorithm pinning; expiry; per-token revocation."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server


def _setup(srv: Server) -> None:
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("demo", "seed", "--customer-password", CUSTOMER_PASSWORD)


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_opaque_tokens_and_switching_formats_keeps_everyone_signed_in(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory()
    _setup(srv)
    old_jwt = srv.token("admin", "alice", ADMIN_PASSWORD)
    srv.restart(TILLKEY_TOKEN_FORMAT="opaque")
    opaque = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert opaque.startswith("tk_at_") and len(opaque) >= 40
    assert srv.client(opaque).get("/rest/V1/products/24-MB01").status_code == 200
    # The reader accepts both formats, so the switch signed nobody out.
    assert srv.client(old_jwt).get("/rest/V1/products/24-MB01").status_code == 200
    # The database holds only a digest of the opaque token, never the token.
    db = (srv.data_dir / "tillkey.db").read_bytes()
    assert opaque.encode() not in db and opaque[6:].encode() not in db
    # Per-user revocation covers both formats.
    assert srv.client(opaque).post("/rest/V1/integration/admin/revoke-admin-token").json() is True
    assert srv.client(opaque).get("/rest/V1/products/24-MB01").status_code == 401
    assert srv.client(old_jwt).get("/rest/V1/products/24-MB01").status_code == 401
    forged = "tk_at_" + "A" * 43
    assert srv.client(forged).get("/rest/V1/products/24-MB01").status_code == 401


def test_hs256_magento_lookalike_tokens(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_JWT_ALG="HS256")
    _setup(srv)
    token = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert srv.client(token).get("/rest/V1/customers/me").status_code == 200
    # HMAC keys are secrets: never published.
    assert httpx.get(f"{srv.url}/.well-known/jwks.json").json() == {"keys": []}


def test_tokens_expire(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory(TILLKEY_CUSTOMER_TOKEN_TTL="2", TILLKEY_ADMIN_TOKEN_TTL="7200")
    _setup(srv)
    token = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 2
    admin = srv.token("admin", "alice", ADMIN_PASSWORD)
    a_claims = jwt.decode(admin, options={"verify_signature": False})
    assert a_claims["exp"] - a_claims["iat"] == 7200
    c = srv.client(token)
    assert c.get("/rest/V1/customers/me").status_code == 200
    time.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
    assert c.get("/rest/V1/customers/me").status_code == 401


def test_logout_revokes_only_that_token(fresh_server: Server) -> None:
    srv = fresh_server
    _setup(srv)
    t1 = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    t2 = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    r = srv.client(t1).post("/tillkey/v1/logout")
    assert r.status_code == 200 and r.json() == {"revoked": True}
    assert srv.client(t1).get("/rest/V1/customers/me").status_code == 401
    assert srv.client(t2).get("/rest/V1/customers/me").status_code == 200
    r = srv.client(t1).post("/tillkey/v1/logout")
    assert r.status_code == 401
    assert httpx.post(f"{srv.url}/tillkey/v1/logout").status_code == 401
    srv.restart()
    assert srv.client(t1).get("/rest/V1/customers/me").status_code == 401
    assert srv.client(t2).get("/rest/V1/customers/me").status_code == 200


def test_signing_key_is_generated_once_and_stored_encrypted(sqlite_server_factory: Any) -> None:
    srv: Server = sqlite_server_factory()
    _setup(srv)
    before = srv.token("admin", "alice", ADMIN_PASSWORD)
    kid = jwt.get_unverified_header(before)["kid"]
    srv.restart()
    assert jwt.get_unverified_header(srv.token("admin", "alice", ADMIN_PASSWORD))["kid"] == kid
    assert srv.client(before).get("/rest/V1/store/websites").status_code == 200
    assert b"PRIVATE KEY" not in (srv.data_dir / "tillkey.db").read_bytes()
    assert oct((srv.data_dir / "secret.key").stat().st_mode & 0o777) == "0o600"
    keys = srv.cli_json("keys", "list")["keys"]
    assert [k["kid"] for k in keys] == [kid] and keys[0]["state"] == "signing"
