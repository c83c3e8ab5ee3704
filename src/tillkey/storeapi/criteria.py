"""Magento searchCriteria from a query string: pagination, filter groups and sort orders.

`searchCriteria[filterGroups][0][filters][0][field]=sku` (or snake_case `filter_groups`,
`condition_type`): filters in a group are OR-ed, groups are AND-ed (Magento's semantics).

A work budget per request (issue 21): Magento bounds none of this, and a filter whose `in` list
held 60,001 values cost half a second of one process's event loop. The caps below sit far above
what a real client sends (a GET request line longer than 8 KiB does not pass nginx's defaults),
and a request past one is answered 400 before any SQL is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tillkey.errors import InvalidRequest
from tillkey.parsing import ascii_int

MAX_PAGE_SIZE = 1000
MAX_GROUP_INDEX = 20  # filterGroups[0..20]
MAX_FILTER_INDEX = 20  # filters[0..20] within a group
MAX_SORT_INDEX = 5
MAX_FILTERS = 100  # filters in one request, all groups together
MAX_VALUE_LENGTH = 8192  # characters of one filter value (an `in` list included)
MAX_IN_VALUES = 1000  # values of one `in` / `nin` filter
MAX_VALUES = 1000  # values of all filters of one request (a scalar filter counts one)
# Whole numbers as the store's integer columns hold them (32 or 64 bits, signed): a bigger one
# would fail in the database driver (a 500), not match nothing.
_WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
# Decimals as a shop writes prices: no exponent, NaN or infinity (Decimal takes "1e999999999").
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")
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
    value = ascii_int(raw, 12)
    if value is None or not (minimum <= value <= maximum):
        raise InvalidRequest(
            'The "%fieldName" value must be a whole number from %min to %max.',
            parameters={"fieldName": name, "min": minimum, "max": maximum},
        )
    return value


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
            g = _int("filterGroups", parts[1], 0, MAX_GROUP_INDEX)
            f = _int("filters", parts[3], 0, MAX_FILTER_INDEX)
            groups.setdefault(g, {}).setdefault(f, {})[parts[4]] = value
        elif len(parts) == 3 and parts[0] == "sort_orders":
            sorts.setdefault(_int("sortOrders", parts[1], 0, MAX_SORT_INDEX), {})[parts[2]] = value
    if sum(len(g) for g in groups.values()) > MAX_FILTERS:
        raise InvalidRequest("A search may hold at most %max filters.", parameters={"max": MAX_FILTERS})
    budget = MAX_VALUES
    for g in sorted(groups):
        filters = []
        for f in sorted(groups[g]):
            spec = groups[g][f]
            name = _snake(spec.get("field", ""))[:64]
            cond = spec.get("condition_type", "eq").lower()
            if name not in fields:
                raise InvalidRequest('"%fieldName" is not a field you can filter on.', parameters={"fieldName": name})
            if cond not in CONDITIONS:
                raise InvalidRequest('Invalid condition type: "%1".', parameters=[cond[:40]])
            value = spec.get("value", "")
            budget -= _check_value(name, value, cond)
            if budget < 0:
                raise InvalidRequest(
                    "A search may hold at most %max filter values in all.", parameters={"max": MAX_VALUES}
                )
            filters.append(Filter(name, value, cond))
        crit.groups.append(filters)
    for i in sorted(sorts):
        name = _snake(sorts[i].get("field", ""))
        direction = sorts[i].get("direction", "ASC").upper()
        if name not in fields or direction not in ("ASC", "DESC"):
            name = name[:64]
            raise InvalidRequest('"%fieldName" is not a field you can sort on.', parameters={"fieldName": name})
        crit.sort.append((name, direction))
    return crit


def _check_value(name: str, value: str, cond: str) -> int:
    """A filter value within the caps; answers how many values it holds (an `in` list: its items)."""
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidRequest(
            'The "%fieldName" filter value may be at most %max characters long.',
            parameters={"fieldName": name, "max": MAX_VALUE_LENGTH},
        )
    if cond not in ("in", "nin"):
        return 1
    count = value.count(",") + 1
    if count > MAX_IN_VALUES:
        raise InvalidRequest(
            'The "%fieldName" filter may list at most %max values.',
            parameters={"fieldName": name, "max": MAX_IN_VALUES},
        )
    return count


def values(f: Filter) -> list[str]:
    """The values of an `in` / `nin` filter (comma-separated, as Magento splits them)."""
    return [p.strip() for p in f.value.split(",")]


def typed(kind: type, raw: str, field_name: str, *, int_bits: int = 32) -> Any:
    """A filter value as the column's Python type: query strings carry text, and drivers (asyncpg)
    bind by type. A number the column cannot hold is a 400 here, not a driver's OverflowError."""
    if kind in (int, Decimal):
        raw = raw.strip()  # int() and Decimal() always allowed surrounding spaces
    if kind is int:
        number = int(raw) if _WHOLE.fullmatch(raw) else None
        if number is None or not -(2 ** (int_bits - 1)) <= number < 2 ** (int_bits - 1):
            raise _bad_value(field_name)
        return number
    if kind is Decimal:
        if not _DECIMAL.fullmatch(raw):
            raise _bad_value(field_name)
        try:
            return Decimal(raw)
        except InvalidOperation:  # the pattern should make this unreachable
            raise _bad_value(field_name) from None
    if kind is bool:
        return raw.lower() in ("1", "true")
    if kind is datetime:
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            # MySQL turns an unreadable date into the zero date, and clients rely on it:
            # my-magento's get_all() filters on `created_at >= "None"` to mean "everything".
            return datetime.min
    return raw


def _bad_value(field_name: str) -> InvalidRequest:
    return InvalidRequest(
        'The "%fieldName" filter value is not valid for its type.', parameters={"fieldName": field_name}
    )
