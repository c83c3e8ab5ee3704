"""Numbers in requests are ASCII digits (tillkey/parsing.py): an id, a page size, a limit or a
Content-Length written with "²" (which str.isdigit() accepts and int() refuses), Arabic-Indic
digits (which int() reads), a sign, a space or an underscore is a 4xx in the surface's JSON shape,
never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tillkey.parsing import ascii_int

NOT_NUMBERS = ["²", "\u0661", "+1", " 1", "1 ", "1_0", "-1", ""]


@pytest.mark.parametrize("raw", NOT_NUMBERS)
def test_only_ascii_digits_are_a_number(raw: str) -> None:
    assert ascii_int(raw, 12) is None


def test_ascii_digits_within_the_bound() -> None:
    assert ascii_int("0012", 4) == 12
    assert ascii_int("12345", 4) is None
    assert ascii_int(None, 4) is None


def _json_4xx(r: Any, status: int) -> None:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    assert isinstance(r.json(), dict)


def test_routes_answer_4xx_json_to_non_ascii_numbers(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("ops")
            auth = t.bearer(await t.admin_token("ops"))
            await t.create_customer("ada@example.com")
            customer = t.bearer(await t.customer_token("ada@example.com"))
            for raw in [n for n in NOT_NUMBERS if n]:
                # Magento's store API: an order id in the path, a page size in the search criteria.
                _json_4xx(await t.client.get(f"/rest/V1/orders/{raw}", headers=auth), 400)
                params = {"searchCriteria[pageSize]": raw}
                _json_4xx(await t.client.get("/rest/V1/products", params=params, headers=auth), 400)
                # Medusa's surface: a query parameter, and a passkey id in the path.
                _json_4xx(await t.client.get("/admin/api-keys", params={"limit": raw}, headers=auth), 400)
                renamed = await t.client.post(f"/auth/mfa/passkeys/{raw}", json={"name": "x"}, headers=customer)
                _json_4xx(renamed, 404)
            # A Content-Length of "²" (latin-1 0xB2, as the header arrives): refused before the body is read.
            r = await t.client.post(
                "/rest/V1/integration/admin/token",
                content=b"{}",
                headers={b"Content-Type": b"application/json", b"Content-Length": b"\xb2"},
            )
            _json_4xx(r, 413)

    inprocess.run(body)
