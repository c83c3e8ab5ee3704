"""Scopes map onto the resource tree: a scope is a resource id (granting its subtree, as a role
grant does), one of the special resources `self` / `admin_self`, or an OpenID Connect scope.

A token's scopes only ever narrow: a client-credentials token holds the resources its scopes
cover; a user-delegated token holds the user's resources intersected with them (access/grants.py).
"""

from __future__ import annotations

import re

from tillkey.access.tree import ADMIN_SELF, SELF, ResourceTree
from tillkey.oauth2.rfc6749.errors import InvalidScope

OPENID = "openid"
OFFLINE_ACCESS = "offline_access"
OIDC_SCOPES = frozenset({OPENID, "profile", "email", OFFLINE_ACCESS})
SPECIAL = frozenset({SELF, ADMIN_SELF})
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}")


def parse(text: str | None) -> tuple[str, ...]:
    """Space-delimited, order kept, duplicates dropped."""
    if not text:
        return ()
    out: list[str] = []
    for part in text.split(" "):
        if not part:
            continue
        if not _TOKEN.fullmatch(part):
            raise InvalidScope("A scope value is malformed.")
        if part not in out:
            out.append(part)
    return tuple(out)


def unknown(tree: ResourceTree, scopes: tuple[str, ...]) -> list[str]:
    return [s for s in scopes if s not in OIDC_SCOPES and s not in SPECIAL and s not in tree]


def within(requested: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The requested scopes, all of which the client must be allowed (RFC 6749 §3.3)."""
    extra = [s for s in requested if s not in allowed]
    if extra:
        raise InvalidScope(detail=f"not allowed: {' '.join(extra)[:200]}")
    return requested


def resource_scopes(scopes: tuple[str, ...] | frozenset[str]) -> tuple[str, ...]:
    return tuple(s for s in scopes if s not in OIDC_SCOPES)
