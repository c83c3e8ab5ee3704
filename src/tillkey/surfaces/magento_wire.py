"""Magento REST wire format: PHP-style JSON out, strict JSON in, Magento's error envelope.

See shared/specs/magento.md §1: bodies are parsed only when non-empty and need a JSON
content type; errors are {"message", "parameters"?, "errors"?} with the raw %placeholder text.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tillkey.errors import InvalidRequest, NotAcceptable, TillkeyError
from tillkey.security.body_limit import read_limited
from tillkey.surfaces import json_text

JSON_TYPE = "application/json; charset=utf-8"
FIELD_REQUIRED = '"%fieldName" is required. Enter and try again.'
MANY_ERRORS = "One or more input exceptions have occurred."
BAD_TYPE = 'The "%fieldName" value\'s type is invalid. The "%type" type was expected. Verify and try again.'


def encode(obj: Any) -> bytes:
    """PHP json_encode defaults: non-ASCII as \\uXXXX and "/" as "\\/"."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


class MagentoJSON(Response):
    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return encode(content)

    def init_headers(self, headers: Any = None) -> None:
        super().init_headers(headers)
        # Starlette appends its own charset to media types; ours already names one.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
        self.raw_headers.append((b"content-type", JSON_TYPE.encode()))


def error_body(err: TillkeyError) -> dict[str, Any]:
    if len(err.errors) >= 2:
        return {
            "message": MANY_ERRORS,
            "errors": [_one(e) for e in err.errors],
        }
    if len(err.errors) == 1:
        return _one(err.errors[0])
    return _one(err)


def _one(err: TillkeyError) -> dict[str, Any]:
    body: dict[str, Any] = {"message": err.message}
    if err.parameters:
        body["parameters"] = err.parameters
    return body


def check_accept(accept: str) -> None:
    if not accept:
        return
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("*/*", "application/*", "application/json", ""):
            return
    raise NotAcceptable(
        'Server cannot match any of the given Accept HTTP header media type(s) from the request: "%1" '
        "with media types from the config of response renderer.",
        parameters=[accept[:200]],
    )


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, or {} for an empty body. Raises Magento's 400s otherwise."""
    raw = await read_limited(request, max_bytes)
    if not raw.strip():
        return {}
    ctype = request.headers.get("content-type", "")
    if not ctype.strip():
        raise InvalidRequest("Content-Type header is empty.")
    media, _, params = ctype.partition(";")
    media = media.strip().lower()
    if media not in ("application/json", "text/json") and not media.endswith("+json"):
        raise InvalidRequest(f"Server cannot understand Content-Type HTTP header media type {media[:100]}")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if "charset" in params else "utf-8"
    if charset not in ("utf-8", "utf8"):
        raise InvalidRequest("UTF-8 is the only supported charset.")
    try:
        data = json_text.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, lone surrogates
        raise InvalidRequest("Decoding error.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Decoding error.", detail="body is not a JSON object")
    return data


def require_strings(body: dict[str, Any], *names: str) -> list[str]:
    """Magento's CredentialsValidator: each field must be a non-empty string; errors aggregate."""
    errors: list[TillkeyError] = []
    values = []
    for name in names:
        value = body.get(name)
        if value is None or value == "":
            errors.append(InvalidRequest(FIELD_REQUIRED, parameters={"fieldName": name}))
        elif not isinstance(value, str) or "\x00" in value:
            # NUL is no character of any name or password, and PostgreSQL cannot store it.
            errors.append(InvalidRequest(BAD_TYPE, parameters={"fieldName": name, "type": "string"}))
        values.append(value if isinstance(value, str) else "")
    if errors:
        raise InvalidRequest(errors[0].message, parameters=errors[0].parameters, errors=errors)
    return values
