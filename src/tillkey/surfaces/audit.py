"""The audit log over HTTP: search it and check its hash chain (resource Tillkey::audit)."""

from __future__ import annotations

import re

from fastapi import Request
from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse

from tillkey.audit import to_json
from tillkey.audit.query import MAX_LIMIT, QueryError, make_query
from tillkey.errors import InvalidRequest
from tillkey.store.audit import AuditQuery
from tillkey.web.caching import NO_STORE_ONLY as _NO_STORE
from tillkey.web.routing import Api, tillkey

AUDIT = "Tillkey::audit"
api = Api(tags=["Tillkey audit"])

# The parameters the search accepts; anything else is refused, not silently ignored, so a
# misspelt filter cannot pass for "no such events".
_TEXT = ("event", "outcome", "username", "since", "until")
_INT = ("actor_type", "actor_id", "limit", "offset")
_INTEGER = re.compile(r"-?\d{1,19}")
# Audit data names people and addresses: no shared cache may keep it.


def _invalid(field: str, why: str) -> InvalidRequest:
    return InvalidRequest(f'The "%fieldName" value is invalid: {why}.', parameters={"fieldName": field})


def _query(params: QueryParams) -> AuditQuery:
    unknown = sorted(set(params.keys()) - set(_TEXT) - set(_INT))
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter(s): {', '.join(u[:40] for u in unknown[:5])}.",
            parameters={"accepted": [*_TEXT, *_INT]},
        )
    for name in params:
        if len(params.getlist(name)) > 1:
            raise _invalid(name, "given more than once")
    ints: dict[str, int] = {}
    for name in _INT:
        raw = params.get(name)
        if raw is not None:
            if not _INTEGER.fullmatch(raw):
                raise _invalid(name, "not an integer")
            ints[name] = int(raw)
    try:
        return make_query(
            event=params.get("event"),
            outcome=params.get("outcome"),
            username=params.get("username"),
            since=params.get("since"),
            until=params.get("until"),
            actor_type=ints.get("actor_type"),
            actor_id=ints.get("actor_id"),
            limit=ints.get("limit", 50),
            offset=ints.get("offset", 0),
        )
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None


@api.route(
    "GET",
    "/tillkey/v1/audit",
    resources=[AUDIT],
    summary=(
        "Search the audit log, newest first: event (or FAMILY.*), outcome, actor_type, actor_id, username, "
        f"since/until (unix seconds or ISO 8601), limit (1 to {MAX_LIMIT}, default 50), offset"
    ),
)
async def search(request: Request) -> JSONResponse:
    query = _query(request.query_params)
    records = await tillkey(request).audit.search(query)
    more = len(records) == query.limit
    return JSONResponse(
        {
            "events": [to_json(r) for r in records],
            "limit": query.limit,
            "offset": query.offset,
            "next_offset": query.offset + len(records) if more else None,
        },
        headers=_NO_STORE,
    )


@api.route(
    "GET",
    "/tillkey/v1/audit/verify",
    resources=[AUDIT],
    summary="Check the audit log's hash chain; names the first altered or missing record (reads the whole log)",
)
async def verify(request: Request) -> JSONResponse:
    report = await tillkey(request).audit.check()
    broken = report.first_break
    return JSONResponse(
        {
            "ok": report.ok,
            "first_bad_seq": broken.seq if broken else None,
            "reason": broken.reason if broken else None,
            "count": report.count,
        },
        headers=_NO_STORE,
    )
