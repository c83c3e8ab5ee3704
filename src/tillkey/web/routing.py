"""Routes as data: every route declares the resources it needs, beside its path (webapi.xml style).

The declaration becomes a guard that authenticates the caller and runs the access check before
FastAPI handles the request (body, parameters, dependencies); the handler reads the resulting
Principal with `Depends(principal)`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from tillkey.access.policy import check
from tillkey.access.stepup import InsufficientUserAuthentication, StepUp
from tillkey.access.tree import ANONYMOUS
from tillkey.audit import ACCESS_DENIED, FAILURE
from tillkey.errors import Forbidden, Unauthenticated
from tillkey.principal import GUEST, Principal, UserType
from tillkey.security.csrf import require_json_for_cookies

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

log = logging.getLogger("tillkey.access")
_PRINCIPAL = "tillkey.principal"


@dataclass(frozen=True, slots=True)
class Declared:
    method: str
    path: str
    resources: tuple[str, ...]
    # What the route hands out from its caller's grant ("api_key", "role_assignment", …): its
    # service asks the delegation rule (access/delegation.py). tests/attacks/test_delegation.py
    # finds every route that could mint or assign and requires this, or a reason it does not.
    delegates: str | None = None
    # The route's own step-up requirement (access/stepup.py); resource-level ones come from settings.
    step_up: StepUp | None = None


def tillkey(request: Request) -> Tillkey:
    tk: Tillkey = request.app.state.tillkey
    return tk


async def authenticate(request: Request) -> tuple[Principal, bool]:
    """(Principal, whether a credential was presented), by the registry of credential kinds."""
    return await tillkey(request).credentials.authenticate(request)


def requires(
    *resources: str, actors: Sequence[UserType] | None = None, step_up: StepUp | None = None
) -> Callable[[Request], Awaitable[Principal]]:
    """actors: the user types this route recognises at all (Medusa's authenticate("user", …));
    any other caller is a guest here, so it gets 401 rather than 403, as Medusa answers.
    step_up: the route's own step-up requirement, on top of its resources' (access/stepup.py)."""
    known = frozenset(actors) if actors is not None else None

    async def guard(request: Request) -> Principal:
        principal, presented = await authenticate(request)
        if known is not None and principal.user_type not in known and not principal.is_guest:
            principal = GUEST
        enforce(request, principal, presented, resources, step_up=step_up)
        require_json_for_cookies(request, principal)
        request.scope[_PRINCIPAL] = principal
        return principal

    return guard


Guard = Callable[[Request], Awaitable[Principal]]


def guarded_route(guard: Guard) -> type[APIRoute]:
    """A route class whose handler runs `guard` first. Not a FastAPI dependency: solving one costs
    more than the whole access check (~12 us against ~4 us, bench/profile_auth.py), on every call.
    A class per route, because FastAPI builds the handler inside the route's constructor and also
    rebuilds it for each router the route is included in: get_route_handler is the one hook both use.
    Auth also comes before body parsing, as in Magento: a stranger's malformed body gets 401, not 400."""

    class GuardedRoute(APIRoute):
        route_guard = staticmethod(guard)  # for the edge's direct dispatch (fast_routes below)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                await guard(request)
                return await handler(request)

            return guarded

    return GuardedRoute


def enforce(
    request: Request,
    principal: Principal,
    presented: bool,
    resources: Sequence[str],
    target: tuple[str, str] | None = None,
    step_up: StepUp | None = None,
) -> None:
    """The access check with its effects on the wire and in the audit log: a Bearer challenge on
    401, an access-denied record on 403. target: (method, path) judged, if not this request's own
    (forward-auth judges the proxied request). Then step-up (access/stepup.py): the route's or its
    resources' requirement of a recent, strong sign-in; its 401 carries RFC 9470's challenge."""
    try:
        check(principal, resources)
        tillkey(request).step_up.require(principal, resources, step_up)
    except InsufficientUserAuthentication:
        raise
    except Unauthenticated as exc:
        challenge = 'Bearer realm="tillkey"'
        if presented:
            challenge += ', error="invalid_token"'
        exc.headers["WWW-Authenticate"] = challenge
        raise
    except Forbidden as exc:
        method, path = target or (request.method, request.url.path)
        # Queued, not awaited: denials are on the hot path. Guests (401) are not recorded:
        # every unauthenticated probe would be a write.
        tillkey(request).audit.record_soon(
            ACCESS_DENIED,
            outcome=FAILURE,
            actor_type=principal.user_type,
            actor_id=principal.user_id,
            request=request,
            details={
                "method": method,
                "path": path[:256],
                "resources": list(resources),
                "reason": exc.detail,
            },
        )
        raise


async def principal(request: Request) -> Principal:
    # async: FastAPI runs a plain-def dependency in a worker thread, a hop costing more than the
    # whole access check.
    found: Principal = request.scope.get(_PRINCIPAL, GUEST)
    return found


_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": {"type": "string"},
                    "parameters": {"type": ["object", "array"]},
                    "errors": {"type": "array", "items": {"type": "object"}},
                    "error": {"type": "string"},
                },
            }
        }
    },
}
# What any route may answer besides success: bad input, who-are-you, not-allowed, no such thing,
# unacceptable Accept, too big, too many, and shedding load. Documented so clients (and the
# schemathesis run in the tests) know every status Tillkey can send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: _ERROR for code in (400, 401, 403, 404, 405, 406, 413, 422, 429, 503)
}


