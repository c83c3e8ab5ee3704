"""Medusa-style store routes for customers (medusa.md §2): create with a registration token, and
the caller's own account. Every /store route also needs a publishable key (medusa_wire)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from tillkey.access.tree import ANONYMOUS, SELF
from tillkey.accounts.medusa_auth import MedusaAuth, actor_id
from tillkey.principal import Principal, UserType
from tillkey.store.accounts import Customer
from tillkey.surfaces.medusa_wire import iso_dt, json_body
from tillkey.web.routing import Api, principal, tillkey

api = Api(tags=["Medusa store"])
Caller = Annotated[Principal, Depends(principal)]


def customer_json(c: Customer) -> dict[str, Any]:
    return {
        "id": actor_id("customer", c.id), "email": c.email, "first_name": c.firstname or None,
        "last_name": c.lastname or None, "company_name": None, "phone": None, "has_account": True,
        "metadata": None, "addresses": [], "default_billing_address_id": None,
        "default_shipping_address_id": None, "created_at": iso_dt(c.created_at), "updated_at": iso_dt(c.updated_at),
        "deleted_at": None,
    }  # fmt: skip


@api.route(
    "POST", "/store/customers", resources=[ANONYMOUS],
    summary="Create the customer of a registration token (Authorization: Bearer <token from .../register>)",
)  # fmt: skip
async def create_customer(request: Request, caller: Caller) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    customer = await MedusaAuth(tk).create_customer(caller, body)
    return JSONResponse({"customer": customer_json(customer)})


@api.route(
    "GET", "/store/customers/me", resources=[SELF], actors=(UserType.CUSTOMER,),
    summary="The calling customer's own account",
)  # fmt: skip
async def me(request: Request, caller: Caller) -> JSONResponse:
    account = await MedusaAuth(tillkey(request)).me(caller)
    assert isinstance(account, Customer)
    return JSONResponse({"customer": customer_json(account)})
