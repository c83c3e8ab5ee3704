"""Repository for the small store API: websites, products, stock, orders, customers."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, ColumnElement, CursorResult, Select, and_, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tillkey.store.models import (
    CustomerRow,
    OrderItemRow,
    OrderRow,
    ProductRow,
    StockItemRow,
    StoreViewRow,
    WebsiteRow,
)
from tillkey.storeapi import criteria
from tillkey.storeapi.criteria import Criteria, Filter


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def _num(v: Decimal | None) -> float | int | None:
    if v is None:
        return None
    return int(v) if v == v.to_integral_value() else float(v)


def _ts(v: datetime) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S")


async def store_codes(s: AsyncSession) -> frozenset[str]:
    return frozenset(await s.scalars(select(StoreViewRow.code).where(StoreViewRow.is_active.is_(True))))


async def websites(s: AsyncSession) -> list[dict[str, Any]]:
    rows = await s.scalars(select(WebsiteRow).order_by(WebsiteRow.id))
    return [{"id": r.id, "code": r.code, "name": r.name, "default_group_id": r.default_group_id} for r in rows]


def _coerce(col: Any, raw: str) -> Any:
    """Filter values arrive as text; bind them with the column's type (asyncpg is strict)."""
    bits = 64 if isinstance(col.type, BigInteger) else 32
    return criteria.typed(col.type.python_type, raw, col.key, int_bits=bits)


_COMPARE: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
}


def _condition(col: ColumnElement[Any], f: Filter) -> ColumnElement[bool]:
    if f.condition in ("in", "nin"):
        many = [_coerce(col, p) for p in criteria.values(f)]
        return col.in_(many) if f.condition == "in" else not_(col.in_(many))
    if f.condition in ("like", "nlike"):
        return col.like(f.value) if f.condition == "like" else not_(col.like(f.value))
    if f.condition == "null":
        return col.is_(None)
    if f.condition == "notnull":
        return col.is_not(None)
    return _COMPARE[f.condition](col, _coerce(col, f.value))


def _apply(q: Select[Any], model: Any, crit: Criteria) -> Select[Any]:
    for group in crit.groups:
        q = q.where(or_(*[_condition(getattr(model, f.field), f) for f in group]))
    return q


async def _page(
    s: AsyncSession,
    model: Any,
    crit: Criteria,
    default_sort: InstrumentedAttribute[Any],
    extra: Sequence[ColumnElement[bool]] = (),
) -> tuple[list[Any], int]:
    base = _apply(select(model), model, crit).where(and_(True, *extra))
    total = int(await s.scalar(select(func.count()).select_from(base.subquery())) or 0)
    order = [getattr(model, f).desc() if d == "DESC" else getattr(model, f).asc() for f, d in crit.sort]
    rows = await s.scalars(base.order_by(*order, default_sort).limit(crit.limit).offset(crit.offset))
    return list(rows), total


# --- products and stock -----------------------------------------------------------------------

PRODUCT_FIELDS = frozenset(
    {"id", "sku", "name", "price", "status", "visibility", "type_id", "attribute_set_id", "created_at", "updated_at"}
)


def product_json(r: ProductRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "sku": r.sku,
        "name": r.name,
        "attribute_set_id": r.attribute_set_id,
        "price": _num(r.price),
        "status": r.status,
        "visibility": r.visibility,
        "type_id": r.type_id,
        "created_at": _ts(r.created_at),
        "updated_at": _ts(r.updated_at),
        "weight": _num(r.weight),
        "extension_attributes": {"website_ids": [1]},
        "product_links": [],
        "options": [],
        "media_gallery_entries": [],
        "tier_prices": [],
        "custom_attributes": [],
    }


async def products(s: AsyncSession, crit: Criteria) -> Page:
    rows, total = await _page(s, ProductRow, crit, ProductRow.id)
    return Page([product_json(r) for r in rows], total)


async def product_by_sku(s: AsyncSession, sku: str) -> dict[str, Any] | None:
    row = await s.scalar(select(ProductRow).where(ProductRow.sku == sku))
    return product_json(row) if row else None