def skip_unreachable_routers(router: APIRouter) -> None:
    """Let each included router turn a request away by its first path segment before matching it.

    Routing is a linear scan, and every route check costs about 2.5 us in this FastAPI: a request
    for a route late in the table (GET /admin/users/me passes ~40 others) spent ~100 us there. Each
    included router now first asks whether the path starts with one of its routes' first segments
    (a str.startswith on a tuple). A false positive only falls through to the full match; a router
    with a route whose first segment is a parameter, or whose routes cannot be read, keeps matching
    every request. Order and semantics are unchanged: only routers that cannot match are skipped.

    FastAPI keeps an included router as one entry (`original_router`, `include_context`) since 0.137,
    the floor in pyproject.toml; an older one flattens them, and the gate would silently do nothing,
    so that is refused at startup instead."""
    included = [e for e in router.routes if hasattr(e, "original_router") and hasattr(e, "include_context")]
    if router.routes and not included:
        raise RuntimeError(
            "this FastAPI flattens included routers (tillkey needs fastapi>=0.137): the routing gate cannot work"
        )
    for entry in included:
        original = getattr(entry, "original_router", None)
        context = getattr(entry, "include_context", None)
        if not isinstance(original, APIRouter) or context is None:
            continue
        firsts: set[str] = set()
        for leaf in original.routes:
            path = getattr(leaf, "path", None)
            first = (context.prefix + path).lstrip("/").split("/", 1)[0] if isinstance(path, str) else "{"
            if not first or "{" in first:
                break  # root or a parameter: anything may match
            firsts.add("/" + first)
        else:
            entry.matches = _first_segment_gate(entry.matches, tuple(sorted(firsts)))  # type: ignore[method-assign,assignment]


# --- direct dispatch of simple routes (issue 19) -------------------------------------------------

FastEndpoint = Callable[[Request], Awaitable[Any]]


def fast_routes(router: APIRouter) -> dict[tuple[str, str], tuple[APIRoute, FastEndpoint]]:
    """The routes web/edge.py may serve itself, without FastAPI's router and dependency solver
    (together about 100 us a request on this FastAPI, more than everything else): those with a
    fixed path, read by GET (or POST, marked `reads_own_body`), whose handler takes at most the request and the caller
    (`Depends(principal)`), with no response model, no route-level dependency and no route class
    of its own but guarded_route's. They run exactly as FastAPI would run
    them: the guard first, then the handler with the same arguments.

    Routing order is kept: a fixed path becomes direct only if no route before it in the table
    (any method) could match it too. The walk stops at the first entry it cannot read (a mount,
    a router included with a prefix): nothing after it is served directly."""
    found: dict[tuple[str, str], tuple[APIRoute, FastEndpoint]] = {}
    earlier: list[Any] = []  # compiled path patterns of every route seen so far
    for entry in router.routes:
        original = getattr(entry, "original_router", None)
        context = getattr(entry, "include_context", None)
        if original is not None:
            prefix: object = getattr(context, "prefix", None)
            if context is None or prefix or not isinstance(original, APIRouter):
                break
            leaves = list(original.routes)
        else:
            leaves = [entry]
        readable = True
        for leaf in leaves:
            regex = getattr(leaf, "path_regex", None)
            path = getattr(leaf, "path", None)
            if regex is None or not isinstance(path, str) or hasattr(leaf, "original_router"):
                readable = False
                break
            if isinstance(leaf, APIRoute) and "{" not in path and not any(r.match(path) for r in earlier):
                endpoint = _direct(leaf)
                if endpoint is not None:
                    for method in leaf.methods or ():
                        found.setdefault((method, path), (leaf, endpoint))
            earlier.append(regex)
        if not readable:
            break
    return found


