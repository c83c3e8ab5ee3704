"""Numbers in text from outside (a path, a query, a header, a token's claim): ASCII digits only.

`str.isdigit()` (and `isdecimal`, `isnumeric`) says yes to "²", Arabic-Indic and other Unicode digits, which
`int()` then refuses (a 500) or reads as a number the client never wrote; `int()` alone takes
"+1", " 1" and "1_000". Every id, page, count, timestamp and length read from a request goes
through `ascii_int`, the one place that decides what a number is."""

from __future__ import annotations

_DIGITS = frozenset("0123456789")


def ascii_int(raw: str | None, max_digits: int) -> int | None:
    """`raw` as a non-negative int if it is 1 to `max_digits` ASCII digits (leading zeros allowed),
    else None: no sign, space, underscore or other script's digit."""
    if raw is None or not 0 < len(raw) <= max_digits or not _DIGITS.issuperset(raw):
        return None
    return int(raw)
