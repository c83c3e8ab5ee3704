"""The UserInfo endpoint's claims (OpenID Connect Core §5.3, §5.4): `sub` always; `profile` and
`email` claims when those scopes were granted."""

from __future__ import annotations

from typing import Any

from tillkey.contracts import Profile


def claims(sub: str, profile: Profile, scopes: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"sub": sub}
    if "profile" in scopes:
        out["preferred_username"] = profile.username
        out["name"] = " ".join(p for p in (profile.first, profile.last) if p) or profile.username
        if profile.first:
            out["given_name"] = profile.first
        if profile.last:
            out["family_name"] = profile.last
    if "email" in scopes:
        out["email"] = profile.email
    return out
