"""Magento-style token endpoints: wire compatibility (magento.md §1-§3, §10) over real HTTP."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, Server

SIGN_IN_FAILED = (
    "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
)


@pytest.mark.parametrize("prefix", ["/rest/V1", "/rest/all/V1", "/rest/default/V1"])
def test_admin_token_is_a_bare_json_string_on_every_store_prefix(server: Server, prefix: str) -> None:
    r = httpx.post(
        f"{server.url}{prefix}/integration/admin/token", json={"username": "alice", "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.text.startswith('"') and r.text.endswith('"')
    token = r.json()
    assert token.count(".") == 2


def test_admin_token_claims_verify_against_the_jwks(server: Server) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    header = jwt.get_unverified_header(token)
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == key["alg"] == "ES256"
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], issuer="http://tillkey.test")
    assert list(claims)[:4] == ["uid", "utypid", "iat", "exp"]
    assert claims["utypid"] == 2
    assert claims["exp"] - claims["iat"] == 4 * 3600
    assert len(claims["jti"]) == 32


def test_customer_token_lives_one_hour_and_is_type_3(server: Server) -> None:
    token = server.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["utypid"] == 3
    assert claims["exp"] - claims["iat"] == 3600


def test_customer_login_is_case_insensitive_on_email(server: Server) -> None:
    assert server.token("customer", "Roni_Cost@Example.com", CUSTOMER_PASSWORD)


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
def test_bad_credentials_get_one_generic_401(server: Server, kind: str, username: str, password: str) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/{kind}/token", json={"username": username, "password": password})
    assert r.status_code == 401
    assert r.json() == {"message": SIGN_IN_FAILED}


def test_both_fields_missing_is_an_aggregated_400(server: Server) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/admin/token", json={"username": None})
    assert r.status_code == 400
    assert r.json() == {
        "message": "One or more input exceptions have occurred.",
        "errors": [
            {"message": '"%fieldName" is required. Enter and try again.', "parameters": {"fieldName": "username"}},
            {"message": '"%fieldName" is required. Enter and try again.', "parameters": {"fieldName": "password"}},
        ],
    }


def test_one_field_missing_names_it(server: Server) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/customer/token", json={"username": "a@b.c"})
    assert r.status_code == 400
    assert r.json() == {
        "message": '"%fieldName" is required. Enter and try again.',
        "parameters": {"fieldName": "password"},
    }


def test_wrong_json_types_are_400(server: Server) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/admin/token", json={"username": ["alice"], "password": 12345678})
    assert r.status_code == 400
    body = r.json()
    assert body["message"] == "One or more input exceptions have occurred."
    assert [e["parameters"]["fieldName"] for e in body["errors"]] == ["username", "password"]


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
    server: Server, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/admin/token", content=content, headers=headers)
    assert r.status_code == status
    assert r.json()["message"] == message


def test_huge_body_is_refused_without_reading_it_all(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/rest/V1/integration/admin/token",
        content=b'{"username":"' + b"a" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert "at most" in r.json()["message"]


def test_unknown_route_unknown_store_and_unsupported_method(server: Server) -> None:
    assert httpx.get(f"{server.url}/rest/V1/nothing/here").json() == {"message": "Request does not match any route."}
    r = httpx.get(f"{server.url}/rest/nostore/V1/store/websites")
    assert r.status_code == 404
    assert r.json() == {"message": "Request does not match any route."}
    r = httpx.request("PATCH", f"{server.url}/rest/V1/products")
    assert r.status_code == 405
    assert r.json() == {"message": "The PATCH HTTP method is not supported."}
    # A supported method on a route that lacks it: Magento matches routes by method, so 404.
    r = httpx.get(f"{server.url}/rest/V1/integration/admin/token")
    assert r.status_code == 404


def test_xml_only_accept_is_406_with_json_body(server: Server) -> None:
    r = httpx.get(f"{server.url}/rest/V1/store/websites", headers={"Accept": "application/xml"})
    assert r.status_code == 406
    assert "Accept" in r.json()["message"]


def test_php_style_json_escaping(server: Server) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    r = server.client(token).get("/rest/V1/customers/1")
    assert r.status_code == 200
    assert "roni_cost@example.com" in r.text
    # dates are "Y-m-d H:i:s" and nothing contains a raw "/" (PHP escapes it)
    r = httpx.post(
        f"{server.url}/rest/V1/integration/admin/token", content=b"{", headers={"Content-Type": "text/plain/x"}
    )
    assert "\\/" in r.text


def test_customer_revoke_returns_true_and_kills_the_token(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("customer", "create", "--email", "c@example.com", "--password", CUSTOMER_PASSWORD,
            "--first-name", "C", "--last-name", "D")  # fmt: skip
    token = srv.token("customer", "c@example.com", CUSTOMER_PASSWORD)
    c = srv.client(token)
    assert c.get("/rest/V1/customers/me").status_code == 200
    r = c.post("/rest/V1/integration/customer/revoke-customer-token")
    assert r.status_code == 200
    assert r.json() is True
    r = c.get("/rest/V1/customers/me")
    assert r.status_code == 401
    assert r.json() == {
        "message": "The consumer isn't authorized to access %resources.",
        "parameters": {"resources": "self"},
    }
    # A new login right after works: the new token is not caught by the old watermark.
    again = srv.token("customer", "c@example.com", CUSTOMER_PASSWORD)
    assert srv.client(again).get("/rest/V1/customers/me").status_code == 200
    # Revocation is durable: it survives a restart, and the new token still works.
    srv.restart()
    assert srv.client(token).get("/rest/V1/customers/me").status_code == 401
    assert srv.client(again).get("/rest/V1/customers/me").status_code == 200


def test_revoke_customer_token_needs_a_customer(server: Server) -> None:
    r = httpx.post(f"{server.url}/rest/V1/integration/customer/revoke-customer-token")
    assert r.status_code == 401
    assert r.json()["parameters"] == {"resources": "self"}
    admin = server.token("admin", "alice", ADMIN_PASSWORD)
    r = server.client(admin).post("/rest/V1/integration/customer/revoke-customer-token")
    assert r.status_code == 403


def test_admin_revokes_own_tokens(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "bob", "--email", "bob@example.com", "--password", ADMIN_PASSWORD)
    t1 = srv.token("admin", "bob", ADMIN_PASSWORD)
    t2 = srv.token("admin", "bob", ADMIN_PASSWORD)
    r = srv.client(t1).post("/rest/V1/integration/admin/revoke-admin-token")
    assert r.status_code == 200 and r.json() is True
    assert srv.client(t2).get("/rest/V1/store/websites").status_code == 401
