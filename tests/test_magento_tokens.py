"""Magento-style token endpoints: wire compatibility (magento.md §1-§3, §10) over HTTP, on both
databases. The app runs in this process (tests/inprocess.py): real middleware, real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tillkey.storeapi.seed import seed

SIGN_IN_FAILED = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
)


@asynccontextmanager
async def seeded(tmp_path: Path, db: dict[str, Any]) -> AsyncIterator[InProcess]:
    """Admin `alice` (Administrators) and the demo data (customer roni_cost@example.com is id 1)."""
    async with inprocess.running(tmp_path, **db) as t:
        await t.create_admin("alice")
        await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


@pytest.mark.parametrize("prefix", ["/rest/V1", "/rest/all/V1", "/rest/default/V1"])
def test_admin_token_is_a_bare_json_string_on_every_store_prefix(
    tmp_path: Path, db: dict[str, Any], prefix: str
) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            r = await t.client.post(
                f"{prefix}/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json; charset=utf-8"
            assert r.text.startswith('"') and r.text.endswith('"')
            token = r.json()
            assert token.count(".") == 2

    inprocess.run(body)


def test_admin_token_claims_verify_against_the_jwks(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            token = await t.admin_token("alice")
            header = jwt.get_unverified_header(token)
            jwks = (await t.client.get("/.well-known/jwks.json")).json()
            key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
            assert header["alg"] == key["alg"] == "ES256"
            claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], issuer=inprocess.BASE_URL)
            assert list(claims)[:4] == ["uid", "utypid", "iat", "exp"]
            assert claims["utypid"] == 2
            assert claims["exp"] - claims["iat"] == 4 * 3600
            assert len(claims["jti"]) == 32

    inprocess.run(body)


def test_customer_token_lives_one_hour_and_is_type_3(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            token = await t.customer_token("roni_cost@example.com")
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["utypid"] == 3
            assert claims["exp"] - claims["iat"] == 3600

    inprocess.run(body)


def test_customer_login_is_case_insensitive_on_email(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            assert await t.customer_token("Roni_Cost@Example.com")

    inprocess.run(body)


@pytest.mark.parametrize(
    ("kind", "username", "password"),
    [
        ("admin", "alice", "wrong-password-1"),
        ("admin", "nobody-at-all", ADMIN_PASSWORD),
        ("customer", "roni_cost@example.com", "wrong-password-1"),
        ("customer", "nobody@example.com", CUSTOMER_PASSWORD),
        ("customer", "alice", ADMIN_PASSWORD),  # an admin is not a customer
    ],
)
def test_bad_credentials_get_one_generic_401(
    tmp_path: Path, db: dict[str, Any], kind: str, username: str, password: str
) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            r = await t.client.post(
                f"/rest/V1/integration/{kind}/token", json={"username": username, "password": password}
            )
            assert r.status_code == 401
            assert r.json() == {"message": SIGN_IN_FAILED}

    inprocess.run(body)


def test_both_fields_missing_is_an_aggregated_400(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.post("/rest/V1/integration/admin/token", json={"username": None})
            assert r.status_code == 400
            assert r.json() == {
                "message": "One or more input exceptions have occurred.",
                "errors": [
                    {
                        "message": '"%fieldName" is required. Enter and try again.',
                        "parameters": {"fieldName": "username"},
                    },
                    {
                        "message": '"%fieldName" is required. Enter and try again.',
                        "parameters": {"fieldName": "password"},
                    },
                ],
            }

    inprocess.run(body)


def test_one_field_missing_names_it(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.post("/rest/V1/integration/customer/token", json={"username": "a@b.c"})
            assert r.status_code == 400
            assert r.json() == {
                "message": '"%fieldName" is required. Enter and try again.',
                "parameters": {"fieldName": "password"},
            }

    inprocess.run(body)


def test_wrong_json_types_are_400(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": ["alice"], "password": 12345678}
            )
            assert r.status_code == 400
            got = r.json()
            assert got["message"] == "One or more input exceptions have occurred."
            assert [e["parameters"]["fieldName"] for e in got["errors"]] == ["username", "password"]

    inprocess.run(body)


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"{bad json", {"Content-Type": "application/json"}, 400, "Decoding error."),
        (b"[1,2]", {"Content-Type": "application/json"}, 400, "Decoding error."),
        (b'{"username":"a"}', {}, 400, "Content-Type header is empty."),
        (
            b"username=a",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
            "Server cannot understand Content-Type HTTP header media type application/x-www-form-urlencoded",
        ),
        (b'{"username":"\xff\xfe"}', {"Content-Type": "application/json"}, 400, "Decoding error."),
        (b"{}", {"Content-Type": "application/json; charset=iso-8859-1"}, 400, "UTF-8 is the only supported charset."),
    ],
)
def test_malformed_bodies_get_magento_400s(
    tmp_path: Path, db: dict[str, Any], content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.post("/rest/V1/integration/admin/token", content=content, headers=headers)
            assert r.status_code == status
            assert r.json()["message"] == message

    inprocess.run(body)


def test_huge_body_is_refused_without_reading_it_all(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.post(
                "/rest/V1/integration/admin/token",
                content=b'{"username":"' + b"a" * 2_000_000 + b'"}',
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 413
            assert "at most" in r.json()["message"]

    inprocess.run(body)


def test_unknown_route_unknown_store_and_unsupported_method(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.get("/rest/V1/nothing/here")
            assert r.json() == {"message": "Request does not match any route."}
            r = await t.client.get("/rest/nostore/V1/store/websites")
            assert r.status_code == 404
            assert r.json() == {"message": "Request does not match any route."}
            r = await t.client.request("PATCH", "/rest/V1/products")
            assert r.status_code == 405
            assert r.json() == {"message": "The PATCH HTTP method is not supported."}
            # A supported method on a route that lacks it: Magento matches routes by method, so 404.
            r = await t.client.get("/rest/V1/integration/admin/token")
            assert r.status_code == 404

    inprocess.run(body)


def test_xml_only_accept_is_406_with_json_body(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            r = await t.client.get("/rest/V1/store/websites", headers={"Accept": "application/xml"})
            assert r.status_code == 406
            assert "Accept" in r.json()["message"]

    inprocess.run(body)


def test_php_style_json_escaping(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            token = await t.admin_token("alice")
            r = await t.client.get("/rest/V1/customers/1", headers=t.bearer(token))
            assert r.status_code == 200
            assert "roni_cost@example.com" in r.text
            # dates are "Y-m-d H:i:s" and nothing contains a raw "/" (PHP escapes it)
            r = await t.client.post(
                "/rest/V1/integration/admin/token", content=b"{", headers={"Content-Type": "text/plain/x"}
            )
            assert "\\/" in r.text

    inprocess.run(body)


def test_customer_revoke_returns_true_and_kills_the_token(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> tuple[str, str]:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_customer("c@example.com")
            token = await t.customer_token("c@example.com")
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))).status_code == 200
            r = await t.client.post("/rest/V1/integration/customer/revoke-customer-token", headers=t.bearer(token))
            assert r.status_code == 200
            assert r.json() is True
            r = await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))
            assert r.status_code == 401
            assert r.json() == {
                "message": "The consumer isn't authorized to access %resources.",
                "parameters": {"resources": "self"},
            }
            # A new login right after works: the new token is not caught by the old watermark.
            again = await t.customer_token("c@example.com")
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(again))).status_code == 200
            return token, again

    async def after_restart(token: str, again: str) -> None:
        # Revocation is durable: a new app on the same database refuses the old token, takes the new.
        async with inprocess.running(tmp_path, **db) as t:
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))).status_code == 401
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(again))).status_code == 200

    token, again = inprocess.run(body)
    inprocess.run(lambda: after_restart(token, again))


def test_revoke_customer_token_needs_a_customer(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            r = await t.client.post("/rest/V1/integration/customer/revoke-customer-token")
            assert r.status_code == 401
            assert r.json()["parameters"] == {"resources": "self"}
            admin = await t.admin_token("alice")
            r = await t.client.post("/rest/V1/integration/customer/revoke-customer-token", headers=t.bearer(admin))
            assert r.status_code == 403

    inprocess.run(body)


def test_admin_revokes_own_tokens(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("bob")
            t1 = await t.admin_token("bob")
            t2 = await t.admin_token("bob")
            r = await t.client.post("/rest/V1/integration/admin/revoke-admin-token", headers=t.bearer(t1))
            assert r.status_code == 200 and r.json() is True
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(t2))).status_code == 401

    inprocess.run(body)
