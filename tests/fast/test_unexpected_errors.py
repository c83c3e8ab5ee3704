"""An unexpected error (a bug, a dependency failing in a way nobody foresaw) is a 500 with a JSON
body and a report id, the security headers, and the trace in the server log only: on the routes
the edge serves itself (in front of FastAPI's own server-error layer), on those FastAPI routes,
and in the edge's admission steps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Scope

from tests import inprocess
from tillkey.web.edge import Edge

SECRET = "boom-tk_at_do-not-leak-this"


def _check_500(r: httpx.Response, caplog: pytest.LogCaptureFixture) -> None:
    assert r.status_code == 500
    assert SECRET not in r.text and "Traceback" not in r.text and 'File "' not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"  # the edge's security headers
    assert r.headers["cache-control"].startswith("no-store")
    body = r.json()
    if "code" in body:  # a Medusa path: Medusa's own wording, which has no room for a report id
        assert body["type"] == "unknown_error"
        report = caplog.records[-1].getMessage().rsplit(" ", 1)[-1]
    else:
        report = body["message"].split("Report ID: ")[1]
    logged = [rec for rec in caplog.records if rec.getMessage().endswith(report)]
    assert logged and logged[0].exc_info is not None  # the trace is in the log, under the report id
    caplog.clear()


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(SECRET)


async def _client(t: inprocess.InProcess) -> httpx.AsyncClient:
    # The app's exception goes on to the server after the 500 (as FastAPI's own layer lets it);
    # a server logs it, and this transport must not raise it into the test instead of the answer.
    transport = httpx.ASGITransport(app=t.transport.app, raise_app_exceptions=False, client=("127.0.0.1", 50000))  # type: ignore[union-attr]
    return httpx.AsyncClient(transport=transport, base_url=inprocess.BASE_URL)


def test_a_route_the_edge_serves_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    routes = [{"path": "/api/*", "resources": ["anonymous"]}]

    async def body() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=routes) as t:
            async with await _client(t) as c:
                headers = {"X-Original-Method": "GET", "X-Original-URI": "/api/x"}
                assert (await c.get("/tillkey/v1/forward-auth", headers=headers)).status_code == 200
                t.tk.credentials.authenticate = _boom  # type: ignore[method-assign]
                _check_500(await c.get("/tillkey/v1/forward-auth", headers=headers), caplog)
                _check_500(await c.get("/admin/users/me", headers=t.bearer("x")), caplog)

    with caplog.at_level(logging.ERROR, logger="tillkey"):
        inprocess.run(body)


def test_a_route_fastapi_serves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            async with await _client(t) as c:
                t.tk.credentials.authenticate = _boom  # type: ignore[method-assign]
                _check_500(await c.get("/rest/V1/customers/1", headers=t.bearer("x")), caplog)

    with caplog.at_level(logging.ERROR, logger="tillkey"):
        inprocess.run(body)


def test_the_edges_own_admission(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken_rewrite(scope: Scope) -> Scope:
        raise RuntimeError(SECRET)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            async with await _client(t) as c:
                assert (await c.get("/rest/V1/customers/1")).status_code == 401
                layer: Any = t.transport.app.middleware_stack  # type: ignore[union-attr]
                while not isinstance(layer, Edge):
                    layer = layer.app
                layer.rewrites = (broken_rewrite,)
                _check_500(await c.get("/rest/V1/customers/1"), caplog)

    with caplog.at_level(logging.ERROR, logger="tillkey"):
        inprocess.run(body)
