"""What may enter a log record: never a secret, never text that could forge or break a record.

Keys that name a secret are refused with ValueError, so a careless call fails loudly in tests
instead of leaking a credential into a log that is kept forever; values shaped like credentials
are cut out wherever they appear (a request path, an echoed header).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

# Words that mark a key as a secret. Matched per word of the key (snake, kebab or camel case),
# also as a prefix or suffix ("accesstoken", "recovery_codes"): loud, not clever. A false
# positive costs the caller a rename; a false negative leaks a credential.
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "jwt",
    "bearer",
    "authorization",
    "cookie",
    "credential",
    "otp",
    "totp",
    "hotp",
    "code",
    "pin",
    "key",
    "hash",
    "signature",
    "private",
)
REDACTED = "[redacted]"

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_CREDENTIAL = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT
    r"|\btk_[a-z]{2}_[\w-]{16,}"  # Tillkey opaque tokens and keys
    r"|\bsk_[0-9a-f]{16,}"  # Medusa-style secret API keys
    r"|\$argon2\w*\$\S+"  # a password hash
    r"|\b[Bb]earer\s+\S+"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=4096)  # keys come from a small set, checked on every audit record
def names_secret(key: str) -> bool:
    words = _WORD.findall(_CAMEL.sub(r"\1_\2", key).lower())
    return any(w == s or w.startswith(s) or w.endswith(s) for w in words for s in SECRET_WORDS)


# Text each alternative of _CREDENTIAL contains: text with none of them cannot match, and these
# substring tests cost a fraction of the regex (every audit record's every value comes here).
_MARKS = ("eyJ", "tk_", "sk_", "$argon2", "earer")


def redact_credentials(text: str) -> str:
    if not any(mark in text for mark in _MARKS):
        return text
    return _CREDENTIAL.sub(REDACTED, text)


def clean_text(value: str | None, limit: int) -> str | None:
    """Client-supplied text, storable anywhere: no control characters (no forged log lines, no NUL,
    which PostgreSQL refuses), no lone surrogates, cut to `limit`. Empty becomes None."""
    if not value:
        return None
    value = value.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("?", value)[:limit] or None


def clean_details(value: Any, max_depth: int = 4, _where: str = "") -> Any:
    """A JSON-ready copy of `value`: ValueError for a key naming a secret, a non-JSON value or too
    deep a nesting; credential-shaped text redacted; sets sorted, int subclasses made plain ints."""
    if isinstance(value, dict):
        if max_depth <= 0:
            raise ValueError(f"details nest too deep at {_where or 'top'}")
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"details keys must be strings, not {k!r}")
            if names_secret(k):
                raise ValueError(f"details must never carry secrets: key {_where + k!r} is refused")
            out[k] = clean_details(v, max_depth - 1, f"{_where}{k}.")
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [clean_details(v, max_depth - 1, _where) for v in items]
    if isinstance(value, str):
        return redact_credentials(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)  # IntEnum (UserType) as a plain number
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"details values must be JSON values, not {type(value).__name__} (at {_where!r})")
