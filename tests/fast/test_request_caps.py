"""A work budget per request (issue 21): every input that sizes a loop, a query or an allocation has
a cap a real client never reaches, and past it the answer is a 4xx in the surface's own shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tillkey.storeapi import criteria

F = "searchCriteria[filterGroups][{g}][filters][{f}][{k}]"
PRODUCTS = "Magento_Catalog::products"
ORDERS = "Magento_Sales::actions_view"


def _filter(field: str, value: str, cond: str = "eq", g: int = 0, f: int = 0) -> dict[str, str]:
    return {
        F.format(g=g, f=f, k="field"): field,
        F.format(g=g, f=f, k="value"): value,
        F.format(g=g, f=f, k="conditionType"): cond,
    }


def _magento_400(r: Any) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert set(body) <= {"message", "parameters", "errors", "trace"} and body["message"]
    return body


def test_search_criteria_caps_answer_magento_400s(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS, ORDERS])
            auth = t.bearer(await t.admin_token("cat"))

            async def get(path: str, params: dict[str, str]) -> Any:
                return await t.client.get(path, params=params, headers=auth)

            at_cap = ",".join(str(i) for i in range(criteria.MAX_IN_VALUES))
            ok = await get("/rest/V1/products", _filter("id", at_cap, "in"))
            assert ok.status_code == 200, ok.text
            for cond in ("in", "nin"):
                over = at_cap + ",1"
                for path, field in (("/rest/V1/products", "id"), ("/rest/V1/orders", "entity_id")):
                    refused = _magento_400(await get(path, _filter(field, over, cond)))
                    assert refused["parameters"]["max"] == criteria.MAX_IN_VALUES
            long_value = "x" * (criteria.MAX_VALUE_LENGTH + 1)
            for cond in ("eq", "like", "in"):
                refused = _magento_400(await get("/rest/V1/products", _filter("sku", long_value, cond)))
                assert refused["parameters"]["max"] == criteria.MAX_VALUE_LENGTH
            many: dict[str, str] = {}
            for i in range(criteria.MAX_FILTERS + 1):
                many.update(_filter("sku", "a", "eq", g=i // 21, f=i % 21))
            assert "filters" in _magento_400(await get("/rest/V1/products", many))["message"]
            # Many lists each under their own cap still meet the budget of the whole request.
            spread: dict[str, str] = {}
            per = ",".join("1" for _ in range(criteria.MAX_IN_VALUES))
            for g in range(criteria.MAX_VALUES // criteria.MAX_IN_VALUES + 1):
                spread.update(_filter("id", per, "in", g=g))
            refused = _magento_400(await get("/rest/V1/products", spread))
            assert refused["parameters"]["max"] == criteria.MAX_VALUES

    inprocess.run(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "9" * 20),  # issue 12: an OverflowError in the driver, a 500
        ("id", "-" + "9" * 20),
        ("id", "2147483648"),  # past a 32-bit column, which PostgreSQL refuses to bind
        ("id", "1_000"),  # int() takes underscores; no Magento client sends them
        ("id", "²"),
        ("id", "1e3"),
        ("price", "1e999999999"),
        ("price", "NaN"),
        ("price", "Infinity"),
        ("price", "9" * 40),
    ],
)
def test_numbers_a_column_cannot_hold_are_400_not_500(tmp_path: Path, field: str, value: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS])
            auth = t.bearer(await t.admin_token("cat"))
            for cond in ("eq", "gt", "in"):
                r = await t.client.get("/rest/V1/products", params=_filter(field, value, cond), headers=auth)
                assert _magento_400(r)["parameters"] == {"fieldName": field}
            # The same on the store path and the snake_case spelling.
            snake = {k.replace("filterGroups", "filter_groups"): v for k, v in _filter(field, value).items()}
            r = await t.client.get("/rest/default/V1/products", params=snake, headers=auth)
            _magento_400(r)

    inprocess.run(body)


def test_numbers_in_range_still_filter(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS])
            auth = t.bearer(await t.admin_token("cat"))
            for field, value in (("id", "2147483647"), ("id", "-5"), ("price", "12.5"), ("price", ".5")):
                r = await t.client.get("/rest/V1/products", params=_filter(field, value, "gt"), headers=auth)
                assert r.status_code == 200, r.text

    inprocess.run(body)


def _shape(path: str, body: dict[str, Any]) -> None:
    """The surface's own error shape: Magento, Medusa or OAuth 2."""
    if path.startswith("/rest/"):
        assert "message" in body and "type" not in body and "error" not in body
    elif path.startswith("/oauth2/"):
        assert set(body) == {"error", "error_description"}
    else:
        assert set(body) == {"type", "message"}


ROUTES = [
    ("GET", "/rest/V1/products"),
    ("POST", "/rest/V1/integration/admin/token"),
    ("POST", "/auth/user/emailpass"),
    ("POST", "/oauth2/token"),
]


