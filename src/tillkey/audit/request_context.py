"""Where the request being served comes from, for every audit record it causes."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where an event came from. The IP is the peer Starlette reports, which is the client only as
    far as trusted proxies say (proxy headers are applied before routing, if configured)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def from_request(cls, request: Request) -> RequestInfo:
        client = request.client
        headers = request.headers
        return cls(client.host if client else None, headers.get("user-agent"), headers.get("x-request-id"))


# Where the request being served comes from: every record made while serving it (a sign-in, a
# token issued deep in a service, a session started) carries its IP and user agent without each
# call site having to pass them, so no issuance path can forget them (issue 21).
current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "tillkey_audit_request", default=None
)


def info_from_scope(scope: Scope) -> RequestInfo:
    """The client (as the trusted-proxy rules resolved it), user agent and request id of an HTTP
    request, noted in `current_request` by web/edge.py for the audit records it causes."""
    client = scope.get("client")
    agent = request_id = None
    for key, value in scope["headers"]:  # one pass for both (the first of each, as Headers.get)
        if key == b"user-agent":
            if agent is None:
                agent = value.decode("latin-1")
        elif key == b"x-request-id" and request_id is None:
            request_id = value.decode("latin-1")
    return RequestInfo(client[0] if client else None, agent, request_id)
