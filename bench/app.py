"""The real Tillkey app plus benchmark-only comparison routes.

Served by bench/run.py as `uvicorn bench.app:create_bench_app --factory`. These routes exist only
here, never in the shipped package: they let the benchmark price Tillkey's auth by comparing a
protected route with an otherwise identical unprotected one.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tillkey.app import create_app
from tillkey.errors import NotFound
from tillkey.storeapi import catalog
from tillkey.storeapi import routes as storeapi
from tillkey.surfaces.magento_wire import MagentoJSON
from tillkey.web.routing import guarded_route, requires, tillkey

# The resource that guards GET /rest/V1/products/{sku}: the protected empty route pays the same check.
PRODUCTS = "Magento_Catalog::products"
EMPTY_BODY = b'{"ok":true}'
OPEN_PRODUCT_PATH = "/rest/V1/bench-open/products/{sku}"


async def open_product(request: Request, sku: str) -> MagentoJSON:
    """Line for line the handler of GET /rest/V1/products/{sku}, minus its auth dependency."""
    async with tillkey(request).db.session() as s:
        found = await catalog.product_by_sku(s, sku)
    if found is None:
        raise NotFound(storeapi.NO_PRODUCT)
    return MagentoJSON(found)


async def empty() -> Response:
    # A constant pre-encoded body: no serialization, so the protected twin measures auth alone.
    return Response(EMPTY_BODY, media_type="application/json")


async def whoami() -> Response:
    # Lets run.py confirm that every worker process came up and answers.
    return Response(str(os.getpid()), media_type="text/plain")


def bench_router() -> APIRouter:
    """Twins side by side, unprotected first: the protected one never gets the cheaper spot."""
    router = APIRouter(include_in_schema=False)
    # Under /rest/V1 like its twin, so both pass the same routers' first-segment gates
    # (web/routing.py skip_unreachable_routers) and the same Magento path handling.
    router.add_api_route(OPEN_PRODUCT_PATH, open_product, methods=["GET"])
    router.add_api_route("/bench/empty", empty, methods=["GET"])
    # Guarded exactly as every Tillkey route is (web/routing.py Api.route).
    router.add_api_route(
        "/bench/empty-protected", empty, methods=["GET"], route_class_override=guarded_route(requires(PRODUCTS))
    )
    router.add_api_route("/bench/whoami", whoami, methods=["GET"])
    return router


def install(app: FastAPI, router: APIRouter) -> None:
    """Include the bench routes just ahead of the store API.

    Routing is a linear scan: a route at the end of the table costs far more to reach than one
    near the front (in this FastAPI, ~100 us per request across Tillkey's routers). Ahead of the
    store API, the open product twin is reached after the same Magento routes as the protected
    one, which also scans these few bench routes: a small bias against the protected twin,
    never for it.
    """
    before = {id(r) for r in app.router.routes}
    app.include_router(router)
    added = [r for r in app.router.routes if id(r) not in before]
    rest = [r for r in app.router.routes if id(r) in before]
    for i, entry in enumerate(rest):
        if _is_store_api(entry):
            app.router.routes[:] = [*rest[:i], *added, *rest[i:]]
            return
    raise RuntimeError("the store API is not in the route table; cannot place the bench routes beside it")


def _is_store_api(entry: BaseRoute) -> bool:
    # An included router is one entry in newer FastAPI; older versions copy its routes in.
    first = storeapi.api.router.routes[0]
    if getattr(entry, "original_router", None) is storeapi.api.router:
        return True
    return getattr(entry, "path", None) == getattr(first, "path", "")


def create_bench_app() -> FastAPI:
    """Factory for uvicorn: each worker process calls it and runs the app's lifespan itself."""
    app = create_app()
    install(app, bench_router())
    return app
