"""The interactive API docs (/docs) with Swagger UI's files served from this process, so the page
works offline and behind egress filters; and the front door: `/` and `/console` lead to the console."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/static"
CONSOLE = "/console/"


def install(app: FastAPI) -> None:
    """Call with FastAPI(docs_url=None, redoc_url=None): this replaces the CDN-loading pages."""

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    async def to_console(request: Request) -> RedirectResponse:
        return RedirectResponse(CONSOLE, status_code=302)

    # Plain Starlette routes, as FastAPI's own /docs and /openapi.json are: pages that hold no
    # data and need no caller, outside the declared API (every declared route names its resources).
    app.add_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    for path in ("/", "/console"):
        app.add_route(path, to_console, methods=["GET", "HEAD"], include_in_schema=False)
