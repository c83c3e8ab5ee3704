"""Strict JSON text for request bodies: what json.loads accepts but nothing downstream can store.

A lone surrogate escape ("\\udcff") decodes to a Python str that cannot be encoded as UTF-8: no
database, hash or log line takes it, so it would surface as a 500 far from the parser. Such a body
is refused where it is parsed, with the surface's own "bad JSON" answer.
"""

from __future__ import annotations

import json
from typing import Any

from tillkey.security.body_limit import check_json_shape


def loads(raw: bytes) -> Any:
    """json.loads of UTF-8 text; ValueError (like json's own errors) for a lone surrogate, or for a
    body nested or wide past security/body_limit.py's caps."""
    data = json.loads(raw.decode("utf-8"))
    check_json_shape(data, raw)
    # Surrogates can only arrive as \u escapes; only then is the (small) re-encoding paid.
    if b"\\u" in raw:
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError is a ValueError
    return data
