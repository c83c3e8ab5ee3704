"""Who is the client, and did they use HTTPS? Trusted only as far as configured proxies say."""

from __future__ import annotations

import ipaddress

from starlette.types import Scope


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def is_secure(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")
