"""Bad input of every kind gets a 4xx with a JSON body: never a 500, never a stack trace. One
seeded app per backend in this process (tests/inprocess.py): every request goes through the whole
middleware stack, as over a socket, and the odd paths reach the app byte for byte (checked)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest

from tests import inprocess
from tests.inprocess import InProcess

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


@pytest.fixture(scope="module", params=inprocess.BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[inprocess.Shared]:
    tmp = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    with inprocess.database(request.param, tmp) as db, inprocess.shared(tmp, inprocess.seed_like_server, **db) as app:
        yield app


def test_malformed_bodies_everywhere(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        token = await t.admin_token("alice")
        for path in PATHS:
            for content in BODIES:
                for headers in (
                    {"Content-Type": "application/json"},
                    {},
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                ):
                    _assert_clean(await t.client.post(path, content=content, headers=headers))

    app.call(body)


def test_random_headers_and_queries(app: inprocess.Shared) -> None:
    rng = random.Random(1234)
    junk = ["", "Bearer", "Bearer x\ty", "Basic Og==", "OAuth x", "Bearer ....", "Bearer a.b.c", "\u00e9"]

    async def body(t: InProcess) -> None:
        for _ in range(200):
            path = rng.choice(PATHS)
            key = rng.choice(
                [
                    "searchCriteria[pageSize]",
                    "searchCriteria[currentPage]",
                    "x",
                    "searchCriteria[[]",
                    "searchCriteria[filterGroups][0][filters][0][field]",
                ]
            )
            params = {key: rng.choice(["-1", "0", "1", "99999999999999999999", "abc", "%00", "NaN", ""])}
            auth = rng.choice(junk)
            headers = {"Authorization": auth.encode("utf-8")} if auth else {}
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
            _assert_clean(await t.client.request(method, path, params=params, headers=headers))

    app.call(body)


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/rest/V1/products/%FF%FE",
        b"/rest/V1/products/%00",
        b"/rest/%FF/V1/products",
        b"/rest/V1/orders/1e5",
        b"/rest/V1/customers/" + b"9" * 50,
        b"/rest/V1/products/" + b"a" * 5000,
    ],
)
def test_odd_paths(app: inprocess.Shared, raw_path: bytes) -> None:
    async def body(t: InProcess) -> None:
        token = await t.admin_token("alice")
        r = await t.client.get(raw_path.decode("ascii"), headers=t.bearer(token))
        assert r.request.url.raw_path == raw_path  # sent as a raw socket would: not re-encoded
        assert 400 <= r.status_code < 500, r.text[:300]
        assert r.headers["content-type"].startswith("application/json")

    app.call(body)


def test_errors_never_leak_internals(app: inprocess.Shared) -> None:
    async def body(t: InProcess) -> None:
        r = await t.client.get("/rest/V1/products", params={"searchCriteria[pageSize]": "x" * 10_000})
        assert r.status_code == 401  # authentication comes before parameter parsing
        token = await t.admin_token("alice")
        r = await t.client.get(
            "/rest/V1/products", params={"searchCriteria[pageSize]": "x" * 10_000}, headers=t.bearer(token)
        )
        assert r.status_code == 400
        assert len(r.text) < 500

    app.call(body)
