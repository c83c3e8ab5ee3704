"""JWT and opaque tokens behind one interface; algorithm pinning; expiry; per-token revocation.

The app runs in this process (tests/inprocess.py): a restart is a new app on the same data
directory and database, and expiry is reached by moving the injected clock."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.inprocess import CUSTOMER_PASSWORD, InProcess
from tillkey.storeapi.seed import seed

RONI = "roni_cost@example.com"


@asynccontextmanager
async def started(tmp_path: Path, *, setup: bool = False, **settings: Any) -> AsyncIterator[InProcess]:
    """The app on tmp_path's data directory; `setup`: admin alice and the demo data first."""
    async with inprocess.running(tmp_path, **settings) as t:
        if setup:
            await t.create_admin("alice")
            await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


async def _status(t: InProcess, token: str, path: str, method: str = "GET") -> int:
    return (await t.client.request(method, path, headers=t.bearer(token))).status_code


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_opaque_tokens_and_switching_formats_keeps_everyone_signed_in(tmp_path: Path) -> None:
    async def before_switch() -> str:
        async with started(tmp_path, setup=True) as t:
            return await t.admin_token("alice")

    async def after_switch(old_jwt: str) -> None:
        async with started(tmp_path, token_format="opaque") as t:
            opaque = await t.admin_token("alice")
            assert opaque.startswith("tk_at_") and len(opaque) >= 40
            assert await _status(t, opaque, "/rest/V1/products/24-MB01") == 200
            # The reader accepts both formats, so the switch signed nobody out.
            assert await _status(t, old_jwt, "/rest/V1/products/24-MB01") == 200
            # The database holds only a digest of the opaque token, never the token.
            db = (tmp_path / "data" / "tillkey.db").read_bytes()
            assert opaque.encode() not in db and opaque[6:].encode() not in db
            # Per-user revocation covers both formats.
            r = await t.client.post("/rest/V1/integration/admin/revoke-admin-token", headers=t.bearer(opaque))
            assert r.json() is True
            assert await _status(t, opaque, "/rest/V1/products/24-MB01") == 401
            assert await _status(t, old_jwt, "/rest/V1/products/24-MB01") == 401
            forged = "tk_at_" + "A" * 43
            assert await _status(t, forged, "/rest/V1/products/24-MB01") == 401

    old_jwt = inprocess.run(before_switch)
    inprocess.run(lambda: after_switch(old_jwt))


def test_hs256_magento_lookalike_tokens(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path, setup=True, jwt_alg="HS256") as t:
            token = await t.customer_token(RONI)
            assert jwt.get_unverified_header(token)["alg"] == "HS256"
            assert await _status(t, token, "/rest/V1/customers/me") == 200
            # HMAC keys are secrets: never published.
            assert (await t.client.get("/.well-known/jwks.json")).json() == {"keys": []}

    inprocess.run(body)


def test_tokens_expire(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path, setup=True, customer_token_ttl=2, admin_token_ttl=7200) as t:
            token = await t.customer_token(RONI)
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["exp"] - claims["iat"] == 2
            admin = await t.admin_token("alice")
            a_claims = jwt.decode(admin, options={"verify_signature": False})
            assert a_claims["exp"] - a_claims["iat"] == 7200
            assert await _status(t, token, "/rest/V1/customers/me") == 200
            t.advance(max(0.0, claims["exp"] - t.clock.now()) + 0.2)
            assert await _status(t, token, "/rest/V1/customers/me") == 401
            assert await _status(t, admin, "/rest/V1/store/websites") == 200  # the admin's lives on

    inprocess.run(body)


@pytest.fixture(params=inprocess.BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with inprocess.database(request.param, tmp_path) as settings:
        yield settings


def test_logout_revokes_only_that_token(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> tuple[str, str]:
        async with started(tmp_path, setup=True, **db) as t:
            t1 = await t.customer_token(RONI)
            t2 = await t.customer_token(RONI)
            r = await t.client.post("/tillkey/v1/logout", headers=t.bearer(t1))
            assert r.status_code == 200 and r.json() == {"revoked": True}
            assert await _status(t, t1, "/rest/V1/customers/me") == 401
            assert await _status(t, t2, "/rest/V1/customers/me") == 200
            assert await _status(t, t1, "/tillkey/v1/logout", "POST") == 401
            assert (await t.client.post("/tillkey/v1/logout")).status_code == 401
            return t1, t2

    async def after_restart(t1: str, t2: str) -> None:
        async with started(tmp_path, **db) as t:
            assert await _status(t, t1, "/rest/V1/customers/me") == 401
            assert await _status(t, t2, "/rest/V1/customers/me") == 200

    t1, t2 = inprocess.run(body)
    inprocess.run(lambda: after_restart(t1, t2))


def test_signing_key_is_generated_once_and_stored_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def first() -> str:
        async with started(tmp_path, setup=True) as t:
            return await t.admin_token("alice")

    async def after_restart(before: str) -> None:
        kid = jwt.get_unverified_header(before)["kid"]
        async with started(tmp_path) as t:
            assert jwt.get_unverified_header(await t.admin_token("alice"))["kid"] == kid
            assert await _status(t, before, "/rest/V1/store/websites") == 200
            data = tmp_path / "data"
            assert b"PRIVATE KEY" not in (data / "tillkey.db").read_bytes()
            assert oct((data / "secret.key").stat().st_mode & 0o777) == "0o600"
            keys = (await inprocess.cli_json("keys", "list"))["keys"]
            assert [k["kid"] for k in keys] == [kid] and keys[0]["state"] == "signing"

    before = inprocess.run(first)
    inprocess.run(lambda: after_restart(before))
