"""Cross-site request forgery on cookie-authenticated API calls.

A browser attaches the session cookie (connect.sid) to any request to Tillkey's origin, even one a
page on another site makes. The requests such a page can send without a CORS preflight are
"simple": GET, HEAD, POST with text/plain, application/x-www-form-urlencoded or
multipart/form-data (Fetch standard, CORS-safelisted request headers). SameSite=Lax keeps the
cookie off cross-site POSTs in current browsers, but not off same-site ones (a sibling subdomain)
nor in every browser. So a state-changing call that the session cookie authenticates must say
`application/json`, which no simple request can; Medusa's own clients always do. Bearer tokens,
API keys and signed calls are not sent by the browser on its own, so they are not concerned.
"""

from __future__ import annotations

from starlette.requests import Request

from tillkey.errors import UnsupportedMediaType
from tillkey.principal import Principal

# Methods that carry a body. DELETE has none here, and no page can send it cross-site without a
# preflight, so logging out (DELETE /auth/session) needs no Content-Type.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"
COOKIE_CREDENTIAL = "session"
NOT_JSON = "Requests authenticated by the session cookie must send Content-Type: application/json."


def require_json_for_cookies(request: Request, principal: Principal) -> None:
    """415 for a POST, PUT or PATCH authenticated by the session cookie that is not JSON."""
    if principal.credential != COOKIE_CREDENTIAL or request.method not in BODY_METHODS:
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise UnsupportedMediaType(NOT_JSON, detail=f"cookie-authenticated {request.method} with {media_type!r}")
