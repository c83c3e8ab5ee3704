"""Magento searchCriteria from a query string: pagination, filter groups and sort orders.

`searchCriteria[filterGroups][0][filters][0][field]=sku` (or snake_case `filter_groups`,
`condition_type`): filters in a group are OR-ed, groups are AND-ed (Magento's semantics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tillkey.errors import InvalidRequest

MAX_PAGE_SIZE = 1000
CONDITIONS = frozenset({"eq", "neq", "like", "nlike", "gt", "gteq", "lt", "lteq", "in", "nin", "null", "notnull"})
_KEY = re.compile(r"^searchCriteria((?:\[[^\[\]]*\])+)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    value: str
    condition: str


@dataclass
class Criteria:
    groups: list[list[Filter]] = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    page_size: int | None = None
    current_page: int | None = None

    def echo(self) -> dict[str, Any]:
        """The `search_criteria` object Magento returns: what was asked, normalised."""
        out: dict[str, Any] = {
            "filter_groups": [
                {"filters": [{"field": f.field, "value": f.value, "condition_type": f.condition} for f in g]}
                for g in self.groups
            ]
        }
        if self.sort:
            out["sort_orders"] = [{"field": f, "direction": d} for f, d in self.sort]
        if self.page_size is not None:
            out["page_size"] = self.page_size
        if self.current_page is not None:
            out["current_page"] = self.current_page
        return out

    @property
    def limit(self) -> int:
        return self.page_size or MAX_PAGE_SIZE

    @property
    def offset(self) -> int:
        return ((self.current_page or 1) - 1) * self.limit


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _int(name: str, raw: str, minimum: int, maximum: int) -> int:
    if not raw.isdigit() or not (minimum <= int(raw) <= maximum):
        raise InvalidRequest(
            'The "%fieldName" value must be a whole number from %min to %max.',
            parameters={"fieldName": name, "min": minimum, "max": maximum},
        )
    return int(raw)


def parse(query: list[tuple[str, str]], fields: frozenset[str]) -> Criteria:
    crit = Criteria()
    groups: dict[int, dict[int, dict[str, str]]] = {}
    sorts: dict[int, dict[str, str]] = {}
    for key, value in query:
        if "\x00" in value:
            raise InvalidRequest("Search criteria must not contain NUL characters.")
        m = _KEY.match(key)
        if not m:
            continue
        parts = [_snake(p) for p in _PART.findall(m.group(1))]
        if parts == ["page_size"]:
            crit.page_size = _int("pageSize", value, 1, MAX_PAGE_SIZE)
        elif parts == ["current_page"]:
            crit.current_page = _int("currentPage", value, 1, 1_000_000)
        elif len(parts) == 5 and parts[0] == "filter_groups" and parts[2] == "filters":
            g = _int("filterGroups", parts[1], 0, 20)
            f = _int("filters", parts[3], 0, 20)
            groups.setdefault(g, {}).setdefault(f, {})[parts[4]] = value
        elif len(parts) == 3 and parts[0] == "sort_orders":
            sorts.setdefault(_int("sortOrders", parts[1], 0, 5), {})[parts[2]] = value
    for g in sorted(groups):
        filters = []
        for f in sorted(groups[g]):
            spec = groups[g][f]
            name = _snake(spec.get("field", ""))
            cond = spec.get("condition_type", "eq").lower()
            if name not in fields:
                raise InvalidRequest('"%fieldName" is not a field you can filter on.', parameters={"fieldName": name})
            if cond not in CONDITIONS:
                raise InvalidRequest('Invalid condition type: "%1".', parameters=[cond[:40]])
            filters.append(Filter(name, spec.get("value", ""), cond))
        crit.groups.append(filters)
    for i in sorted(sorts):
        name = _snake(sorts[i].get("field", ""))
        direction = sorts[i].get("direction", "ASC").upper()
        if name not in fields or direction not in ("ASC", "DESC"):
            raise InvalidRequest('"%fieldName" is not a field you can sort on.', parameters={"fieldName": name})
        crit.sort.append((name, direction))
    return crit
