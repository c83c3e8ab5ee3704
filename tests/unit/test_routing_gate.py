"""skip_unreachable_routers: included routers skip requests by first path segment; answers stay the same."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import PlainTextResponse

from tillkey.web.routing import skip_unreachable_routers

ROUTERS = {
    "rest": ("/rest/V1/products", "/rest/V1/orders/{id}"),
    "admin": ("/admin/users/me",),
    "any": ("/{store}/catalog",),  # a parameter first: may match anything, never skipped
    "late": ("/rest/V1/late", "/restx"),
}


def _app() -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    for name, paths in ROUTERS.items():
        router = APIRouter()
        for path in paths:

            async def handler(name: str = name, path: str = path) -> PlainTextResponse:
                return PlainTextResponse(f"{name} {path}")

            router.add_api_route(path, handler, methods=["GET", "POST"] if name == "late" else ["GET"])
        app.include_router(router)
    # Record which routers' own matchers run (wrapped before the gates are put in front of them).
    ran: list[str] = []
    included = [e for e in app.router.routes if hasattr(e, "original_router")]
    for name, entry in zip(ROUTERS, included, strict=True):
        inner = entry.matches

        def counted(scope: Any, inner: Any = inner, name: str = name) -> Any:
            ran.append(name)
            return inner(scope)

        entry.matches = counted  # type: ignore[method-assign]
    skip_unreachable_routers(app.router)
    return app, ran


def _get(app: FastAPI, method: str, path: str, root_path: str = "") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    return asyncio.run(go())


def test_every_route_still_answers_as_before() -> None:
    app, _ = _app()
    assert _get(app, "GET", "/rest/V1/products").text == "rest /rest/V1/products"
    assert _get(app, "GET", "/rest/V1/orders/7").text == "rest /rest/V1/orders/{id}"
    assert _get(app, "GET", "/admin/users/me").text == "admin /admin/users/me"
    assert _get(app, "GET", "/shop/catalog").text == "any /{store}/catalog"
    assert _get(app, "GET", "/rest/V1/late").text == "late /rest/V1/late"
    assert _get(app, "GET", "/restx").text == "late /restx"
    assert _get(app, "GET", "/nowhere").status_code == 404
    assert _get(app, "POST", "/admin/users/me").status_code == 405  # a partial match still answers 405


def _distinct(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def test_routers_that_cannot_match_are_not_scanned() -> None:
    app, ran = _app()
    _get(app, "GET", "/admin/users/me")
    assert _distinct(ran) == ["admin"]  # found there: the rest router was skipped, later ones never asked
    ran.clear()
    _get(app, "GET", "/restx")
    # "/rest" also prefixes "/restx": a false positive only costs the full match, never an answer.
    assert _distinct(ran) == ["rest", "any", "late"]
    ran.clear()
    _get(app, "GET", "/nowhere")
    assert _distinct(ran) == ["any"]  # (a miss may be matched twice: once more for 404 vs 405)


def test_below_a_root_path_the_gate_judges_the_path_the_routes_see() -> None:
    app, _ = _app()
    assert _get(app, "GET", "/shop-api/admin/users/me", root_path="/shop-api").text == "admin /admin/users/me"
    assert _get(app, "GET", "/shop-api/rest/V1/orders/7", root_path="/shop-api").text == "rest /rest/V1/orders/{id}"


def test_a_fastapi_that_flattens_included_routers_is_refused_at_startup() -> None:
    """Before FastAPI 0.137 include_router copied the routes into the app's own list: the gate
    would have nothing to wrap and would silently do nothing."""
    app = FastAPI()

    async def handler() -> PlainTextResponse:
        return PlainTextResponse("flat")

    app.router.add_api_route("/rest/V1/products", handler, methods=["GET"])  # what the old include left
    with pytest.raises(RuntimeError, match=r"fastapi>=0\.137"):
        skip_unreachable_routers(app.router)
