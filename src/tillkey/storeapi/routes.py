"""The small protected store API, in Magento's shapes, each route with Magento's resources."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tillkey.access.tree import SELF
from tillkey.errors import InvalidRequest, NotFound
from tillkey.parsing import ascii_int
from tillkey.principal import Principal
from tillkey.store.accounts import utcnow
from tillkey.storeapi import catalog, criteria
from tillkey.surfaces.magento_wire import MagentoJSON
from tillkey.web.routing import Api, principal, tillkey

api = Api(prefix="/rest/V1", tags=["Store API"])
Caller = Annotated[Principal, Depends(principal)]
NO_PRODUCT = "The product that was requested doesn't exist. Verify the product and try again."
NO_ENTITY = "The entity that was requested doesn't exist. Verify the entity and try again."
NO_SUCH = "No such entity with %fieldName = %fieldValue"


def _search(page: catalog.Page, crit: criteria.Criteria) -> MagentoJSON:
    return MagentoJSON({"items": page.items, "search_criteria": crit.echo(), "total_count": page.total})


def _valid_sku(sku: str) -> bool:
    # A SKU longer than the column or holding NUL (which PostgreSQL refuses) names no product.
    return len(sku) <= 64 and "\x00" not in sku


def _id(name: str, raw: str) -> int:
    value = ascii_int(raw, 12)
    if value is None:
        raise InvalidRequest(
            'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and try again.',
            parameters={"value": raw[:40], "type": "int"},
        )
    return value


@api.route("GET", "/store/websites", resources=["Magento_Backend::store"], summary="List websites")
async def websites(request: Request) -> MagentoJSON:
    async with tillkey(request).db.session() as s:
        return MagentoJSON(await catalog.websites(s))


@api.route("GET", "/products", resources=["Magento_Catalog::products"], summary="Search products")
async def products(request: Request) -> MagentoJSON:
    crit = criteria.parse(request.query_params.multi_items(), catalog.PRODUCT_FIELDS)
    async with tillkey(request).db.session() as s:
        return _search(await catalog.products(s, crit), crit)


@api.route("GET", "/products/{sku}", resources=["Magento_Catalog::products"], summary="One product by SKU")
async def product(request: Request, sku: str) -> MagentoJSON:
    async with tillkey(request).db.session() as s:
        found = await catalog.product_by_sku(s, sku) if _valid_sku(sku) else None
    if found is None:
        raise NotFound(NO_PRODUCT)
    return MagentoJSON(found)


@api.route(
    "GET",
    "/stockItems/{sku}",
    resources=["Magento_CatalogInventory::cataloginventory"],
    summary="Stock of one product by SKU",
)
async def stock_item(request: Request, sku: str) -> MagentoJSON:
    async with tillkey(request).db.session() as s:
        found = await catalog.stock_by_sku(s, sku) if _valid_sku(sku) else None
    if found is None:
        raise NotFound(NO_PRODUCT)
    return MagentoJSON(found)


@api.route("GET", "/orders", resources=["Magento_Sales::actions_view"], summary="Search orders")
async def orders(request: Request) -> MagentoJSON:
    crit = criteria.parse(request.query_params.multi_items(), catalog.ORDER_FIELDS)
    async with tillkey(request).db.session() as s:
        return _search(await catalog.orders(s, crit), crit)


@api.route("GET", "/orders/{order_id}", resources=["Magento_Sales::actions_view"], summary="One order")
async def order(request: Request, order_id: str) -> MagentoJSON:
    async with tillkey(request).db.session() as s:
        found = await catalog.order_by_id(s, _id("id", order_id))
    if found is None:
        raise NotFound(NO_ENTITY)
    return MagentoJSON(found)


@api.route(
    "POST",
    "/orders/{order_id}/cancel",
    resources=["Magento_Sales::cancel"],
    summary="Cancel an order (true, or false if its state forbids it); step-up: TILLKEY_STEP_UP",
)
async def cancel_order(request: Request, order_id: str) -> MagentoJSON:
    # A critical call: by default it needs a multi-factor sign-in within 5 minutes, which the
    # access check enforces from the resource (access/stepup.py), before this runs.
    oid = _id("id", order_id)
    tk = tillkey(request)
    async with tk.db.transaction() as s:
        done = await catalog.cancel_order(s, oid, utcnow())
    if done is None:
        raise NotFound(NO_ENTITY)
    return MagentoJSON(done)


@api.route("GET", "/customers/me", resources=[SELF], summary="The calling customer's own account")
async def customer_me(request: Request, caller: Caller) -> MagentoJSON:
    async with tillkey(request).db.session() as s:
        found = await catalog.customer_json_by_id(s, caller.user_id)
    if found is None:
        raise NotFound(NO_SUCH, parameters={"fieldName": "customerId", "fieldValue": caller.user_id})
    return MagentoJSON(found)


@api.route("GET", "/customers/me/orders", resources=[SELF], summary="The calling customer's own orders")
async def customer_me_orders(request: Request, caller: Caller) -> MagentoJSON:
    crit = criteria.parse(request.query_params.multi_items(), catalog.ORDER_FIELDS)
    async with tillkey(request).db.session() as s:
        return _search(await catalog.orders(s, crit, customer_id=caller.user_id), crit)


@api.route("GET", "/customers/{customer_id}", resources=["Magento_Customer::customer"], summary="One customer")
async def customer(request: Request, customer_id: str) -> MagentoJSON:
    cid = _id("customerId", customer_id)
    async with tillkey(request).db.session() as s:
        found = await catalog.customer_json_by_id(s, cid)
    if found is None:
        raise NotFound(NO_SUCH, parameters={"fieldName": "customerId", "fieldValue": cid})
    return MagentoJSON(found)
