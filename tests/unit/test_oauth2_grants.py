"""How an OAuth 2 token's scopes narrow its caller (access/grants.py) and reach the access check:
client-credentials callers hold what their scopes cover, delegated callers the intersection with
the user's grant, and a deleted client's tokens hold nothing."""

from __future__ import annotations

from tillkey.access.grants import GrantsState
from tillkey.access.policy import is_allowed
from tillkey.access.tree import ResourceTree
from tillkey.principal import UserType
from tillkey.tokens.contracts import TokenClaims

PRODUCTS = "Magento_Catalog::products"
ORDERS = "Magento_Sales::actions_view"


def _state() -> GrantsState:
    state = GrantsState(ResourceTree.load())
    state.load_admins({1: ("Magento_Backend::all",), 2: ("Magento_Catalog::catalog",)})
    state.load_clients({"tkc_a": (7, frozenset({PRODUCTS, "openid", "self"}))})
    return state


def _claims(utype: int, uid: int, scope: tuple[str, ...], client: str = "tkc_a") -> TokenClaims:
    return TokenClaims(utype, uid, 0, None, "j", "jwt", scope=scope, client_id=client)


def test_client_credentials_caller_holds_its_scopes_only() -> None:
    p = _state().principal(_claims(UserType.OAUTH_CLIENT, 7, (PRODUCTS,)))
    assert p.user_type == UserType.OAUTH_CLIENT and is_allowed(p, PRODUCTS)
    assert not is_allowed(p, ORDERS) and not is_allowed(p, "self")
    # a token naming a scope its client no longer holds gets nothing for it
    assert not is_allowed(_state().principal(_claims(UserType.OAUTH_CLIENT, 7, (ORDERS,))), ORDERS)
    # another client's row id under this client_id: a guest
    assert _state().principal(_claims(UserType.OAUTH_CLIENT, 8, (PRODUCTS,))).is_guest


def test_delegated_caller_gets_the_intersection() -> None:
    admin = _state().principal(_claims(UserType.ADMIN, 1, (PRODUCTS,)))
    assert is_allowed(admin, PRODUCTS) and not is_allowed(admin, ORDERS) and not is_allowed(admin, "admin_self")
    catalog_admin = _state().principal(_claims(UserType.ADMIN, 2, (PRODUCTS, "openid")))
    assert is_allowed(catalog_admin, PRODUCTS)
    customer = _state().principal(_claims(UserType.CUSTOMER, 5, ("openid",)))
    assert not is_allowed(customer, "self")  # no `self` scope granted
    assert is_allowed(_state().principal(_claims(UserType.CUSTOMER, 5, ("self",))), "self")


def test_deleted_client_and_feed_round_trip() -> None:
    state = _state()
    state.load_clients({})
    assert state.principal(_claims(UserType.ADMIN, 1, (PRODUCTS,))).is_guest
    guard_side = GrantsState(ResourceTree.load())
    guard_side.load_exported_clients(_state().export_clients())
    assert is_allowed(guard_side.principal(_claims(UserType.OAUTH_CLIENT, 7, (PRODUCTS,))), PRODUCTS)
