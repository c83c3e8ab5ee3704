"""ASGI assembly: settings -> Tillkey runtime -> surfaces, one error handler per wire format."""

from __future__ import annotations

import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tillkey import __version__
from tillkey.console import accounts as console_accounts
from tillkey.console import credentials as console_credentials
from tillkey.console import dashboard as console_dashboard
from tillkey.console import idp as console_idp
from tillkey.console import idps as console_idps
from tillkey.console import login as console_login
from tillkey.console import passkeys as console_passkeys
from tillkey.console import two_factor as console_two_factor
from tillkey.credentials.mtls import ClientCertHeader
from tillkey.errors import AuthenticationRequired, InvalidRequest, MethodNotAllowed, NotFound, TillkeyError
from tillkey.observability.health import ReadinessProbe
from tillkey.observability.metrics import Metrics
from tillkey.runtime import Tillkey
from tillkey.security.ratelimit import LocalBudget
from tillkey.settings import Settings
from tillkey.store.accounts import admin_count
from tillkey.storeapi.catalog import store_codes
from tillkey.surfaces import (
    api_docs,
    api_keys,
    audit,
    forward_auth,
    idps,
    magento,
    magento_federation,
    magento_graphql,
    medusa,
    medusa_mfa,
    medusa_store,
    medusa_verification,
    medusa_wire,
    native,
    oauth1,
    oauth2,
    passkeys,
    saml,
)
from tillkey.surfaces.magento_wire import MagentoJSON, check_accept, error_body
from tillkey.web.caching import NO_STORE
from tillkey.web.edge import Edge
from tillkey.web.routing import skip_unreachable_routers

log = logging.getLogger("tillkey")

NO_ROUTE = "Request does not match any route."
MAGENTO_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


def magento_paths(scope: Scope) -> Scope | TillkeyError:
    """Maps /rest/{store}/V1/... onto /rest/V1/... (keeping the store code in the scope) and
    refuses (406) an Accept header Magento could not satisfy. A pre-routing step of web/edge.py.

    `all` and every store view code are accepted (magento.md §1); anything else stays in the
    path, so it matches no route and gets Magento's 404. Other paths pay one prefix test."""
    path: str = scope["path"]
    if not path.startswith("/rest/"):
        return scope
    # OAuth 1.0a signatures cover the path the client addressed, before the mapping below.
    scope = dict(scope)
    scope["tillkey.signed_path"] = (scope.get("raw_path") or path.encode()).decode("latin-1")
    if path.endswith("/") and len(path) > 9:
        # Magento ignores a trailing slash; a redirect would break clients that refuse
        # redirects (pymagento sets max_redirects = 0).
        path = path.rstrip("/")
        scope["path"] = path
        scope["raw_path"] = path.encode()
    if not path.startswith("/rest/V1/"):
        code, sep, rest = path[6:].partition("/")
        codes = scope["app"].state.store_codes if "app" in scope else frozenset()
        if sep and (code == "all" or code in codes) and rest.startswith("V1/"):
            scope["path"] = "/rest/" + rest
            scope["raw_path"] = scope["path"].encode()
            scope["tillkey.store"] = code
    for name, value in scope["headers"]:
        if name == b"accept":
            try:
                check_accept(value.decode("latin-1"))
            except TillkeyError as exc:
                return exc
    return scope


def _is_magento(request: Request) -> bool:
    return request.url.path.startswith("/rest/")


def render_error(request: Request, err: TillkeyError) -> Response:
    return render_error_scope(request.scope, err)


