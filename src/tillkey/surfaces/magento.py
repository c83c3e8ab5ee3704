"""Magento-style token endpoints under /rest[/{store}]/V1/integration/... (spec: magento.md §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS, SELF
from tillkey.accounts.login import Attempt, Logins
from tillkey.accounts.service import Accounts
from tillkey.errors import InvalidRequest
from tillkey.principal import Principal, UserType
from tillkey.security.proxy import client_ip, is_loopback, is_secure
from tillkey.surfaces.magento_wire import MagentoJSON, json_body, require_strings
from tillkey.surfaces.routing import Api, principal, tillkey

api = Api(prefix="/rest/V1", tags=["Magento tokens"])

_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}
Caller = Annotated[Principal, Depends(principal)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _credentials(request: Request) -> tuple[str, str]:
    body = await json_body(request, tillkey(request).settings.max_body_bytes)
    username, password = require_strings(body, "username", "password")
    return username, password


def attempt(request: Request) -> Attempt:
    """Where a credential came from; refuses plain HTTP from non-loopback clients when required."""
    tk = tillkey(request)
    ip = client_ip(request.scope)
    if tk.settings.require_https and not is_secure(request.scope) and not is_loopback(ip):
        # Magento's answer for a secure="true" route reached over HTTP (magento.md §3).
        raise InvalidRequest("Operation allowed only in HTTPS")
    return Attempt(ip, request.headers.get("user-agent", "")[:255], request.headers.get("x-request-id"))


@api.route(
    "POST", "/integration/admin/token", resources=[ANONYMOUS], body_schema=_CREDENTIALS,
    summary="Log an admin in; answers the token as a bare JSON string",
)  # fmt: skip
async def admin_token(request: Request) -> MagentoJSON:
    where = attempt(request)
    username, password = await _credentials(request)
    tk = tillkey(request)
    admin = await Logins(tk).admin(username, password, where)
    return MagentoJSON(await Accounts(tk).issue_token(UserType.ADMIN, admin.id), headers=NO_STORE)


@api.route(
    "POST", "/integration/customer/token", resources=[ANONYMOUS], body_schema=_CREDENTIALS,
    summary="Log a customer in (username is the email); answers the token as a bare JSON string",
)  # fmt: skip
async def customer_token(request: Request) -> MagentoJSON:
    where = attempt(request)
    username, password = await _credentials(request)
    tk = tillkey(request)
    customer = await Logins(tk).customer(username, password, where)
    return MagentoJSON(await Accounts(tk).issue_token(UserType.CUSTOMER, customer.id), headers=NO_STORE)


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
