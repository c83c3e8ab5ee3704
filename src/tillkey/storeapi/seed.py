"""`tillkey demo seed`: a small catalog, stock, two customers and their orders."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tillkey.crypto.secrets import random_token
from tillkey.store import accounts as accounts_repo
from tillkey.store.accounts import utcnow
from tillkey.store.models import OrderItemRow, OrderRow, ProductRow, StockItemRow

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

PRODUCTS = [
    ("24-MB01", "Joust Duffle Bag", "34.00", 100, "1.0"),
    ("24-MB04", "Strive Shoulder Pack", "32.00", 42, "0.8"),
    ("24-MB03", "Crown Summit Backpack", "38.00", 17, "1.2"),
    ("24-UG06", "Affirm Water Bottle", "7.00", 250, "0.3"),
    ("24-UG04", "Zing Jump Rope", "12.00", 0, "0.2"),
    ("24-WG02", "Didi Sport Watch", "92.00", 8, "0.1"),
    ("MH01-XS-Black", "Chaz Kangeroo Hoodie", "52.00", 31, "0.6"),
    ("WS12-M-Orange", "Radiant Tee", "22.00", 64, "0.2"),
]
CUSTOMERS = [
    ("roni_cost@example.com", "Veronica", "Costello", [("24-MB01", 1), ("24-UG06", 2)]),
    ("john.smith@example.com", "John", "Smith", [("24-WG02", 1)]),
]


async def seed(tk: Tillkey, customer_password: str | None = None) -> dict[str, Any]:
    now = utcnow()
    created: dict[str, Any] = {"products": [], "customers": [], "orders": []}
    async with tk.db.transaction() as s:
        existing = set(await s.scalars(select(ProductRow.sku)))
        for sku, name, price, qty, weight in PRODUCTS:
            if sku in existing:
                continue
            p = ProductRow(
                sku=sku,
                name=name,
                price=Decimal(price),
                status=1,
                visibility=4,
                type_id="simple",
                attribute_set_id=4,
                weight=Decimal(weight),
                created_at=now,
                updated_at=now,
            )
            s.add(p)
            await s.flush()
            s.add(StockItemRow(product_id=p.id, stock_id=1, qty=Decimal(qty), is_in_stock=qty > 0))
            created["products"].append({"sku": sku, "name": name, "price": float(price), "qty": qty})
        prices = {sku: Decimal(price) for sku, _n, price, _q, _w in PRODUCTS}
        names = {sku: n for sku, n, _p, _q, _w in PRODUCTS}
        ids = {sku: pid for sku, pid in (await s.execute(select(ProductRow.sku, ProductRow.id))).all()}
    accounts = tk.services.accounts
    for n, (email, first, last, lines) in enumerate(CUSTOMERS, start=1):
        async with tk.db.session() as s:
            if await accounts_repo.customer_by_email(s, email) is not None:
                continue
        password = customer_password or random_token(12)
        customer = await accounts.create_customer(email=email, password=password, firstname=first, lastname=last)
        created["customers"].append({"id": customer.id, "email": email, "password": password})
        total = sum((prices[sku] * q for sku, q in lines), Decimal(0))
        async with tk.db.transaction() as s:
            order = OrderRow(
                increment_id=f"{customer.id:09d}",
                customer_id=customer.id,
                customer_email=email,
                customer_firstname=first,
                customer_lastname=last,
                state="processing",
                status="processing",
                subtotal=total,
                grand_total=total,
                order_currency_code="USD",
                store_id=1,
                created_at=now,
                updated_at=now,
            )
            s.add(order)
            await s.flush()
            for sku, q in lines:
                s.add(
                    OrderItemRow(
                        order_id=order.entity_id,
                        product_id=ids.get(sku),
                        sku=sku,
                        name=names[sku],
                        qty_ordered=Decimal(q),
                        price=prices[sku],
                        row_total=prices[sku] * q,
                    )
                )
            created["orders"].append(
                {
                    "entity_id": order.entity_id,
                    "increment_id": order.increment_id,
                    "customer": email,
                    "grand_total": float(total),
                }
            )
        del n
    return created
