"""Medusa v2 wire format (shared/specs/medusa.md): JSON bodies, ids, timestamps, and its error shape.

Errors are `{"type", "message"}`, the status following the type (unauthorized 401, forbidden 403,
not_allowed and invalid_data 400, not_found 404, conflict 409), except the authenticate
middleware's bare `{"message": "Unauthorized"}`, which is what Tillkey's access check answers
here (AuthenticationRequired). Clients such as @medusajs/js-sdk read only `message` and the status.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from tillkey.credentials.api_keys import publishable_key_valid
from tillkey.errors import (
    AuthenticationRequired,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SecondFactorPending,
    TillkeyError,
    Unauthenticated,
    UnsupportedMediaType,
)
from tillkey.parsing import ascii_int
from tillkey.security.body_limit import read_limited
from tillkey.surfaces import json_text

MEDUSA_PREFIXES = ("/auth/", "/admin/", "/store/")
UNKNOWN = {"code": "unknown_error", "type": "unknown_error", "message": "An unknown error occurred."}
NO_PUBLISHABLE_KEY = (
    "Publishable API key required in the request header: x-publishable-api-key. "
    "You can manage your keys in settings in the dashboard."
)
# Medusa 2.21's authenticate middleware, for a token whose MFA challenge is still open (recorded).
MFA_REQUIRED = "MFA verification is required to complete this request"
BAD_PUBLISHABLE_KEY = "A valid publishable key is required to proceed with the request"
_PLACEHOLDER = re.compile(r"%(\w+)")

# Tillkey's account ids are integers; Medusa's carry a type prefix. Both directions live here.
ACTOR_PREFIX = {"user": "user_", "customer": "cus_"}
KEY_PREFIX = "apk_"
IDENTITY_PREFIX = "authid_"


def is_medusa_path(path: str) -> bool:
    return path.startswith(MEDUSA_PREFIXES)


def error_type(err: TillkeyError) -> str:
    if isinstance(err, Unauthenticated):
        return "unauthorized"
    if isinstance(err, Forbidden):
        return "forbidden"
    if isinstance(err, NotAllowed):
        return "not_allowed"
    if isinstance(err, NotFound):
        return "not_found"
    if isinstance(err, Conflict):
        return "conflict"
    if isinstance(err, RateLimited):
        return "too_many_requests"
    if isinstance(err, InvalidRequest | PayloadTooLarge | UnsupportedMediaType):
        return "invalid_data"
    return "not_allowed" if err.status_code < 500 else "unknown_error"


def _text(err: TillkeyError) -> str:
    """Medusa messages are plain text: fill Tillkey's %placeholders from the parameters."""
    params = err.parameters
    if not isinstance(params, dict):
        return err.message
    return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), err.message)


def error_body(err: TillkeyError) -> dict[str, Any]:
    if err.status_code >= 500 and err.status_code != 503:
        return dict(UNKNOWN)
    if isinstance(err, SecondFactorPending):
        return {"message": MFA_REQUIRED}
    if isinstance(err, AuthenticationRequired):
        return {"message": "Unauthorized"}
    return {"type": error_type(err), "message": _text(err)}


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_dt(dt: datetime | None) -> str | None:
    return None if dt is None else dt.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prefixed_id(prefix: str, raw: str) -> int | None:
    """`apk_12` -> 12; anything else (wrong prefix, not a number, absurdly long) -> None."""
    if not raw.startswith(prefix):
        return None
    value = ascii_int(raw[len(prefix) :], 10)
    return value if value is not None and value < 2**31 else None


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The JSON object body ({} when empty). Medusa answers bad JSON with 400 invalid_data."""
    raw = await read_limited(request, max_bytes)
    if not raw.strip():
        return {}
    try:
        data = json_text.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, lone surrogates
        raise InvalidRequest("Invalid JSON in the request body.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid request: Expected object, received " + type(data).__name__)
    return data


def optional_string(body: dict[str, Any], name: str, max_len: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > max_len:
        raise InvalidRequest(f"Invalid request: Field '{name}' must be a string of at most {max_len} characters")
    return value


def required_string(body: dict[str, Any], name: str, max_len: int = 255) -> str:
    value = optional_string(body, name, max_len)
    if not value:
        raise InvalidRequest(f"Invalid request: Field '{name}' is required")
    return value


def require_publishable_key(scope: Scope) -> Scope | TillkeyError:
    """Every /store route needs an active publishable key in `x-publishable-api-key` (Medusa's
    ensurePublishableApiKey). Not an identity: it names the storefront, not the caller; checked in
    memory, before routing (web/edge.py), with Medusa's 400s. Other paths pay one prefix test."""
    if not scope["path"].startswith("/store/"):
        return scope
    raw = ""
    for name, value in scope["headers"]:
        if name == b"x-publishable-api-key":
            raw = value.decode("latin-1")
    tk = scope["app"].state.tillkey
    if not raw:
        return NotAllowed(NO_PUBLISHABLE_KEY)
    if not publishable_key_valid(tk.api_keys, raw, tk.clock.now()):
        return NotAllowed(BAD_PUBLISHABLE_KEY)
    return scope
