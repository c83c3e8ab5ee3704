"""Magento's GraphQL customer-token mutations at POST|GET /graphql (magento-migration.md §B).

Headless storefronts (PWA Studio, Venia) sign customers in here rather than over REST. Only the
two token mutations are served; every other field is a GraphQL validation error, never a 500.
`generateCustomerToken` signs in through the same state machine as the REST customer token
(accounts/signin/: limits, throttle, lockout, legacy-hash upgrade, audit), so a shop gets one
failure budget per customer whichever door is used.

graphql-core, the reference implementation's Python port, parses, validates and executes: it is
small, maintained, has no web framework of its own, and its errors carry the `locations`/`path`
Magento's webonyx does. The wire follows Magento 2.4.8: errors first, only the first error, an
`extensions.category`, and the HTTP status from that category (401 authentication, 403
authorization, 400 for request-level errors, 200 otherwise).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute,
    parse,
    validate,
)

from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.signin import SIGN_IN_FAILED, Issued, Password, Subject, login_token
from tillkey.credentials import binding
from tillkey.credentials.bearer import access_token
from tillkey.credentials.binding import BindingRefused
from tillkey.errors import Forbidden, InvalidRequest, RateLimited, TillkeyError, Unauthenticated
from tillkey.principal import GUEST, Principal, UserType
from tillkey.surfaces.magento import attempt
from tillkey.web.routing import Api, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

log = logging.getLogger("tillkey.graphql")
api = Api(tags=["Magento GraphQL"])

INPUT = "graphql-input"
AUTHENTICATION = "graphql-authentication"
AUTHORIZATION = "graphql-authorization"
NOT_A_CUSTOMER = "The current customer isn't authorized."
# Magento 2.4.8's answers to a Bearer token it cannot accept, by why (AuthorizationRequestValidator).
_BAD_TOKEN = {
    "revoked": "User token has been revoked",
    "expired": "Consumer key has expired",
}
_UNREADABLE_TOKEN = "Composite reader could not read a token"  # noqa: S105 (a message)

SCHEMA: GraphQLSchema = build_schema("""
    type Query {
        "Tillkey serves only the customer token mutations; send every other query to the shop."
        tillkey: String
    }
    type Mutation {
        "A customer token for an email and password (Magento's generateCustomerToken)."
        generateCustomerToken(email: String!, password: String!): CustomerToken
        "Revoke every token of the customer whose Bearer token calls it."
        revokeCustomerToken: RevokeCustomerTokenOutput
    }
    type CustomerToken {
        token: String
    }
    type RevokeCustomerTokenOutput {
        result: Boolean!
    }
""")


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    tk: Tillkey
    caller: Principal


class GraphQLRequestError(Exception):
    """Refused before execution (Magento's HttpRequestValidator): no `data` in the answer."""

    def __init__(
        self, message: str, status: int, category: str | None = INPUT, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.category = message, status, category
        self.headers = headers or {}


# --- resolvers ---------------------------------------------------------------------------------


async def _generate_customer_token(_root: object, info: Any, email: str, password: str) -> dict[str, str]:
    ctx: Context = info.context
    if not email.strip():
        raise InvalidRequest('Specify the "email" value.')
    if not password:
        raise InvalidRequest('Specify the "password" value.')
    where = attempt(ctx.request)
    outcome = await ctx.tk.services.sign_in.begin(
        Subject(UserType.CUSTOMER, email), Password(password), where, login_token(ctx.tk.services.accounts)
    )
    if not isinstance(outcome, Issued):  # customers have no second factor; refuse rather than guess
        raise Unauthenticated(SIGN_IN_FAILED, detail="second factor due")
    return {"token": outcome.credential}


async def _revoke_customer_token(_root: object, info: Any) -> dict[str, bool]:
    ctx: Context = info.context
    if ctx.caller.user_type != UserType.CUSTOMER or ctx.caller.user_id is None:
        raise Forbidden(NOT_A_CUSTOMER)
    await ctx.tk.revoker.revoke_for(UserType.CUSTOMER, ctx.caller.user_id)
    return {"result": True}


def _note(_root: object, _info: Any) -> str:
    return "Tillkey serves only generateCustomerToken and revokeCustomerToken."


# Resolvers beside the schema's fields (SDL has no place for them); nested fields read dicts.
assert SCHEMA.mutation_type is not None and SCHEMA.query_type is not None
SCHEMA.mutation_type.fields["generateCustomerToken"].resolve = _generate_customer_token
SCHEMA.mutation_type.fields["revokeCustomerToken"].resolve = _revoke_customer_token
SCHEMA.query_type.fields["tillkey"].resolve = _note


# --- the request -------------------------------------------------------------------------------


async def _payload(request: Request) -> dict[str, Any]:
    """query, variables, operationName from a POST body or GET parameters."""
    if request.method == "GET":
        params = request.query_params
        variables: Any = params.get("variables")
        if variables:
            try:
                variables = json.loads(variables)
            except ValueError:
                raise GraphQLRequestError("Unable to parse the request.", 400) from None
        return {"query": params.get("query", ""), "variables": variables, "operationName": params.get("operationName")}
    if "application/json" not in request.headers.get("content-type", ""):
        raise GraphQLRequestError("Request content type must be application/json", 400)
    raw = await request.body()
    if len(raw) > tillkey(request).settings.max_body_bytes:
        raise GraphQLRequestError("Unable to parse the request.", 400)
    try:
        body = json.loads(raw)
    except ValueError:
        raise GraphQLRequestError("Unable to parse the request.", 400) from None
    if not isinstance(body, dict):
        raise GraphQLRequestError("Unable to parse the request.", 400)
    return body


async def _caller(request: Request, tk: Tillkey) -> Principal:
    """Magento's GraphQL reads a Bearer token only (no cookies, so no CSRF); from 2.4.8 one it
    cannot accept is refused on every request, rather than making the caller a guest. Tillkey's
    addition: a DPoP-bound token as `DPoP <token>` with its proof (credentials/binding.py)."""
    presented = access_token(request.headers.get("authorization"))
    if presented is None:
        return GUEST
    scheme, token = presented
    try:
        principal, _ = await binding.authenticate(tk.authenticator, tk.binding, request, scheme, token)
        return principal
    except BindingRefused as exc:
        raise GraphQLRequestError(exc.message, 401, AUTHENTICATION, exc.headers) from None
    except Unauthenticated as exc:
        raise GraphQLRequestError(_BAD_TOKEN.get(exc.reason, _UNREADABLE_TOKEN), 401, AUTHENTICATION) from None


def _operation(document: Any, name: str | None) -> OperationDefinitionNode | None:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in ops if o.name is not None and o.name.value == name), None)
    return ops[0] if len(ops) == 1 else None