async def stock_by_sku(s: AsyncSession, sku: str) -> dict[str, Any] | None:
    found = (await s.execute(select(StockItemRow, ProductRow.id).join(ProductRow).where(ProductRow.sku == sku))).first()
    if found is None:
        return None
    r, product_id = found
    return {
        "item_id": r.item_id,
        "product_id": product_id,
        "stock_id": r.stock_id,
        "qty": _num(r.qty),
        "is_in_stock": r.is_in_stock,
        "is_qty_decimal": False,
        "manage_stock": True,
        "min_qty": 0,
        "min_sale_qty": 1,
        "max_sale_qty": 10000,
        "backorders": 0,
        "low_stock_date": None,
    }


# --- orders -----------------------------------------------------------------------------------

ORDER_FIELDS = frozenset(
    {
        "entity_id",
        "increment_id",
        "customer_id",
        "customer_email",
        "state",
        "status",
        "grand_total",
        "created_at",
        "updated_at",
        "store_id",
    }
)


def _order_json(r: OrderRow, items: list[OrderItemRow]) -> dict[str, Any]:
    return {
        "entity_id": r.entity_id,
        "increment_id": r.increment_id,
        "customer_id": r.customer_id,
        "customer_email": r.customer_email,
        "customer_firstname": r.customer_firstname,
        "customer_lastname": r.customer_lastname,
        "customer_is_guest": int(r.customer_id is None),
        "state": r.state,
        "status": r.status,
        "subtotal": _num(r.subtotal),
        "grand_total": _num(r.grand_total),
        "base_grand_total": _num(r.grand_total),
        "order_currency_code": r.order_currency_code,
        "store_id": r.store_id,
        "created_at": _ts(r.created_at),
        "updated_at": _ts(r.updated_at),
        "items": [
            {
                "item_id": i.item_id,
                "order_id": i.order_id,
                "product_id": i.product_id,
                "sku": i.sku,
                "name": i.name,
                "qty_ordered": _num(i.qty_ordered),
                "price": _num(i.price),
                "row_total": _num(i.row_total),
            }
            for i in items
        ],
    }


async def _with_items(s: AsyncSession, orders: list[OrderRow]) -> list[dict[str, Any]]:
    ids = [o.entity_id for o in orders]
    items: dict[int, list[OrderItemRow]] = {i: [] for i in ids}
    if ids:
        for it in await s.scalars(
            select(OrderItemRow).where(OrderItemRow.order_id.in_(ids)).order_by(OrderItemRow.item_id)
        ):
            items[it.order_id].append(it)
    return [_order_json(o, items[o.entity_id]) for o in orders]


async def orders(s: AsyncSession, crit: Criteria, customer_id: int | None = None) -> Page:
    extra = [OrderRow.customer_id == customer_id] if customer_id is not None else []
    rows, total = await _page(s, OrderRow, crit, OrderRow.entity_id, extra)
    return Page(await _with_items(s, rows), total)


async def order_by_id(s: AsyncSession, order_id: int) -> dict[str, Any] | None:
    row = await s.get(OrderRow, order_id)
    return (await _with_items(s, [row]))[0] if row else None


# Magento's Order::canCancel: an order already finished (or held) cannot be cancelled.
_NOT_CANCELLABLE = ("canceled", "complete", "closed", "holded")


async def cancel_order(s: AsyncSession, order_id: int, now: datetime) -> bool | None:
    """Cancel an order: True if it was cancelled now, False if its state forbids it (Magento's
    answer for an order it cannot cancel), None if there is no such order. One conditional UPDATE,
    so two racing cancels cannot both report True."""
    result = await s.execute(
        update(OrderRow)
        .where(OrderRow.entity_id == order_id, OrderRow.state.not_in(_NOT_CANCELLABLE))
        .values(state="canceled", status="canceled", updated_at=now)
    )
    if int(cast(CursorResult[Any], result).rowcount) == 1:
        return True
    return False if await s.get(OrderRow, order_id) is not None else None


# --- customers --------------------------------------------------------------------------------


def customer_json(r: CustomerRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "group_id": r.group_id,
        "created_at": _ts(r.created_at),
        "updated_at": _ts(r.updated_at),
        "created_in": "Default Store View",
        "email": r.email,
        "firstname": r.firstname,
        "lastname": r.lastname,
        "store_id": r.store_id,
        "website_id": r.website_id,
        "addresses": [],
        "disable_auto_group_change": 0,
        "extension_attributes": {"is_subscribed": False},
    }


async def customer_json_by_id(s: AsyncSession, customer_id: int) -> dict[str, Any] | None:
    row = await s.get(CustomerRow, customer_id)
    return customer_json(row) if row else None
