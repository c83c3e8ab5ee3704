"""The request body, read within TILLKEY_MAX_BODY_BYTES: a declared length past the limit is refused
before a byte is read, and a body that streams past it (no or a false Content-Length) is cut off.
A JSON body is then held to a shape (depth, members in all) no client of Tillkey's routes needs to
exceed, so what a handler loops over stays small whatever the body's size."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tillkey.errors import PayloadTooLarge
from tillkey.parsing import ascii_int


async def read_limited(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    length = ascii_int(declared, 18)
    if declared is not None and (length is None or length > max_bytes):
        raise PayloadTooLarge(f"The request body must be at most {max_bytes} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The request body must be at most {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


MAX_JSON_DEPTH = 32  # nested arrays and objects
MAX_JSON_MEMBERS = 10_000  # array items and object members, all levels together


class JsonTooComplex(ValueError):
    """A JSON body nested or wide past the caps (a ValueError, as json's own errors are)."""


def check_json_shape(data: Any, raw: bytes) -> None:
    """Raise JsonTooComplex for a parsed body deeper than MAX_JSON_DEPTH or holding more than
    MAX_JSON_MEMBERS members. Iterative, and free for the small bodies logins send."""
    if raw.count(b"[") + raw.count(b"{") <= 1 and raw.count(b",") < MAX_JSON_MEMBERS:
        return
    members = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise JsonTooComplex(f"JSON nested deeper than {MAX_JSON_DEPTH}")
        for child in node:
            members += 1
            if members > MAX_JSON_MEMBERS:
                raise JsonTooComplex(f"JSON with more than {MAX_JSON_MEMBERS} members")
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
