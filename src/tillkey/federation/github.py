"""GitHub sign-in: plain OAuth 2 (RFC 6749's code grant, with `state` and PKCE), no ID token. Who
signed in comes from GitHub's REST API with the access token: the account's numeric id (stable;
a login can be renamed and reused) from GET /user, and its email from GET /user/emails, trusted
only when it is both the primary address and verified (the one GitHub sends mail to).

github.com's API lives on api.github.com; a GitHub Enterprise Server host serves it at /api/v3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GITHUB = "https://github.com"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorize: str
    token: str
    api: str


@dataclass(frozen=True, slots=True)
class User:
    subject: str
    email: str | None  # the verified primary address
    unverified_email: str | None  # a primary address GitHub has not verified
    name: str


def endpoints(issuer: str) -> Endpoints:
    host = issuer.rstrip("/")
    api = "https://api.github.com" if host == GITHUB else f"{host}/api/v3"
    return Endpoints(f"{host}/login/oauth/authorize", f"{host}/login/oauth/access_token", api)


def user(profile: Mapping[str, Any], emails: Any) -> User:
    """The account from GET /user and GET /user/emails; ValueError when GET /user names none."""
    account = profile.get("id")
    if not isinstance(account, int) or isinstance(account, bool) or account <= 0:
        raise ValueError("GET /user answered no account id")
    listed = [e for e in emails if isinstance(e, dict)] if isinstance(emails, list) else []
    primary = next((e for e in listed if e.get("primary") is True and isinstance(e.get("email"), str)), None)
    verified = primary is not None and primary.get("verified") is True
    address = primary["email"] if primary is not None else None
    name = profile.get("name") or profile.get("login") or ""
    return User(str(account), address if verified else None, None if verified else address, str(name)[:255])
