"""The delegation rule itself (access/delegation.py), and the in-process harness it is tested with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import inprocess
from tillkey.access.delegation import OPERATOR, DelegationRefused, Grant, require_ids_within, require_not_self
from tillkey.access.tree import ALL, ResourceTree
from tillkey.principal import Principal, UserType

TREE = ResourceTree.load()
PRODUCTS = "Magento_Catalog::products"


def _holder(*resources: str) -> Principal:
    granted, everything = TREE.expand(resources)
    return Principal(UserType.ADMIN, 7, resources=granted, all_resources=everything)


def test_a_grant_within_ones_own_passes_and_beyond_it_is_refused_naming_what_is_missing() -> None:
    catalog = _holder("Magento_Catalog::catalog")
    assert require_ids_within(catalog, TREE, [PRODUCTS], what="t").resources >= {PRODUCTS}
    with pytest.raises(DelegationRefused) as refused:
        require_ids_within(catalog, TREE, [ALL], what="t")
    assert refused.value.status_code == 403
    assert ALL in str(refused.value.parameters)


def test_customers_and_guests_delegate_nothing_and_the_operator_everything() -> None:
    customer = Principal(UserType.CUSTOMER, 3)
    with pytest.raises(DelegationRefused):
        require_ids_within(customer, TREE, [PRODUCTS], what="t")
    require_ids_within(OPERATOR, TREE, [ALL], what="t")
    assert Grant.of(OPERATOR).covers(Grant.expand(TREE, [ALL]))


def test_nobody_changes_their_own_grant() -> None:
    with pytest.raises(DelegationRefused):
        require_not_self(_holder(ALL), UserType.ADMIN, 7)
    require_not_self(_holder(ALL), UserType.ADMIN, 8)


def test_the_in_process_harness_reaches_a_protected_route_and_moves_time(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("cat", resources=[PRODUCTS])
            token = await t.admin_token("cat")
            me = await t.client.get("/rest/V1/products", headers=t.bearer(token))
            assert me.status_code == 200, me.text
            t.advance(t.tk.settings.admin_token_ttl + 1)
            expired = await t.client.get("/rest/V1/products", headers=t.bearer(token))
            assert expired.status_code == 401

    inprocess.run(body)


def test_roots_of_an_expanded_grant_expand_back_to_it() -> None:
    """What a new secret key stores when it is given its minting credential's grant."""
    for granted in ([PRODUCTS], ["Magento_Catalog::catalog", "Tillkey::api_keys"], ["Magento_Backend::admin"]):
        expanded, _ = TREE.expand(granted)
        roots = TREE.roots_of(expanded)
        assert TREE.expand(roots)[0] == expanded
        assert len(roots) <= len(granted)


def test_a_secret_key_is_its_admin_for_self_service() -> None:
    key = Principal(UserType.API_KEY, 40, resources=frozenset({PRODUCTS}))
    require_not_self(key, UserType.ADMIN, 7)
    with pytest.raises(DelegationRefused):
        require_not_self(key, UserType.ADMIN, 7, acts_for=(UserType.ADMIN, 7))
