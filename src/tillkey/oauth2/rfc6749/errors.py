"""RFC 6749 §5.2 error codes, as members of Tillkey's one error hierarchy (tillkey.errors).

Each class names its `oauth_error`; app.py renders every error on /oauth2/* as
{"error", "error_description"} (RFC 6749 §5.2) and the status its base class carries.
"""

from __future__ import annotations

from tillkey.errors import Forbidden, InvalidRequest, Unauthenticated


class InvalidClient(Unauthenticated):
    """Client authentication failed (RFC 6749 §5.2): 401, with a Basic challenge."""

    oauth_error = "invalid_client"
    default_message = "Client authentication failed."

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(message, detail=detail, headers={"WWW-Authenticate": 'Basic realm="tillkey"'})


class InvalidGrant(InvalidRequest):
    oauth_error = "invalid_grant"
    default_message = "The authorization grant is invalid, expired, revoked or was issued to another client."


class UnauthorizedClient(InvalidRequest):
    oauth_error = "unauthorized_client"
    default_message = "The client is not allowed to use this grant type."


class UnsupportedGrantType(InvalidRequest):
    oauth_error = "unsupported_grant_type"
    default_message = "The grant type is not supported."


class UnsupportedResponseType(InvalidRequest):
    oauth_error = "unsupported_response_type"
    default_message = "Only response_type=code is supported."


class InvalidScope(InvalidRequest):
    oauth_error = "invalid_scope"
    default_message = "The requested scope is invalid or exceeds what the client may ask for."


class AccessDenied(Forbidden):
    oauth_error = "access_denied"
    default_message = "The resource owner denied the request."


class InsufficientScope(Forbidden):
    """RFC 6750 §3.1: the token lacks a scope this endpoint needs."""

    oauth_error = "insufficient_scope"
    default_message = "The access token does not carry the scope this request needs."


class UnsupportedTokenType(InvalidRequest):
    """RFC 7009 §2.2.1."""

    oauth_error = "unsupported_token_type"
    default_message = "This token type cannot be revoked."


class LoginRequired(Unauthenticated):
    """OpenID Connect Core §3.1.2.6: prompt=none, and nobody is signed in."""

    oauth_error = "login_required"
    default_message = "Sign-in is required."


class ConsentRequired(Forbidden):
    """OpenID Connect Core §3.1.2.6: prompt=none, and the client needs the user's consent."""

    oauth_error = "consent_required"
    default_message = "Consent is required."
