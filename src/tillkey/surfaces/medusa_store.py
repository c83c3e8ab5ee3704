"""Medusa-style store routes for customers (medusa.md §2): create with a registration token, and
the caller's own account. Every /store route also needs a publishable key (medusa_wire)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from tillkey.access.tree import ANONYMOUS, SELF
from tillkey.accounts.medusa_auth import actor_id
from tillkey.errors import NotFound
from tillkey.principal import Principal, UserType
from tillkey.store.accounts import Customer
from tillkey.store.idps import Linked, Provider
from tillkey.surfaces.magento import attempt
from tillkey.surfaces.medusa_wire import iso_dt, json_body, prefixed_id
from tillkey.web.caching import NO_STORE_ONLY as NO_STORE
from tillkey.web.routing import ERROR_RESPONSES, Api, principal, tillkey

api = Api(tags=["Medusa store"])
Caller = Annotated[Principal, Depends(principal)]


def customer_json(c: Customer) -> dict[str, Any]:
    return {
        "id": actor_id("customer", c.id),
        "email": c.email,
        "first_name": c.firstname or None,
        "last_name": c.lastname or None,
        "company_name": None,
        "phone": None,
        "has_account": True,
        "metadata": None,
        "addresses": [],
        "default_billing_address_id": None,
        "default_shipping_address_id": None,
        "created_at": iso_dt(c.created_at),
        "updated_at": iso_dt(c.updated_at),
        "deleted_at": None,
    }


@api.route(
    "POST",
    "/store/customers",
    resources=[ANONYMOUS],
    summary="Create the customer of a registration token (Authorization: Bearer <token from .../register>)",
)
async def create_customer(request: Request, caller: Caller) -> JSONResponse:
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    customer = await tk.services.medusa_auth.create_customer(caller, body)
    return JSONResponse({"customer": customer_json(customer)})


@api.route(
    "GET",
    "/store/customers/me",
    resources=[SELF],
    actors=(UserType.CUSTOMER,),
    summary="The calling customer's own account",
)
async def me(request: Request, caller: Caller) -> JSONResponse:
    account = await tillkey(request).services.medusa_auth.me(caller)
    assert isinstance(account, Customer)
    return JSONResponse({"customer": customer_json(account)})


# --- linked identities (issue 14): the customer's own, listed, linked and removable -------------

IDENTITY_PREFIX = "fedid_"


def _identity_json(linked: Linked, provider: Provider) -> dict[str, Any]:
    def when(ms: int | None) -> str | None:
        return None if ms is None else iso_dt(datetime.fromtimestamp(ms / 1000, UTC))

    return {
        "id": f"{IDENTITY_PREFIX}{linked.id}",
        "provider": provider.name,
        "display_name": provider.display_name,
        "email": linked.email,
        "created_at": when(linked.created_ms),
        "last_login_at": when(linked.last_login_ms),
    }


@api.route(
    "GET",
    "/store/customers/me/identities",
    resources=[SELF],
    actors=(UserType.CUSTOMER,),
    summary="The external identities (identity providers) linked to the calling customer",
)
async def identities(request: Request, caller: Caller) -> JSONResponse:
    linked = await tillkey(request).services.linking.identities(UserType.CUSTOMER, caller.user_id)
    return JSONResponse({"identities": [_identity_json(i, p) for i, p in linked]}, headers=NO_STORE)


@api.route(
    "DELETE",
    "/store/customers/me/identities/{identity_id}",
    resources=[SELF],
    actors=(UserType.CUSTOMER,),
    summary="Remove a linked identity (409 when it is the account's last way to sign in)",
)
async def unlink(request: Request, caller: Caller, identity_id: str) -> JSONResponse:
    raw = prefixed_id(IDENTITY_PREFIX, identity_id)
    if raw is None:
        raise NotFound("There is no such linked identity.")
    await tillkey(request).services.linking.unlink(UserType.CUSTOMER, caller.user_id, raw)
    return JSONResponse({"id": identity_id, "object": "identity", "deleted": True}, headers=NO_STORE)


@api.route(
    "POST",
    "/store/customers/me/identities/{provider}",
    resources=[SELF],
    actors=(UserType.CUSTOMER,),
    summary="Link an identity provider to the calling customer: answers {location}, where to send the browser",
)
async def link_start(request: Request, caller: Caller, provider: str) -> JSONResponse:
    location = await tillkey(request).services.customer_federation.link_location(provider, caller, attempt(request))
    return JSONResponse({"location": location}, headers=NO_STORE)


@api.route(
    "POST",
    "/store/customers/me/identities/{provider}/callback",
    resources=[SELF],
    actors=(UserType.CUSTOMER,),
    summary="The provider's redirect of a link flow, relayed with the same customer's token: answers {identities}",
    responses={409: ERROR_RESPONSES[400]},  # the subject is linked to another account
)
async def link_callback(request: Request, caller: Caller, provider: str) -> JSONResponse:
    tk = tillkey(request)
    params = dict(request.query_params)
    if not params:
        body = await json_body(request, tk.settings.max_body_bytes)
        params = {k: v for k, v in body.items() if isinstance(v, str)}
    linked = await tk.services.customer_federation.link(provider, params, caller, attempt(request))
    return JSONResponse({"identities": [_identity_json(i, p) for i, p in linked]}, headers=NO_STORE)
