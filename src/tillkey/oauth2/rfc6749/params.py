"""Request parameters (RFC 6749 §3.1, §3.2): form-encoded bodies and query strings, where a
parameter may appear at most once and an empty value counts as absent."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from tillkey.errors import InvalidRequest, UnsupportedMediaType

MAX_VALUE = 4096  # characters of one parameter: bounds what reaches the database and the log


def parse(pairs: Iterable[tuple[str, str]], allowed: frozenset[str] | None = None) -> dict[str, str]:
    """One value per name; repeated names are refused (RFC 6749 §3.1), unknown ones dropped."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if "\x00" in value or len(value) > MAX_VALUE:
            raise InvalidRequest(f"The {name[:40]} parameter is malformed.")
        if allowed is not None and name not in allowed:
            continue
        if not value:
            continue
        if name in out:
            raise InvalidRequest(f"The {name[:40]} parameter is repeated.")
        out[name] = value
    return out


def form(body: bytes, content_type: str | None, allowed: frozenset[str] | None = None) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (RFC 6749 §4.1.3, §4.4.2, §6, RFC 7009, RFC 7662)."""
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("The body must be application/x-www-form-urlencoded.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not UTF-8.") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=64)
    except ValueError:
        raise InvalidRequest("The body is not a valid form.") from None
    return parse(pairs, allowed)


def require(params: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if n not in params]
    if missing:
        raise InvalidRequest(f"Missing parameter: {', '.join(missing)}.")
    return [params[n] for n in names]