def _category(error: GraphQLError) -> tuple[str | None, TillkeyError | None]:
    """The one mapping of Tillkey's error hierarchy onto Magento's GraphQL categories."""
    original = error.original_error
    if isinstance(original, TillkeyError):
        if isinstance(original, Forbidden):
            return AUTHORIZATION, original
        if isinstance(original, InvalidRequest):
            return INPUT, original
        # A refused sign-in, and its rate limits: Magento's throttle is an authentication error.
        return AUTHENTICATION, original
    return None, None


def _render_error(error: GraphQLError) -> tuple[dict[str, Any], int, dict[str, str]]:
    formatted: dict[str, Any] = dict(error.formatted)
    category, original = _category(error)
    if original is None and error.original_error is not None:
        log.error("GraphQL resolver failed", exc_info=error.original_error)
        return {"message": "Internal server error", **_where(formatted)}, 500, {}
    if original is None:
        formatted.pop("extensions", None)  # validation errors carry none, as webonyx's
        return formatted, 200, {}
    status = {AUTHENTICATION: 401, AUTHORIZATION: 403}.get(category or "", 200)
    if isinstance(original, RateLimited) or original.status_code == 503:
        status = original.status_code
    body = {"message": original.text, **_where(formatted), "extensions": {"category": category}}
    return body, status, dict(original.headers)


def _where(formatted: dict[str, Any]) -> dict[str, Any]:
    return {k: formatted[k] for k in ("locations", "path") if k in formatted}


async def _run(request: Request) -> tuple[dict[str, Any], int, dict[str, str]]:
    tk = tillkey(request)
    payload = await _payload(request)
    query, variables, name = payload.get("query") or "", payload.get("variables"), payload.get("operationName")
    if not isinstance(query, str) or not (variables is None or isinstance(variables, dict)):
        raise GraphQLRequestError("Unable to parse the request.", 400)
    if not (name is None or isinstance(name, str)):
        raise GraphQLRequestError("Unable to parse the request.", 400)
    caller = await _caller(request, tk)
    try:
        document = parse(query)
    except GraphQLError as exc:
        raise GraphQLRequestError(exc.message, 400, None) from None
    errors = validate(SCHEMA, document)
    if errors:
        return {"errors": [_render_error(errors[0])[0]]}, 200, {}
    op = _operation(document, name)
    if request.method == "GET" and op is not None and op.operation == OperationType.MUTATION:
        raise GraphQLRequestError("Mutation requests allowed only for POST requests", 400)
    result = execute(
        SCHEMA,
        document,
        context_value=Context(request, tk, caller),
        variable_values=variables,
        operation_name=name,
    )
    if isawaitable(result):
        result = await result
    if not result.errors:
        return {"data": result.data}, 200, {}
    # Outside developer mode Magento answers the first error only; its category sets the status.
    error, status, headers = _render_error(result.errors[0])
    return {"errors": [error], "data": result.data}, status, headers


async def _answer(request: Request) -> JSONResponse:
    try:
        body, status, headers = await _run(request)
    except GraphQLRequestError as exc:
        error: dict[str, Any] = {"message": exc.message}
        if exc.category:
            error["extensions"] = {"category": exc.category}
        body, status, headers = {"errors": [error]}, exc.status, exc.headers
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **headers})


_REQUEST = {
    "type": "object",
    "required": ["query"],
    "properties": {
        "query": {"type": "string"},
        "variables": {"type": ["object", "null"]},
        "operationName": {"type": ["string", "null"]},
    },
}
# Every answer is a GraphQL response ({"errors":[…], "data":…}), whatever its status.
_ANSWER = {
    "description": "A GraphQL response",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"errors": {"type": "array"}, "data": {}, "message": {}}}
        }
    },
}
_ANSWERS: dict[int | str, dict[str, Any]] = {code: _ANSWER for code in (200, 400, 401, 403, 429, 500, 503)}


@api.route(
    "POST",
    "/graphql",
    resources=[ANONYMOUS],
    summary="Magento GraphQL: the customer token mutations",
    body_schema=_REQUEST,
    responses=_ANSWERS,
)
async def graphql_post(request: Request) -> JSONResponse:
    return await _answer(request)


@api.route(
    "GET", "/graphql", resources=[ANONYMOUS], summary="Magento GraphQL over GET (queries only)", responses=_ANSWERS
)
async def graphql_get(request: Request) -> JSONResponse:
    return await _answer(request)