def render_error_scope(scope: Scope, err: TillkeyError) -> Response:
    """One error, rendered in the wire format of the surface the path belongs to."""
    headers = dict(err.headers)
    if scope["path"].startswith("/rest/"):
        return MagentoJSON(error_body(err), status_code=err.status_code, headers=headers)
    if scope["path"].startswith("/oauth/token/"):
        return oauth1.error_response(err)
    if scope["path"].startswith("/oauth2/"):
        # RFC 6749 §5.2 shape; error answers of the token endpoint are not cached either (§5.1).
        headers.update(NO_STORE)
        return JSONResponse(oauth2.error_body(err), status_code=err.status_code, headers=headers)
    if medusa_wire.is_medusa_path(scope["path"]):
        return JSONResponse(medusa_wire.error_body(err), status_code=err.status_code, headers=headers)
    # AuthenticationRequired is an Unauthenticated that only Medusa tells apart.
    name = "Unauthenticated" if isinstance(err, AuthenticationRequired) else type(err).__name__
    body: dict[str, Any] = {"error": name, "message": err.message}
    if err.parameters:
        body["parameters"] = err.parameters
    return JSONResponse(body, status_code=err.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TillkeyError)
    async def _tillkey(request: Request, exc: TillkeyError) -> Response:
        if exc.detail:
            log.info("%s %s -> %s: %s", request.method, request.url.path, exc.status_code, exc.detail)
        return render_error(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405 and _is_magento(request) and request.method not in MAGENTO_METHODS:
            err: TillkeyError = MethodNotAllowed(f"The {request.method[:20]} HTTP method is not supported.")
        elif exc.status_code in (404, 405):
            err = NotFound(NO_ROUTE) if _is_magento(request) else NotFound("Not found.")
            if exc.status_code == 405 and not _is_magento(request):
                err = MethodNotAllowed()
        else:
            err = TillkeyError(str(exc.detail))
            err.status_code = exc.status_code
        return render_error(request, err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = str(first.get("loc", ["", "?"])[-1])
        return render_error(
            request,
            InvalidRequest('The "%fieldName" value is invalid.', parameters={"fieldName": field}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The client gets a report id, never a stack trace; the log gets the trace.
        report = secrets.token_hex(6)
        log.exception("unhandled error, report %s", report)
        return render_error(
            request, TillkeyError(f"Internal Error. Details are available in the server log. Report ID: {report}")
        )


def _telemetry_off() -> bool:
    return False


def settle_telemetry(app: FastAPI) -> None:
    """FastAPI asks OpenTelemetry on every request whether a tracer, meter or logger provider is
    configured: three environment lookups, about 3 us, more than Tillkey's whole access check
    (bench/profile_forward_auth.py). Providers are set up before a server serves
    (`opentelemetry-instrument`, FASTAPI_OTEL_AUTO_CONFIGURE, code run at start-up), so Tillkey asks
    once, when it starts: with none configured then, FastAPI's telemetry stays off until restart;
    with any configured, FastAPI goes on deciding per request as it ships. A FastAPI without this
    check (older, or renamed) is left as it is."""
    telemetry = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    if callable(enabled) and not enabled():
        telemetry.enabled = _telemetry_off  # type: ignore[union-attr]


class TillkeyApp(FastAPI):
    """FastAPI with Tillkey's own layers (`front`, outermost first) in front of FastAPI's built-in
    ones: the routes the edge serves directly (forward-auth on every proxied request, the token
    endpoint, …) skip FastAPI's server-error, telemetry and body-limit layers (issue 19). The edge
    answers an unexpected error on those routes itself, with the app's own Exception handler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.front: list[Middleware] = []

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.front):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings | None = None, *, tk: Tillkey | None = None) -> FastAPI:
    """The Tillkey server as an ASGI app. Starting it migrates the schema and loads keys and state."""
    runtime = tk or Tillkey(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        settle_telemetry(app)
        async with runtime.db.session() as s:
            app.state.store_codes = await store_codes(s)
            if not await admin_count(s):
                log.warning(
                    "no admin user exists yet; create one with: "
                    "tillkey admin create --username NAME --email EMAIL (it asks for the password)"
                )
        # Everything loaded at start lives as long as the process: move it out of the collector's
        # sight, so full collections (pauses of tens of ms on the event loop) stay short.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()

    app = TillkeyApp(
        title="Tillkey",
        version=__version__,
        lifespan=lifespan,
        description="Authentication and authorization for commerce APIs.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.tillkey = runtime
    app.router.redirect_slashes = False
    install_error_handlers(app)

    app.state.store_codes = frozenset()
    # /readyz and /metrics (observability/); the request counter is kept by the edge.
    app.state.readiness = ReadinessProbe(runtime.db, runtime.redis_ping if runtime.settings.redis_url else None)
    app.state.metrics = Metrics(
        app.state.readiness,
        networks=runtime.settings.metrics_networks,
        credentials=runtime.credentials,
        issued=runtime.issued,
        authenticator=runtime.authenticator,
        audit=runtime.audit,
        ratelimiter=runtime.ratelimiter,
        broadcast=runtime.broadcast,
        change_feed_seq=lambda: runtime.change_feed_seq,
    )
    general = runtime.ratelimiter.item(runtime.settings.rate_limit_default)
    # Tillkey's own pure-ASGI layers go in front of FastAPI's built-in ones (TillkeyApp), outermost
    # first: the client-certificate header, judged by the direct peer before X-Forwarded-For; the
    # proxy headers from trusted peers; then the edge (web/edge.py): request caps → general rate
    # limit → Magento paths → publishable key (/store) → audit request context → simple fixed-path
    # routes (forward-auth, /admin/users/me, …; web/routing.fast_routes) served directly, the rest
    # by FastAPI's whole stack.
    app.front.append(
        Middleware(
            ClientCertHeader,
            header=runtime.settings.client_cert_header,
            trusted=runtime.settings.trusted_proxies,
            verify_header=runtime.settings.client_verify_header,
        )
    )
    trusted = [p.strip() for p in runtime.settings.trusted_proxies.split(",") if p.strip()]
    if trusted:
        # uvicorn's implementation: X-Forwarded-For/-Proto are believed only from these peers.
        app.front.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted))
    app.front.append(
        Middleware(
            Edge,
            render=render_error_scope,
            budget=LocalBudget(general) if general is not None else None,
            pacer=runtime.pacer,
            metrics=app.state.metrics,
            rewrites=(magento_paths, medusa_wire.require_publishable_key),
            freshness=runtime,
        )
    )

    from tillkey.storeapi import routes as storeapi

    surfaces = (
        magento.api,
        storeapi.api,
        native.api,
        audit.api,
        medusa_mfa.api,
        passkeys.api,
        medusa_verification.api,
        medusa.api,
        api_keys.api,
        medusa_store.api,
        oauth1.api,
        oauth2.api,
        console_login.api,
        console_two_factor.api,
        console_passkeys.api,
        forward_auth.api,
        magento_graphql.api,
        idps.api,
        console_idp.api,
        magento_federation.api,
        saml.api,
    )
    for api in surfaces:
        app.include_router(api.router)
    consoles = (
        console_dashboard.pages,
        console_accounts.pages,
        console_credentials.pages,
        console_two_factor.pages,
        console_passkeys.pages,
        console_idps.pages,
    )
    for pages in consoles:
        app.include_router(pages.router)
    app.state.declared = [d for api in (*surfaces, *consoles) for d in api.declared]
    api_docs.install(app)  # /docs with local Swagger UI files; / and /console lead to the console
    skip_unreachable_routers(app.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
