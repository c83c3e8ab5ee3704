"""The authorization code grant (RFC 6749 §4.1, as OAuth 2.1 §4.1 and RFC 9700 §2.1 tighten it):
exact redirect-URI matching, PKCE S256, `state` and `iss` in the response, codes that are single
use, live `oauth2_code_ttl` seconds (60) and, when replayed, revoke the tokens they produced."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from tillkey.access import stepup
from tillkey.errors import InvalidRequest, TillkeyError
from tillkey.oauth2 import rfc7636
from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.rfc6749.errors import InvalidGrant, UnauthorizedClient, UnsupportedResponseType
from tillkey.oauth2.rfc6749.params import require
from tillkey.parsing import ascii_int
from tillkey.store.oauth2 import Client, Code

GRANT_TYPE = "authorization_code"
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
CODE_PREFIX = "tk_ac_"
AUTHORIZE_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "prompt",
        "response_mode",
        "acr_values",
        "max_age",
        "dpop_jkt",  # RFC 9449 §10
        "request_uri",
    }
)
# RFC 9126 §2.2: the request_uri a pushed authorization request answers.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    }
)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    redirect_uri_given: bool
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    nonce: str | None
    prompt: str | None
    # OIDC Core §3.1.2.1 / RFC 9470 §4: the classes the client asks for (those Tillkey knows, in its
    # order) and the oldest sign-in it accepts (seconds).
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    # RFC 9449 §10: the thumbprint of the DPoP key the code's exchange must prove.
    dpop_jkt: str | None = None
    # RFC 9126: the pushed request this came from (spent when the code is issued).
    request_uri: str | None = None

    def as_params(self) -> dict[str, str]:
        """The request again, for the hidden fields of the consent form (a pushed one by its
        request_uri: its parameters stay where they were pushed)."""
        if self.request_uri is not None:
            return {"client_id": self.client.client_id, "request_uri": self.request_uri}
        out = {"response_type": "code", "client_id": self.client.client_id, "scope": " ".join(self.scope)}
        if self.redirect_uri_given:
            out["redirect_uri"] = self.redirect_uri
        for name, value in (("state", self.state), ("code_challenge", self.code_challenge), ("nonce", self.nonce)):
            if value is not None:
                out[name] = value
        if self.code_challenge is not None:
            out["code_challenge_method"] = rfc7636.S256
        if self.acr_values:
            out["acr_values"] = " ".join(self.acr_values)
        if self.max_age is not None:
            out["max_age"] = str(self.max_age)
        if self.dpop_jkt is not None:
            out["dpop_jkt"] = self.dpop_jkt
        return out

    def sign_in_falls_short(self, user: User, now: int, *, mfa_reachable: bool) -> bool:
        """Must the user sign in again for this request? Their sign-in is older than max_age, or
        weaker than the strongest acr asked for while they could reach it (a person with no second
        factor set up would only loop: they get a token with the acr they have, which the client
        reads from the token and judges, RFC 9470 §4)."""
        if self.max_age is not None and now - user.auth_time > self.max_age:
            return True
        wanted = self.acr_values[-1] if self.acr_values else None
        if wanted is None or not mfa_reachable:
            return False
        have = stepup.acr_of(user.amr)
        return have is None or stepup.ACR_VALUES.index(have) < stepup.ACR_VALUES.index(wanted)


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in resource owner, from the console session."""

    user_type: int
    user_id: int
    auth_time: int
    amr: tuple[str, ...]


