"""Bearer credentials from the Authorization header, parsed the way Magento's TokenUserContext does."""

from __future__ import annotations


def access_token(header: str | None) -> tuple[str, str] | None:
    """(scheme, token) of `Bearer <token>` or `DPoP <token>` (RFC 9449 §7.1), scheme lower-cased."""
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or not parts[1]:
        return None
    scheme = parts[0].lower()
    if scheme not in ("bearer", "dpop"):
        return None
    return scheme, parts[1]


def bearer_token(header: str | None) -> str | None:
    """`Bearer <token>`: split on single spaces into exactly two pieces, scheme case-insensitive."""
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]
