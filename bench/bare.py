"""The yardstick of `make bench`: a bare Starlette JSON route on the same uvicorn settings as Tillkey.

Tillkey's hot routes are printed as a fraction of this one, measured in the same rounds, so the
ratios say what the whole stack (middleware, routing, auth) costs above the server's own floor.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def empty(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})  # the same bytes as bench/app.py's EMPTY_BODY


async def whoami(request: Request) -> Response:
    return Response(str(os.getpid()), media_type="text/plain")  # bench/run.py's readiness probe


app = Starlette(routes=[Route("/bench/empty", empty), Route("/bench/whoami", whoami)])
