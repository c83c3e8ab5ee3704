"""Magento-style token endpoints under /rest[/{store}]/V1/integration/... (spec: magento.md §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi import Path as FastApiPath

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS, SELF
from tillkey.accounts import headless
from tillkey.accounts.signin import (
    Attempt,
    Issued,
    Password,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    Subject,
    TotpCode,
    login_token,
)
from tillkey.accounts.signin.factors import passkey_required
from tillkey.accounts.totp import INVALID_CODE, NOT_CONFIGURED, qr_svg
from tillkey.credentials.dpop import InvalidDPoPProof
from tillkey.errors import InvalidRequest, Unauthenticated
from tillkey.principal import Principal, UserType
from tillkey.security.proxy import client_ip, plain_http_from_afar
from tillkey.surfaces.magento_wire import MagentoJSON, json_body, require_strings
from tillkey.tokens.refresh import InvalidRefreshToken
from tillkey.web.caching import NO_STORE
from tillkey.web.routing import Api, principal, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

api = Api(prefix="/rest/V1", tags=["Magento tokens"])

_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}
Caller = Annotated[Principal, Depends(principal)]
# The headless-storefront refresh cookie (accounts/headless.py): script cannot read it, it travels
# only over HTTPS, only to /rest, and never on a cross-site request (CSRF).
REFRESH_COOKIE = "tillkey_refresh"
REFRESH_COOKIE_PATH = "/rest"


def with_refresh_cookie(body: str, session: headless.Session) -> MagentoJSON:
    """The bare-string token body Magento clients expect, plus the refresh cookie."""
    response = MagentoJSON(body, headers=NO_STORE)
    response.set_cookie(
        REFRESH_COOKIE,
        session.refresh_token,
        max_age=max(session.refresh_max_age, 0),
        path=REFRESH_COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


async def _dpop_key(request: Request, tk: Tillkey) -> str | None:
    """Tillkey's extension of Magento's token endpoints: with a `DPoP` proof (RFC 9449) the token
    (and the refresh cookie's family) is bound to the proof's key; None without one."""
    proofs = request.headers.getlist("dpop")
    if not proofs:
        return None
    if len(proofs) > 1:
        raise InvalidDPoPProof("Send exactly one DPoP proof.")
    return (await tk.dpop.verify(proofs[0], request.method, tk.binding.urls_of(request))).jkt


async def _sign_in(
    tk: Tillkey, subject: Subject, password: str, where: Attempt, otp: str | None = None, jkt: str | None = None
) -> MagentoJSON:
    """The sign-in state machine (accounts/signin/), rendered the Magento way: the token as a bare
    string plus the refresh cookie, or Magento_TwoFactorAuth's 400s when a second factor is due."""

    async def issue(who: SignedIn) -> MagentoJSON:
        token = await login_token(tk.services.accounts, jkt=jkt)(who)
        session = await tk.services.headless.begin(who.user_type, who.user_id, token, who.amr)
        return with_refresh_cookie(token, session)

    second = TotpCode(otp, demanded=True) if otp is not None else None
    try:
        outcome = await tk.services.sign_in.begin(subject, Password(password), where, issue, second=second)
    except SecondFactorFailed as exc:
        raise Unauthenticated(INVALID_CODE, detail=exc.reason) from None
    if isinstance(outcome, Issued):
        return outcome.credential
    if await passkey_required(tk.services.factor_parts, outcome.account):
        # Only a passkey completes this admin's sign-in, and these endpoints take a password and a
        # code: say where to go rather than send them to a provider endpoint that cannot help.
        raise Unauthenticated(PASSKEY_REQUIRED, detail="passkey required: not on Magento's token endpoints")
    raise _second_factor_due(tk, outcome, provider_endpoint=otp is not None)


async def _credentials(request: Request) -> tuple[str, str]:
    body = await json_body(request, tillkey(request).settings.max_body_bytes)
    username, password = require_strings(body, "username", "password")
    return username, password


def attempt(request: Request) -> Attempt:
    """Where a credential came from; refuses plain HTTP from non-loopback clients when required."""
    tk = tillkey(request)
    ip = client_ip(request.scope)
    if tk.settings.require_https and plain_http_from_afar(request.scope):
        # Magento's answer for a secure="true" route reached over HTTP (magento.md §3).
        raise InvalidRequest("Operation allowed only in HTTPS")
    return Attempt(ip, request.headers.get("user-agent", "")[:255], request.headers.get("x-request-id"))


@api.route(
    "POST",
    "/integration/admin/token",
    resources=[ANONYMOUS],
    body_schema=_CREDENTIALS,
    summary="Log an admin in; answers the token as a bare JSON string",
)
async def admin_token(request: Request) -> MagentoJSON:
    where = attempt(request)
    username, password = await _credentials(request)
    return await _sign_in(tillkey(request), Subject(UserType.ADMIN, username), password, where)


@api.route(
    "POST",
    "/integration/customer/token",
    resources=[ANONYMOUS],
    body_schema=_CREDENTIALS,
    summary="Log a customer in (username is the email); answers the token as a bare JSON string",
)
async def customer_token(request: Request) -> MagentoJSON:
    where = attempt(request)
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    username, password = require_strings(body, "username", "password")
    # Tillkey's addition: a customer with MFA on sends the code as "otp" (TOTP or recovery code).
    otp = body.get("otp") if isinstance(body.get("otp"), str) else None
    jkt = await _dpop_key(request, tk)
    return await _sign_in(tk, Subject(UserType.CUSTOMER, username), password, where, otp, jkt)


@api.route(
    "POST",
    "/integration/token/refresh",
    resources=[ANONYMOUS],
    summary="Trade the refresh cookie for a new access token (bare JSON string) and a new cookie",
)
async def refresh_token(request: Request) -> MagentoJSON:
    # Anonymous: the HttpOnly cookie is the credential. A spent cookie presented again revokes
    # its whole family (tokens/refresh.py).
    cookie = request.cookies.get(REFRESH_COOKIE)
    tk = tillkey(request)
    try:
        if not cookie:
            raise InvalidRefreshToken(detail="no refresh cookie")
        session = await tk.services.headless.refresh(cookie, jkt=await _dpop_key(request, tk))
    except InvalidRefreshToken as exc:
        gone = f"{REFRESH_COOKIE}=; Max-Age=0; Path={REFRESH_COOKIE_PATH}; Secure; HttpOnly; SameSite=Strict"
        raise Unauthenticated(
            "The refresh token is invalid, expired or revoked. Please sign in again.",
            detail=exc.detail,
            headers={"Set-Cookie": gone},
        ) from None
    return with_refresh_cookie(session.access_token, session)


@api.route(
    "POST",
    "/integration/customer/revoke-customer-token",
    resources=[SELF],
    summary="Revoke every token of the calling customer",
)
async def revoke_customer_token(request: Request, caller: Caller) -> MagentoJSON:
    await tillkey(request).revoker.revoke_for(UserType.CUSTOMER, caller.user_id)
    return MagentoJSON(True)


@api.route(
    "POST",
    "/integration/admin/revoke-admin-token",
    resources=[ADMIN_SELF],
    summary="Revoke every token of the calling admin (Tillkey addition; Magento has no REST route)",
)
async def revoke_admin_token(request: Request, caller: Caller) -> MagentoJSON:
    await tillkey(request).revoker.revoke_for(UserType.ADMIN, caller.user_id)
    return MagentoJSON(True)


# --- admin two-factor auth (magento.md §2.3): TOTP, Magento's "google" provider -----------------

GOOGLE = "google"
USE_PROVIDER = "Please use the 2fa provider-specific endpoints to obtain a token."
CONFIGURE_2FA = (
    "You are required to configure personal Two-Factor Authorization in order to login. "
    "Please ask an administrator to run tillkey admin 2fa enroll."
)
PASSKEY_REQUIRED = (
    "A passkey is required for this account, and this endpoint cannot check one. Sign in through the "
    "console (/console/login) or an OAuth 2 client (/oauth2/authorize), which ask for the passkey."
)
CUSTOMER_OTP = 'Two-factor auth is on for this account: send the authenticator code as "otp" with the password.'
_TFA_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password", "otp"],
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string", "format": "password"},
        "otp": {"type": "string", "description": "6-digit code from the authenticator app, or a recovery code"},
    },
}
_OTP = {"type": "object", "required": ["otp"], "properties": {"otp": {"type": "string"}}}
AdminId = Annotated[int, FastApiPath(ge=1, le=2**31 - 1)]


