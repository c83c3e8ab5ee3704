"""Bad input of every kind gets a 4xx with a JSON body: never a 500, never a stack trace."""

from __future__ import annotations

import random
import socket

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, Server

PATHS = [
    "/rest/V1/integration/admin/token",
    "/rest/V1/integration/customer/token",
    "/rest/V1/integration/customer/revoke-customer-token",
    "/rest/V1/products",
    "/rest/V1/products/24-MB01",
    "/rest/V1/orders/1",
    "/rest/V1/customers/me",
    "/rest/all/V1/store/websites",
    "/tillkey/v1/logout",
    "/auth/user/emailpass",
    "/auth/customer/emailpass/register",
    "/admin/api-keys",
]
BODIES: list[bytes] = [
    b"",
    b"null",
    b'"string"',
    b"[]",
    b"{",
    b'{"username": {"$ne": null}, "password": {"$ne": null}}',
    b'{"username": "' + b"\\u0000" * 100 + b'", "password": "x"}',
    b'{"username": "a", "password": "' + b"p" * 100_000 + b'"}',
    b"\x00\x01\x02\xff",
    b"[" * 100_000,
    b'{"username": 1e999, "password": true}',
    # Lone surrogates: valid JSON escapes that no UTF-8 encoder (database, hash) accepts.
    b'{"username": "\\udcff", "email": "\\ud800", "password": "\\udfff", "title": "\\udcff"}',
]


def _assert_clean(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert isinstance(body, (dict, list, str, bool))


def test_malformed_bodies_everywhere(server: Server) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for path in PATHS:
            for body in BODIES:
                for headers in ({"Content-Type": "application/json"}, {}, {"Authorization": f"Bearer {token}",
                                "Content-Type": "application/json"}):  # fmt: skip
                    _assert_clean(c.post(path, content=body, headers=headers))


def test_random_headers_and_queries(server: Server) -> None:
    rng = random.Random(1234)
    junk = ["", "Bearer", "Bearer x\ty", "Basic Og==", "OAuth x", "Bearer ....", "Bearer a.b.c", "\u00e9"]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for _ in range(200):
            path = rng.choice(PATHS)
            key = rng.choice(
                ["searchCriteria[pageSize]", "searchCriteria[currentPage]", "x", "searchCriteria[[]",
                 "searchCriteria[filterGroups][0][filters][0][field]"]
            )  # fmt: skip
            params = {key: rng.choice(["-1", "0", "1", "99999999999999999999", "abc", "%00", "NaN", ""])}
            auth = rng.choice(junk)
            headers = {"Authorization": auth.encode("utf-8")} if auth else {}
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
            _assert_clean(c.request(method, path, params=params, headers=headers))


@pytest.mark.parametrize(
    "raw_path",
    [b"/rest/V1/products/%FF%FE", b"/rest/V1/products/%00", b"/rest/%FF/V1/products", b"/rest/V1/orders/1e5",
     b"/rest/V1/customers/" + b"9" * 50, b"/rest/V1/products/" + b"a" * 5000],
)  # fmt: skip
def test_odd_paths(server: Server, raw_path: bytes) -> None:
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                  + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert 400 <= status < 500, data[:300]
    assert b"application/json" in data.split(b"\r\n\r\n", 1)[0]


def test_errors_never_leak_internals(server: Server) -> None:
    r = httpx.get(f"{server.url}/rest/V1/products", params={"searchCriteria[pageSize]": "x" * 10_000})
    assert r.status_code == 401  # authentication comes before parameter parsing
    token = server.token("admin", "alice", ADMIN_PASSWORD)
    r = server.client(token).get("/rest/V1/products", params={"searchCriteria[pageSize]": "x" * 10_000})
    assert r.status_code == 400
    assert len(r.text) < 500
