"""The real Tillkey app plus benchmark-only comparison routes.

Served by bench/run.py as `uvicorn bench.app:create_bench_app --factory`. These routes exist only
here, never in the shipped package: they let the benchmark price Tillkey's auth by comparing a
protected route with an otherwise identical unprotected one.
"""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from tillkey.app import create_app
from tillkey.errors import NotFound
from tillkey.store import catalog
from tillkey.storeapi.routes import NO_PRODUCT
from tillkey.surfaces.magento_wire import MagentoJSON
from tillkey.surfaces.routing import requires, tillkey

# The resource that guards GET /rest/V1/products/{sku}: the protected empty route pays the same check.
PRODUCTS = "Magento_Catalog::products"
EMPTY_BODY = b'{"ok":true}'


async def open_product(request: Request, sku: str) -> MagentoJSON:
    """Line for line the handler of GET /rest/V1/products/{sku}, minus its auth dependency."""
    async with tillkey(request).db.session() as s:
        found = await catalog.product_by_sku(s, sku)
    if found is None:
        raise NotFound(NO_PRODUCT)
    return MagentoJSON(found)


async def empty() -> Response:
    # A constant pre-encoded body: no serialization, so the protected twin measures auth alone.
    return Response(EMPTY_BODY, media_type="application/json")


async def whoami() -> Response:
    # Lets run.py confirm that every worker process came up and answers.
    return Response(str(os.getpid()), media_type="text/plain")


def add_bench_routes(app: FastAPI) -> None:
    get = ["GET"]
    app.add_api_route("/bench/open/products/{sku}", open_product, methods=get, include_in_schema=False)
    app.add_api_route("/bench/empty", empty, methods=get, include_in_schema=False)
    app.add_api_route(
        "/bench/empty-protected", empty, methods=get, include_in_schema=False,
        dependencies=[Depends(requires(PRODUCTS))],
    )  # fmt: skip
    app.add_api_route("/bench/whoami", whoami, methods=get, include_in_schema=False)


def create_bench_app() -> FastAPI:
    """Factory for uvicorn: each worker process calls it and runs the app's lifespan itself."""
    app = create_app()
    add_bench_routes(app)
    return app
