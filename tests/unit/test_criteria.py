"""Magento searchCriteria parsing."""

from __future__ import annotations

import pytest

from tillkey.errors import InvalidRequest
from tillkey.storeapi.criteria import MAX_PAGE_SIZE, Filter, parse

FIELDS = frozenset({"sku", "price", "created_at"})


def test_camel_and_snake_case_are_the_same() -> None:
    camel = parse(
        [
            ("searchCriteria[filterGroups][0][filters][0][field]", "sku"),
            ("searchCriteria[filterGroups][0][filters][0][value]", "24-%"),
            ("searchCriteria[filterGroups][0][filters][0][conditionType]", "like"),
            ("searchCriteria[pageSize]", "5"),
        ],
        FIELDS,
    )
    snake = parse(
        [
            ("searchCriteria[filter_groups][0][filters][0][field]", "sku"),
            ("searchCriteria[filter_groups][0][filters][0][value]", "24-%"),
            ("searchCriteria[filter_groups][0][filters][0][condition_type]", "like"),
            ("searchCriteria[page_size]", "5"),
        ],
        FIELDS,
    )
    assert camel.groups == snake.groups == [[Filter("sku", "24-%", "like")]]
    assert camel.page_size == snake.page_size == 5


def test_paging_defaults_are_bounded() -> None:
    crit = parse([], FIELDS)
    assert crit.limit == MAX_PAGE_SIZE and crit.offset == 0
    crit = parse([("searchCriteria[pageSize]", "10"), ("searchCriteria[currentPage]", "3")], FIELDS)
    assert (crit.limit, crit.offset) == (10, 20)


@pytest.mark.parametrize(
    "query",
    [
        [("searchCriteria[pageSize]", str(MAX_PAGE_SIZE + 1))],
        [("searchCriteria[currentPage]", "0")],
        [("searchCriteria[filterGroups][x][filters][0][field]", "sku")],
        [("searchCriteria[filterGroups][²][filters][0][field]", "sku")],  # isdigit() but not int()
        [("searchCriteria[pageSize]", "²")],
        [("searchCriteria[currentPage]", "9" * 40)],
        [("searchCriteria[filterGroups][0][filters][0][field]", "secret")],
        [("searchCriteria[sortOrders][0][field]", "sku"), ("searchCriteria[sortOrders][0][direction]", "UP")],
    ],
)
def test_bad_criteria_raise_400(query: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest):
        parse(query, FIELDS)
