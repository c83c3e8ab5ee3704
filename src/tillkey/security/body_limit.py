"""The request body, read within TILLKEY_MAX_BODY_BYTES: a declared length past the limit is refused
before a byte is read, and a body that streams past it (no or a false Content-Length) is cut off."""

from __future__ import annotations

from starlette.requests import Request

from tillkey.errors import PayloadTooLarge


async def read_limited(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise PayloadTooLarge(f"The request body must be at most {max_bytes} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The request body must be at most {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
