"""Forward-auth path confusion: spellings of a protected path that a proxy routes by a looser rule
(a catch-all here) but an app behind it may serve as the protected one. Each is judged as the
protected path (401 without a credential, naming its resource) or refused (400), never allowed by
the catch-all; and the path's length and segment count are bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import inprocess

ENDPOINT = "/tillkey/v1/forward-auth"
ALL = "Magento_Backend::all"
PRODUCTS = "Magento_Catalog::products"
ROUTES: list[dict[str, Any]] = [
    {"path": "/admin/**", "resources": [ALL]},
    {"path": "/public/**", "resources": ["anonymous"]},
    {"path": "/**", "resources": ["anonymous"]},  # the catch-all an attacker hopes to land in
]

JUDGED_AS_ADMIN = [
    "/admin;x=1/s",  # path parameters (Servlet containers strip them)
    "/admin;/s",
    "/admin%3Bx/s",
    "/public/..;/admin/s",  # Tomcat reads ..; as ..
    "/ADMIN/s",  # apps that fold case
    "/Admin/S",
    "/admin./s",  # Windows and .NET drop trailing dots and spaces
    "/admin%2e/s",
    "/admin%20/s",
    "/admin.%20./s",
    "/admin%20%20/s",
    "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/s",  # "admin" in fullwidth letters (NFKC)
    "/public/%EF%BC%8E%EF%BC%8E/admin/s",  # fullwidth dots: ../
    "/public/..%2Fadmin/s",
    "/public/%2e%2e/admin/s",
    "//admin//s",
    "http://shop.test/admin;jsessionid=1/s?next=/public",
    "/admin",
]
REFUSED = {
    "/admin\\s": "backslash",
    "/admin%5Cs": "backslash",
    "/public/..%5Cadmin/s": "backslash",
    "/public/..%252Fadmin": "percent-encoded twice",
    "/public/%252e%252e/admin/s": "percent-encoded twice",
    "/public/%25%32%65%25%32%65/admin/s": "percent-encoded twice",
    "/public/%EF%BC%85%EF%BC%92%EF%BC%A6": "percent-encoded twice",  # fullwidth %2F
    "/admin%00/s": "control characters",
    "/admin%2500/s": "percent-encoded twice",
    "/public/%c0%ae%c0%ae/admin": "not UTF-8",  # overlong "."
    "/public/.../admin/s": "only dots and spaces",
    "/public/..%20/admin/s": "only dots and spaces",
    "/public/.%20./admin/s": "only dots and spaces",
    "/public/../../admin": "climbs above the root",
}


async def _ask(t: inprocess.InProcess, uri: str, token: str | None = None, *, traefik: bool = False) -> Any:
    headers = (
        {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": uri}
        if traefik
        else {
            "X-Original-Method": "GET",
            "X-Original-URI": uri,
        }
    )
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await t.client.get(ENDPOINT, headers=headers)


def test_spellings_of_a_protected_path_are_judged_as_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=ROUTES) as t:
            await t.create_admin("boss")
            await t.create_admin("clerk", resources=[PRODUCTS])
            boss, clerk = await t.admin_token("boss"), await t.admin_token("clerk")
            assert (await _ask(t, "/somewhere/else")).status_code == 200  # the catch-all is real
            for uri in JUDGED_AS_ADMIN:
                for traefik in (False, True):
                    r = await _ask(t, uri, traefik=traefik)
                    assert r.status_code == 401, (uri, r.status_code, r.text)
                    assert r.json()["parameters"] == {"resources": ALL}, uri
                assert (await _ask(t, uri, clerk)).status_code == 403, uri
                assert (await _ask(t, uri, boss)).status_code == 200, uri

    inprocess.run(body)


def test_spellings_no_reading_makes_safe_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=ROUTES) as t:
            for uri, why in REFUSED.items():
                for traefik in (False, True):
                    r = await _ask(t, uri, traefik=traefik)
                    assert r.status_code == 400, (uri, r.status_code, r.text)
                    assert why in r.json()["message"], (uri, r.text)

    inprocess.run(body)


@pytest.mark.parametrize(("limit", "over"), [("length", 4097), ("segments", 65)])
def test_paths_beyond_the_caps_are_a_clear_400(tmp_path: Path, limit: str, over: int) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=ROUTES) as t:
            if limit == "length":
                at_cap, beyond = "/public/" + "a" * (4096 - 8), "/public/" + "a" * (over - 8)
            else:
                at_cap, beyond = "/public" + "/a" * 63, "/public" + "/a" * (over - 1)
            assert (await _ask(t, at_cap)).status_code == 200
            r = await _ask(t, beyond)
            assert r.status_code == 400, r.text
            assert ("longer than 4096" if limit == "length" else "more than 64 segments") in r.json()["message"]
            # Encoded slashes count as segments too.
            if limit == "segments":
                r = await _ask(t, "/public" + "%2Fa" * 64)
                assert r.status_code == 400

    inprocess.run(body)


def test_the_caps_are_settings(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"forward_auth_max_uri_length": 256, "forward_auth_max_segments": 8}
        async with inprocess.running(tmp_path, forward_auth_routes=ROUTES, **settings) as t:
            assert (await _ask(t, "/public" + "/a" * 7)).status_code == 200
            assert (await _ask(t, "/public" + "/a" * 8)).status_code == 400
            assert (await _ask(t, "/public/" + "a" * 249)).status_code == 400

    inprocess.run(body)
