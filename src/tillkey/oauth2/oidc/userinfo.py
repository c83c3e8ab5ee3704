"""The UserInfo endpoint's claims (OpenID Connect Core §5.3, §5.4): `sub` always; `profile` and
`email` claims when those scopes were granted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tillkey.oauth2.access_tokens import subject
from tillkey.principal import UserType
from tillkey.store.accounts import admin_by_id, customer_by_id

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey


async def claims(tk: Tillkey, user_type: int, user_id: int, scopes: frozenset[str]) -> dict[str, Any] | None:
    """None when the account is gone or inactive."""
    out: dict[str, Any] = {"sub": subject(user_type, user_id)}
    async with tk.db.session() as s:
        if user_type == UserType.ADMIN:
            admin = await admin_by_id(s, user_id)
            if admin is None or not admin.is_active:
                return None
            username, email, first, last = admin.username, admin.email, admin.firstname, admin.lastname
        elif user_type == UserType.CUSTOMER:
            customer = await customer_by_id(s, user_id)
            if customer is None or not customer.is_active:
                return None
            username, email, first, last = customer.email, customer.email, customer.firstname, customer.lastname
        else:
            return None
    if "profile" in scopes:
        out["preferred_username"] = username
        out["name"] = " ".join(p for p in (first, last) if p) or username
        if first:
            out["given_name"] = first
        if last:
            out["family_name"] = last
    if "email" in scopes:
        out["email"] = email
    return out
