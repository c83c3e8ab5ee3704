"""Magento-style token endpoints under /rest[/{store}]/V1/integration/... (spec: magento.md §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS, SELF
from tillkey.accounts.service import Accounts
from tillkey.principal import Principal, UserType
from tillkey.surfaces.magento_wire import MagentoJSON, json_body, require_strings
from tillkey.surfaces.routing import Api, principal, tillkey

api = Api(prefix="/rest/V1", tags=["Magento tokens"])

_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}
Caller = Annotated[Principal, Depends(principal)]


async def _credentials(request: Request) -> tuple[str, str]:
    body = await json_body(request, tillkey(request).settings.max_body_bytes)
    username, password = require_strings(body, "username", "password")
    return username, password


@api.route(
    "POST", "/integration/admin/token", resources=[ANONYMOUS], body_schema=_CREDENTIALS,
    summary="Log an admin in; answers the token as a bare JSON string",
)  # fmt: skip
async def admin_token(request: Request) -> MagentoJSON:
    username, password = await _credentials(request)
    accounts = Accounts(tillkey(request))
    admin = await accounts.login_admin(username, password)
    return MagentoJSON(await accounts.issue_token(UserType.ADMIN, admin.id))


@api.route(
    "POST", "/integration/customer/token", resources=[ANONYMOUS], body_schema=_CREDENTIALS,
    summary="Log a customer in (username is the email); answers the token as a bare JSON string",
)  # fmt: skip
async def customer_token(request: Request) -> MagentoJSON:
    username, password = await _credentials(request)
    accounts = Accounts(tillkey(request))
    customer = await accounts.login_customer(username, password)
    return MagentoJSON(await accounts.issue_token(UserType.CUSTOMER, customer.id))


@api.route(
    "POST", "/integration/customer/revoke-customer-token", resources=[SELF],
    summary="Revoke every token of the calling customer",
)  # fmt: skip
async def revoke_customer_token(request: Request, caller: Caller) -> MagentoJSON:
    await tillkey(request).revoker.revoke_for(UserType.CUSTOMER, caller.user_id)
    return MagentoJSON(True)


@api.route(
    "POST", "/integration/admin/revoke-admin-token", resources=[ADMIN_SELF],
    summary="Revoke every token of the calling admin (Tillkey addition; Magento has no REST route)",
)  # fmt: skip
async def revoke_admin_token(request: Request, caller: Caller) -> MagentoJSON:
    await tillkey(request).revoker.revoke_for(UserType.ADMIN, caller.user_id)
    return MagentoJSON(True)
