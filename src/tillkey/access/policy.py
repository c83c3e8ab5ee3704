"""The access check: may this Principal use a route that declares these resources?"""

from __future__ import annotations

from collections.abc import Sequence

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS, SELF
from tillkey.errors import AuthenticationRequired, Forbidden, SecondFactorPending
from tillkey.principal import Principal, UserType

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."


def is_allowed(principal: Principal, resource: str) -> bool:
    if resource == ANONYMOUS:
        return True
    if resource == SELF:
        # Magento: `self` is a customer's own records; admins and integrations are denied it.
        # A scoped (OAuth 2) token reaches them only if `self` is among its scopes.
        return principal.user_type == UserType.CUSTOMER and (principal.scopes is None or SELF in principal.scopes)
    if resource == ADMIN_SELF:
        return principal.user_type == UserType.ADMIN and (principal.scopes is None or ADMIN_SELF in principal.scopes)
    # Secret API keys hold resources like admins (their creator's grant, narrowed by the key's own);
    # OAuth clients hold the resources their scopes cover (access/grants.py), like integrations.
    if principal.user_type not in (UserType.ADMIN, UserType.INTEGRATION, UserType.API_KEY, UserType.OAUTH_CLIENT):
        return False
    return principal.all_resources or resource in principal.resources


def check(principal: Principal, resources: Sequence[str]) -> None:
    """Every declared resource must be allowed (AND, as Magento's Webapi\\Authorization).

    Unknown callers get 401 ("who are you"); known callers who lack a resource get 403
    ("not allowed") — Magento answers 401 for both, which makes clients such as my-magento
    re-login forever, so Tillkey deliberately differs here.
    """
    for resource in resources:
        if not is_allowed(principal, resource):
            params = {"resources": ", ".join(resources)}
            if principal.second_factor_pending:
                raise SecondFactorPending(NOT_AUTHORIZED, parameters=params)
            if principal.is_guest:
                raise AuthenticationRequired(NOT_AUTHORIZED, parameters=params)
            raise Forbidden(NOT_AUTHORIZED, parameters=params, detail=f"missing {resource}")
