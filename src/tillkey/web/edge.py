"""The one ASGI layer in front of every request (issue 19), instead of seven stacked middlewares
each wrapping `send` and copying the scope. In order:

1. request shape caps (security/request_limits.py): 431/400 before anything parses the request;
2. the general per-client rate limit, counted in this process (security/ratelimit.LocalBudget);
3. the pre-routing rewrites and refusals the surfaces register (Magento store paths and Accept,
   Medusa's publishable key): each returns the scope to go on with, or the error to answer;
4. the audit request context (who is asking, for every record the request causes);
5. simple fixed-path routes (forward-auth, the call a proxy makes for every request of the site
   behind it; /admin/users/me; …) served here without FastAPI's router and dependency solver
   (web/routing.fast_routes); everything else goes on to FastAPI's whole stack.

It sits in front of FastAPI's own layers (app.TillkeyApp), so the routes served here skip them.
One `send` wrapper adds the security headers and notes the status for the request counter.
Errors are rendered by the app's own renderer, in the wire format of the path's surface; an
unexpected one, where FastAPI's server-error layer would have answered, by the app's Exception
handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillkey.audit.request_context import current_request, info_from_scope
from tillkey.errors import RateLimited, TillkeyError
from tillkey.observability.metrics import count_request
from tillkey.security import request_limits
from tillkey.security.flood import Pacer
from tillkey.security.headers import PROXY_ONLY, with_security_headers
from tillkey.security.ratelimit import LocalBudget
from tillkey.web.routing import FastEndpoint, fast_routes

if TYPE_CHECKING:
    from tillkey.observability.metrics import Metrics

log = logging.getLogger("tillkey")

Render = Callable[[Scope, TillkeyError], Response]


class Freshness(Protocol):
    """runtime.Tillkey: `stale` while another process's change is signalled but not yet polled
    (store/signal.py); `settle` waits for a poll that started after the signal."""

    @property
    def stale(self) -> bool: ...

    async def settle(self) -> None: ...


# A pre-routing step: the scope to continue with (the same or a rewritten copy), or the error to answer.
Rewrite = Callable[[Scope], "Scope | TillkeyError"]


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        render: Render,
        budget: LocalBudget | None,
        pacer: Pacer,
        metrics: Metrics,
        rewrites: Sequence[Rewrite] = (),
        freshness: Freshness | None = None,
    ) -> None:
        self.app = app
        self.freshness = freshness
        self.render = render
        self.budget = budget
        self.pacer = pacer
        self.metrics = metrics
        self.rewrites = tuple(rewrites)
        # Built at the first request, when the route table is complete (web/routing.fast_routes).
        self._direct: dict[tuple[str, str], tuple[APIRoute, FastEndpoint]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outer = scope  # the security headers depend on the path as the client sent it
        status = 500  # no response started: an exception escaped
        started = False

        async def send_wrapped(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if not (status < 300 and served is not None and served.get(PROXY_ONLY)):
                    message = {**message, "headers": with_security_headers(outer, list(message.get("headers", ())))}
            await send(message)

        fresh = self.freshness
        if fresh is not None and fresh.stale:
            await fresh.settle()  # another process changed auth state a moment ago: catch up first
        metrics = self.metrics
        metrics.in_progress += 1
        served: Scope | None = None
        try:
            served = await self._admit(scope, receive, send_wrapped)
            if served is None:
                return
            scope = served
            token = current_request.set(info_from_scope(scope))
            try:
                direct = self._direct
                if direct is None:
                    direct = self._direct = fast_routes(scope["app"].router)
                found = direct.get((scope["method"], scope["path"]))
                if found is not None and not scope.get("root_path"):
                    # What Starlette's router puts in the scope for the route it picked.
                    scope["router"] = scope["app"].router
                    scope["route"] = found[0]
                    scope["endpoint"] = found[0].endpoint
                    scope["path_params"] = {}
                    await self._serve(found[1], scope, receive, send_wrapped)
                else:
                    await self.app(scope, receive, send_wrapped)
            finally:
                current_request.reset(token)
        except Exception as exc:
            # In front of FastAPI's server-error layer: an unexpected error on a route served
            # here, or in admission, gets the app's own answer (a report id, the trace only in
            # the log); then it goes on to the server, as FastAPI's layer lets it.
            unexpected = scope["app"].exception_handlers.get(Exception)
            if not started and unexpected is not None:
                request = Request(scope, receive)
                await (await unexpected(request, exc))(scope, receive, send_wrapped)
            raise
        finally:
            metrics.in_progress -= 1
            count_request(metrics, served if served is not None else outer, status)

    async def _serve(self, endpoint: FastEndpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """A directly dispatched route; its exceptions go to the app's handlers, as FastAPI's own
        exception middleware would send them (anything unhandled: __call__'s unexpected-error answer)."""
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> Scope | None:
        """The scope to serve, or None once a refusal has been answered."""
        try:
            request_limits.check(scope)
            if self.budget is not None:
                client = scope.get("client")
                try:
                    self.budget.hit(str(client[0]) if client else "unknown")
                except RateLimited:
                    await self.pacer.pause()
                    raise
            for rewrite in self.rewrites:
                got = rewrite(scope)
                if isinstance(got, TillkeyError):
                    raise got
                scope = got
        except TillkeyError as exc:
            await self.render(scope, exc)(scope, receive, send)
            return None
        return scope


def _handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    """The app's handler for this exception by its class hierarchy, short of the catch-all (that
    one belongs to the server error middleware, which also logs the trace)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
