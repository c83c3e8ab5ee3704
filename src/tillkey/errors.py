"""One error hierarchy. Handlers raise these; each surface renders them in its own wire format.

`message` is public and may hold Magento-style %placeholders filled from `parameters`;
`detail` is for the server log only and never leaves the process.
`oauth_error` is the RFC 6749 §5.2 / RFC 6750 §3.1 error code the OAuth surface renders (/oauth2/*).
"""

from __future__ import annotations

import re
from typing import Any


class TillkeyError(Exception):
    status_code = 500
    default_message = "Internal Error."
    oauth_error = "server_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        parameters: dict[str, Any] | list[Any] | None = None,
        errors: list[TillkeyError] | None = None,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.parameters = parameters
        self.errors = errors or []
        self.detail = detail
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def text(self) -> str:
        """The public message with its %placeholders filled, for surfaces that speak plain text
        (console pages, Medusa); Magento's wire keeps the placeholders and sends `parameters`."""
        params = self.parameters
        if not isinstance(params, dict):
            return self.message
        return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), self.message)


_PLACEHOLDER = re.compile(r"%(\w+)")


class InvalidRequest(TillkeyError):
    status_code = 400
    default_message = "Invalid request."
    oauth_error = "invalid_request"


class Unauthenticated(TillkeyError):
    """401: we do not know who is calling (no, unreadable, expired or revoked credential)."""

    status_code = 401
    default_message = "Authentication is required."
    oauth_error = "invalid_token"
    # A bad credential normally makes the caller a guest, silently (Magento's bearer tokens);
    # kinds whose protocol tells the client why (OAuth 1.0a signatures) set this.
    tell_client = False
    # Why, coarsely, for the auth-outcome metric (one of REFUSAL_REASONS); never sent to clients.
    reason = "invalid"

    def __init__(
        self,
        message: str | None = None,
        *,
        parameters: dict[str, Any] | list[Any] | None = None,
        errors: list[TillkeyError] | None = None,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, parameters=parameters, errors=errors, detail=detail, headers=headers)
        if reason is not None:
            self.reason = reason


# The fixed set of `Unauthenticated.reason` values: metric labels must not grow with input.
REFUSAL_REASONS = ("invalid", "expired", "revoked", "inactive")


class AuthenticationRequired(Unauthenticated):
    """401 from the access check: a route that needs a caller got none (or an unusable credential).

    Kept apart from other 401s because Medusa answers exactly this case with its bare
    `{"message": "Unauthorized"}` (its authenticate middleware), not its usual error shape."""


class SecondFactorPending(AuthenticationRequired):
    """The access check's 401 for a caller whose sign-in still awaits its second factor (a pending
    MFA challenge's token): Medusa says so ("MFA verification is required to complete this
    request"); every other surface answers it as AuthenticationRequired."""


class Forbidden(TillkeyError):
    """403: we know who is calling, and they may not do this."""

    status_code = 403
    default_message = "Permission denied."
    oauth_error = "access_denied"


class NotAllowed(InvalidRequest):
    """400 for a request that is well-formed but not allowed in this state (Medusa's `not_allowed`:
    a missing publishable key, deleting a key that is still active, revoking one twice)."""


class NotFound(TillkeyError):
    status_code = 404
    default_message = "Not found."
    oauth_error = "invalid_request"


class MethodNotAllowed(TillkeyError):
    status_code = 405
    default_message = "Method not allowed."
    oauth_error = "invalid_request"


class NotAcceptable(TillkeyError):
    status_code = 406
    default_message = "Not acceptable."
    oauth_error = "invalid_request"


class Conflict(TillkeyError):
    status_code = 409
    default_message = "Conflict."
    oauth_error = "invalid_request"


class PayloadTooLarge(TillkeyError):
    status_code = 413
    default_message = "Request body is too large."
    oauth_error = "invalid_request"


class UnsupportedMediaType(TillkeyError):
    status_code = 415
    default_message = "Unsupported media type."
    oauth_error = "invalid_request"


class RateLimited(TillkeyError):
    status_code = 429
    default_message = "Too many requests."
    oauth_error = "temporarily_unavailable"


class UpstreamFailed(TillkeyError):
    """502: a server Tillkey called for the request (an integration's endpoint) failed."""

    status_code = 502
    default_message = "The upstream server did not answer as expected."


class Unavailable(TillkeyError):
    status_code = 503
    default_message = "The service is temporarily unavailable. Please try again later."
    oauth_error = "temporarily_unavailable"


class WeakPassword(InvalidRequest):
    """A new password that fails the policy; the message says why, for the person choosing it."""