def test_header_count_and_size_caps_answer_431_in_the_surface_shape(tmp_path: Path) -> None:
    from tillkey.security import request_limits as caps

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            too_many = [(f"x-h{i}", "v") for i in range(caps.MAX_HEADERS + 1)]
            too_big = [("x-big", "v" * caps.MAX_HEADER_BYTES)]
            for method, path in ROUTES:
                for headers in (too_many, too_big):
                    r = await t.client.request(method, path, headers=headers)
                    assert r.status_code == 431, (path, r.text)
                    _shape(path, r.json())
                    assert r.headers["x-content-type-options"] == "nosniff"  # security headers still on
            # Within the caps, the request goes on to its route (401: no credential).
            r = await t.client.get("/rest/V1/products", headers=[(f"x-h{i}", "v") for i in range(150)])
            assert r.status_code == 401, r.text

    inprocess.run(body)


def test_query_parameter_caps_answer_400_in_the_surface_shape(tmp_path: Path) -> None:
    from tillkey.security import request_limits as caps

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS])
            auth = t.bearer(await t.admin_token("cat"))
            many = "&".join(f"x{i}=1" for i in range(caps.MAX_QUERY_PARAMS + 1))
            for method, path in ROUTES:
                r = await t.client.request(method, f"{path}?{many}", headers=auth)
                assert r.status_code == 400, (path, r.text)
                _shape(path, r.json())
            at_cap = "&".join(f"x{i}=1" for i in range(caps.MAX_QUERY_PARAMS))
            assert (await t.client.get(f"/rest/V1/products?{at_cap}", headers=auth)).status_code == 200

    inprocess.run(body)


def test_query_string_byte_cap() -> None:
    from tillkey.errors import InvalidRequest
    from tillkey.security import request_limits as caps

    scope: dict[str, Any] = {"headers": [], "query_string": b"a=" + b"x" * (caps.MAX_QUERY_BYTES - 2)}
    caps.check(scope)
    scope["query_string"] += b"x"
    with pytest.raises(InvalidRequest):
        caps.check(scope)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("path", "credentials"),
    [
        ("/rest/V1/integration/admin/token", f'"username":"cat","password":"{inprocess.ADMIN_PASSWORD}"'),
        ("/auth/user/emailpass", f'"email":"cat@example.com","password":"{inprocess.ADMIN_PASSWORD}"'),
    ],
)
def test_json_depth_and_width_caps(tmp_path: Path, path: str, credentials: str) -> None:
    from tillkey.security.body_limit import MAX_JSON_DEPTH, MAX_JSON_MEMBERS

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS])
            headers = {"Content-Type": "application/json"}

            async def post(extra: str) -> Any:
                return await t.client.post(path, content="{" + credentials + "," + extra + "}", headers=headers)

            ok = await post('"x":' + _nested(MAX_JSON_DEPTH - 1))  # the object itself is one level
            assert ok.status_code == 200, ok.text
            wide_ok = await post('"x":[' + ",".join(["1"] * (MAX_JSON_MEMBERS - 3)) + "]")
            assert wide_ok.status_code == 200, wide_ok.text
            for extra in (
                '"x":' + _nested(MAX_JSON_DEPTH),
                '"x":' + _nested(900),  # under Python's recursion limit, past the cap
                '"x":[' + ",".join(["1"] * MAX_JSON_MEMBERS) + "]",
                ",".join(f'"k{i}":{{"a":1}}' for i in range(MAX_JSON_MEMBERS // 2)),
            ):
                r = await post(extra)
                assert r.status_code == 400, r.text
                _shape(path, r.json())

    inprocess.run(body)


def test_form_field_caps(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            many = "&".join(f"f{i}=1" for i in range(65)).encode()
            r = await t.client.post("/oauth2/token", content=b"grant_type=client_credentials&" + many, headers=form)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request"
            r = await t.client.post("/console/login", content=many, headers=form)
            assert 400 <= r.status_code < 500, r.text

    inprocess.run(body)


def test_console_page_forms_are_capped(tmp_path: Path) -> None:
    import re

    from tests.fast.test_bounds import _console_sign_in

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("ada", email="ada@example.com")
            browser = await _console_sign_in(t)
            try:
                page = await browser.get("/console/")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert csrf, page.text
                form = {"Content-Type": "application/x-www-form-urlencoded"}
                fields = "&".join(f"f{i}=1" for i in range(2000))
                within = "&".join(f"f{i}=1" for i in range(1999))
                # Within the cap (2,000 fields with its CSRF token), the form goes through.
                ok = await browser.post(
                    "/console/session/extend", content=f"csrf={csrf.group(1)}&{within}", headers=form
                )
                assert ok.status_code < 400, ok.text
                over = await browser.post(
                    "/console/session/extend", content=f"csrf={csrf.group(1)}&{fields}", headers=form
                )
                assert over.status_code == 403 and "Request refused" in over.text
            finally:
                await browser.aclose()

    inprocess.run(body)