OWN_BODY = "__tillkey_reads_own_body__"
F = TypeVar("F", bound=Callable[..., Any])


def reads_own_body(fn: F) -> F:
    """Mark a POST handler that takes only the request and reads its body itself, under the
    server's cap (web/forms.read_body): the edge may serve it directly (fast_routes), as FastAPI,
    which reads no body for such a handler, would run it."""
    setattr(fn, OWN_BODY, True)
    return fn


def _direct(route: APIRoute) -> FastEndpoint | None:
    """The route as a plain coroutine of the request, or None if it needs FastAPI's machinery."""
    d = route.dependant
    # Only routes run by FastAPI's own handler or by guarded_route's: another route class may do
    # more in its handler (the console's session and CSRF checks). Only reads, and the POST routes
    # marked `reads_own_body`: any other body is left to FastAPI.
    if type(route) is not APIRoute and getattr(type(route), "route_guard", None) is None:
        return None
    if not route.methods or not (
        route.methods <= {"GET", "HEAD"} or (route.methods == {"POST"} and getattr(route.endpoint, OWN_BODY, False))
    ):
        return None
    if route.dependencies or route.response_model is not None:
        return None
    response_class = route.response_class
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    if d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params:
        return None
    if d.websocket_param_name or d.http_connection_param_name or d.response_param_name:
        return None
    if d.background_tasks_param_name or d.security_scopes_param_name:
        return None
    caller_names = []
    for sub in d.dependencies:
        if sub.call is not principal or sub.dependencies or sub.name is None:
            return None
        caller_names.append(sub.name)
    call = d.call
    if call is None or not inspect.iscoroutinefunction(call):
        return None
    guard: Guard | None = getattr(route, "route_guard", None)
    request_name = d.request_param_name
    status = route.status_code

    async def direct(request: Request) -> Any:
        caller = await guard(request) if guard is not None else GUEST
        kwargs: dict[str, Any] = {name: caller for name in caller_names}
        if request_name:
            kwargs[request_name] = request
        result = await call(**kwargs)
        if isinstance(result, Response):
            return result
        return response_class(jsonable_encoder(result), status_code=status or 200)

    return direct


def _first_segment_gate(
    matches: Callable[[Scope], tuple[Match, Scope]], prefixes: tuple[str, ...]
) -> Callable[[Scope], tuple[Match, Scope]]:
    def gated(scope: Scope) -> tuple[Match, Scope]:
        if _route_path(scope).startswith(prefixes):
            return matches(scope)
        return Match.NONE, {}

    return gated


def _route_path(scope: Scope) -> str:
    """The path routes match against: the request path below the app's root_path, as Starlette's
    router computes it (its helper is private)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


class Api:
    """A router whose every route states its resources. `declared` lists them for docs and tests."""

    def __init__(self, prefix: str = "", tags: Sequence[str] = ()) -> None:
        self.router = APIRouter(prefix=prefix, tags=list(tags))
        self.prefix = prefix
        self.declared: list[Declared] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        resources: Sequence[str],
        summary: str,
        body_schema: dict[str, Any] | None = None,
        status_code: int = 200,
        actors: Sequence[UserType] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        include_in_schema: bool = True,
        delegates: str | None = None,
        step_up: StepUp | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        if not resources:
            raise ValueError(f"{method} {path} declares no resources; use 'anonymous' for public routes")
        res = tuple(resources)

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            extra: dict[str, Any] = {"x-tillkey-resources": list(res)}
            if delegates is not None:
                extra["x-tillkey-delegates"] = delegates
            if step_up is not None:
                extra["x-tillkey-step-up"] = dataclasses.asdict(step_up)
            if res != (ANONYMOUS,):
                extra["security"] = [{"bearer": []}]
            if body_schema is not None:
                extra["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body_schema}},
                }
            self.router.add_api_route(
                path,
                fn,
                methods=[method],
                summary=summary,
                status_code=status_code,
                description=f"Requires: {', '.join(res)}",
                route_class_override=guarded_route(requires(*res, actors=actors, step_up=step_up)),
                openapi_extra=extra,
                responses={**ERROR_RESPONSES, **(responses or {})},
                include_in_schema=include_in_schema,
            )
            self.declared.append(Declared(method, self.prefix + path, res, delegates, step_up))
            return fn

        return register