def _second_factor_due(tk: Tillkey, due: SecondFactorDue, *, provider_endpoint: bool) -> InvalidRequest:
    """Magento_TwoFactorAuth's 400s (magento.md §2.3): a password-only token is refused when a
    second factor applies (TILLKEY_ADMIN_2FA); the provider endpoint needs TOTP set up."""
    if due.user_type == UserType.CUSTOMER:
        return InvalidRequest(CUSTOMER_OTP, parameters={"active_providers": [GOOGLE]})
    if provider_endpoint and not due.enrolled:
        return InvalidRequest(NOT_CONFIGURED)
    if due.enrolled:
        return InvalidRequest(USE_PROVIDER, parameters={"active_providers": [GOOGLE]})
    return InvalidRequest(CONFIGURE_2FA, parameters={"providers": [GOOGLE], "active_providers": []})


@api.route(
    "POST",
    "/tfa/provider/google/authenticate",
    resources=[ANONYMOUS],
    body_schema=_TFA_CREDENTIALS,
    summary="Log an admin in with password and TOTP code (or a recovery code); answers the token as a bare JSON string",
)
async def google_authenticate(request: Request) -> MagentoJSON:
    where = attempt(request)
    body = await json_body(request, tillkey(request).settings.max_body_bytes)
    username, password, otp = require_strings(body, "username", "password", "otp")
    # The code is checked only after the password, and a wrong one spends the account's one
    # failure budget (accounts/signin/budget.py), as on every other surface.
    return await _sign_in(tillkey(request), Subject(UserType.ADMIN, username), password, where, otp)


