"""Every console list filters and pages the same way: `q` (a case-insensitive substring of the
row's searchable text) and `page` in the query string, PER_PAGE rows a page, links that keep the
other parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from tillkey.parsing import ascii_int

PER_PAGE = 25
MAX_PAGE = 100_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pager:
    page: int
    total: int | None  # None: unknown (the source pages itself); `more` says if a next page exists
    more: bool
    prev_href: str | None
    next_href: str | None

    @property
    def label(self) -> str:
        if self.total is None:
            return f"Page {self.page}"
        pages = max(1, -(-self.total // PER_PAGE))
        return f"Page {self.page} of {pages} ({self.total} in all)"


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    page = ascii_int(raw, 6)
    return min(page, MAX_PAGE) if page else 1


def query(request: Request, name: str = "q", limit: int = 255) -> str:
    return request.query_params.get(name, "").strip()[:limit]


def pager(request: Request, page: int, *, more: bool, total: int | None = None) -> Pager:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page" and v]

    def href(n: int) -> str:
        return request.url.path + "?" + urlencode([*params, ("page", str(n))])

    return Pager(page, total, more, href(page - 1) if page > 1 else None, href(page + 1) if more else None)


def paginate(request: Request, rows: Sequence[T], text: Callable[[T], str]) -> tuple[list[T], Pager, str]:
    """Filter in memory (lists the console holds whole: admins, integrations, clients, keys,
    sessions) and cut one page out."""
    q = query(request)
    needle = q.casefold()
    found = [r for r in rows if needle in text(r).casefold()] if needle else list(rows)
    page = page_number(request)
    start = (page - 1) * PER_PAGE
    more = start + PER_PAGE < len(found)
    return found[start : start + PER_PAGE], pager(request, page, more=more, total=len(found)), q
