"""Resource tree expansion and the access check, in isolation."""

from __future__ import annotations

import pytest

from tillkey.access.policy import check, is_allowed
from tillkey.access.tree import ResourceTree
from tillkey.errors import Forbidden, Unauthenticated
from tillkey.principal import GUEST, Principal, UserType

TREE = ResourceTree.load()


def admin(*granted: str) -> Principal:
    resources, everything = TREE.expand(granted)
    return Principal(UserType.ADMIN, 1, resources=resources, all_resources=everything)


def test_node_grant_covers_its_subtree_only() -> None:
    p = admin("Magento_Catalog::catalog")
    assert is_allowed(p, "Magento_Catalog::products")
    assert is_allowed(p, "Magento_Catalog::edit_product_design")
    assert not is_allowed(p, "Magento_Backend::admin")  # not the parent
    assert not is_allowed(p, "Magento_Sales::actions_view")


def test_all_grants_everything() -> None:
    p = admin("Magento_Backend::all")
    assert all(is_allowed(p, r) for r in TREE.nodes)


def test_special_resources() -> None:
    customer = Principal(UserType.CUSTOMER, 7)
    assert is_allowed(GUEST, "anonymous")
    assert is_allowed(customer, "self") and not is_allowed(GUEST, "self")
    assert not is_allowed(admin("Magento_Backend::all"), "self")  # Magento: self is customer-only
    assert is_allowed(admin(), "admin_self") and not is_allowed(customer, "admin_self")
    assert not is_allowed(customer, "Magento_Catalog::products")


def test_all_declared_resources_must_be_allowed() -> None:
    p = admin("Magento_Catalog::products")
    check(p, ["Magento_Catalog::products", "anonymous"])
    with pytest.raises(Forbidden) as err:
        check(p, ["Magento_Catalog::products", "Magento_Sales::actions_view"])
    assert err.value.parameters == {"resources": "Magento_Catalog::products, Magento_Sales::actions_view"}
    with pytest.raises(Unauthenticated):
        check(GUEST, ["Magento_Catalog::products"])


def test_unknown_ids_are_reported_and_grant_nothing() -> None:
    assert TREE.unknown(["Magento_Catalog::products", "Nope::x"]) == ["Nope::x"]
    assert TREE.expand(["Nope::x"]) == (frozenset(), False)


def test_walk_lists_every_node_once() -> None:
    ids = [n.id for _d, n in TREE.walk()]
    assert len(ids) == len(set(ids)) == len(TREE.nodes)