class RedirectError(Exception):
    """An error the client hears about at its (verified) redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: TillkeyError, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state


def redirect_to(uri: str, params: dict[str, str]) -> str:
    """Append query parameters, keeping any the registered URI already has (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_redirect(err: RedirectError, issuer: str) -> str:
    params = {"error": err.error.oauth_error, "error_description": err.error.message}
    if err.state is not None:
        params["state"] = err.state
    params["iss"] = issuer
    return redirect_to(err.redirect_uri, params)


def validate(client: Client, params: dict[str, str], *, require_pkce: bool) -> AuthorizationRequest:
    """Check an authorization request for `client` (known and active). Until the redirect URI is
    known good, errors are shown to the user (InvalidRequest); after that they go to the client
    (RedirectError)."""
    given = params.get("redirect_uri")
    if given is None:
        if len(client.redirect_uris) != 1:
            raise InvalidRequest("Missing parameter: redirect_uri.")
        redirect_uri = client.redirect_uris[0]
    elif given in client.redirect_uris:  # exact string match (RFC 9700 §4.1.3)
        redirect_uri = given
    else:
        raise InvalidRequest("The redirect_uri is not registered for this client.")
    state = params.get("state")

    def fail(error: TillkeyError) -> RedirectError:
        return RedirectError(error, redirect_uri, state)

    if params.get("response_type") != "code":
        raise fail(UnsupportedResponseType())
    if GRANT_TYPE not in client.grant_types:
        raise fail(UnauthorizedClient())
    if params.get("response_mode") not in (None, "query"):
        raise fail(InvalidRequest("Only response_mode=query is supported."))
    try:
        requested = scope_rules.parse(params.get("scope"))
        scope = scope_rules.within(requested, client.scopes) if requested else client.scopes
    except TillkeyError as exc:
        raise fail(exc) from None
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise fail(InvalidRequest("code_challenge_method without code_challenge."))
        if not client.confidential or client.require_pkce or require_pkce:
            raise fail(InvalidRequest("PKCE is required: send code_challenge with code_challenge_method=S256."))
    elif method != rfc7636.S256:
        raise fail(InvalidRequest("Only code_challenge_method=S256 is supported."))
    elif not rfc7636.valid_challenge(challenge):
        raise fail(InvalidRequest("The code_challenge is malformed."))
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > 255:
        raise fail(InvalidRequest("The nonce is too long."))
    prompt = params.get("prompt")
    raw_age = params.get("max_age")
    if raw_age is not None and ascii_int(raw_age, 10) is None:
        raise fail(InvalidRequest("max_age must be a number of seconds."))
    # Unknown classes are ignored (OIDC Core: acr_values are voluntary); known ones kept in order.
    asked = set((params.get("acr_values") or "").split())
    acr_values = tuple(v for v in stepup.ACR_VALUES if v in asked)
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise fail(InvalidRequest("dpop_jkt must be a JWK SHA-256 thumbprint (base64url, 43 characters)."))
    return AuthorizationRequest(
        client,
        redirect_uri,
        given is not None,
        scope,
        state,
        challenge,
        nonce,
        prompt,
        acr_values,
        None if raw_age is None else int(raw_age),
        dpop_jkt,
    )


def code_redirect(req: AuthorizationRequest, code: str, issuer: str) -> str:
    """The redirect URI carrying the code (and state, and iss per RFC 9207)."""
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = issuer
    return redirect_to(req.redirect_uri, params)


def code_param(client: Client, params: dict[str, str]) -> str:
    """RFC 6749 §4.1.3: the code the client presents, if it may use this grant (the service,
    oauth2/service.py, spends it: single use, a replay revokes what it produced)."""
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient()
    (code,) = require(params, "code")
    if not code.startswith(CODE_PREFIX) or len(code) > 128:
        raise InvalidGrant(detail="not a code")
    return code


def check_exchange(client: Client, found: Code, params: dict[str, str], now: int) -> None:
    """A code spent just now, checked against its authorization request: expiry, redirect URI
    and the PKCE verifier."""
    if found.expires_at <= now:
        raise InvalidGrant(detail="code expired")
    given = params.get("redirect_uri")
    if given is None and len(client.redirect_uris) != 1:
        raise InvalidGrant("The redirect_uri is required.")
    if given is not None and given != found.redirect_uri:
        raise InvalidGrant(detail="redirect_uri differs from the authorization request")
    verifier = params.get("code_verifier")
    if found.code_challenge is not None:
        if verifier is None or not rfc7636.verify(verifier, found.code_challenge):
            raise InvalidGrant(detail="PKCE verification failed")
    elif verifier is not None:
        # A verifier for a code issued without a challenge: a PKCE downgrade (RFC 9700 §2.1.1).
        raise InvalidGrant(detail="code_verifier for a code without code_challenge")