@api.route(
    "POST",
    "/tillkey/tfa/enroll",
    resources=[ADMIN_SELF],
    summary="Start TOTP enrolment for the calling admin: secret, otpauth URI and QR code (Tillkey addition)",
)
async def tfa_enroll(request: Request, caller: Caller) -> MagentoJSON:
    enrolment = await tillkey(request).services.totp.enroll(caller.user_id)
    body = {"secret": enrolment.secret, "otpauth_uri": enrolment.uri, "qr_svg": qr_svg(enrolment.uri)}
    return MagentoJSON(body, headers=NO_STORE)


@api.route(
    "POST",
    "/tillkey/tfa/activate",
    resources=[ADMIN_SELF],
    body_schema=_OTP,
    summary="Activate the calling admin's TOTP with a first code; answers the recovery codes, shown once",
)
async def tfa_activate(request: Request, caller: Caller) -> MagentoJSON:
    tk = tillkey(request)
    (otp,) = require_strings(await json_body(request, tk.settings.max_body_bytes), "otp")
    codes = await tk.services.totp.activate(caller.user_id, otp)
    return MagentoJSON({"recovery_codes": codes}, headers=NO_STORE)


@api.route(
    "DELETE",
    "/tillkey/tfa/{admin_id}",
    resources=["Magento_TwoFactorAuth::tfa"],
    delegates="second_factor_reset",
    summary="Reset another admin's two-factor auth (they enroll again) and revoke their tokens",
)
async def tfa_reset(request: Request, caller: Caller, admin_id: AdminId) -> MagentoJSON:
    # Never one's own, and only an admin within the caller's grant: the service asks the rule.
    await tillkey(request).services.totp.reset(caller, admin_id)  # also revokes their tokens
    return MagentoJSON(True)
