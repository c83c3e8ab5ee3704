"""Who is the client, and did they use HTTPS? Trusted only as far as configured proxies say."""

from __future__ import annotations

import functools
import ipaddress

from starlette.types import Scope


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@functools.lru_cache(maxsize=1024)  # parsed once per client address, not per request
def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def is_secure(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")


def plain_http_from_afar(scope: Scope) -> bool:
    """Plain HTTP from a client that is not on this host: what TILLKEY_REQUIRE_HTTPS refuses on
    credential endpoints, and where a cookie must be Secure (loopback is development)."""
    return not is_secure(scope) and not is_loopback(client_ip(scope))
