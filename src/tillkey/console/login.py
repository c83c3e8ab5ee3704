"""Console sign-in: /console/login (username, password), then /console/login/otp when two-factor
auth applies, or /console/login/enrol (two_factor.py) when it is required and not set up yet.
Both steps are the sign-in state machine's (accounts/signin/: rate limits,
throttle, lockout, one failure budget, one generic failure message), a CSRF token on every form (double-submit cookie
before sign-in, the session's own token after), and a fresh session id at every step.

Admins only for now: the console is theirs. `next` may only point back into Tillkey (no open
redirect), typically to the /oauth2/authorize request that sent the user here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tillkey import audit
from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.passkeys import Owner
from tillkey.accounts.signin import (
    Attempt,
    Issued,
    LoginFailed,
    Password,
    Pending,
    SecondFactor,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    Subject,
    TotpCode,
    VerificationRequired,
)
from tillkey.accounts.signin.factors import account_name, passkey_required
from tillkey.console import templating
from tillkey.console.sign_in_session import (
    ENROL_TTL,
    PENDING_TTL,
    ConsoleSession,
    ConsoleSessions,
    cookie_name,
    csrf_cookie_name,
    delete_cookie,
    grant_fingerprint,
    set_cookie,
)
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import Conflict, NotFound, RateLimited, TillkeyError, Unauthenticated, Unavailable
from tillkey.oauth2.rfc6749 import params as oauth_params
from tillkey.principal import UserType
from tillkey.security.proxy import client_ip
from tillkey.store import oauth2 as oauth2_repo
from tillkey.store import passkeys as passkeys_repo
from tillkey.store.accounts import admin_by_id
from tillkey.web.forms import read_body, require_https
from tillkey.web.routing import Api, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

api = Api(tags=["Console"])
LOGIN_FIELDS = frozenset({"csrf", "next", "username", "password"})
OTP_FIELDS = frozenset({"csrf", "next", "otp"})
HOME = "/console/"
PASSKEY_ENROLMENT = "/console/login/enrol/passkey"
FAILED = "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."
# TILLKEY_ADMIN_EMAIL_VERIFICATION=required and the admin never verified their address: the code
# comes from Medusa's /auth/verification (the admin dashboard's sign-in asks for it).
UNVERIFIED = (
    "Your email address is not verified yet. Verify it with the code your store's admin dashboard"
    " sends at sign-in, then sign in here again."
)


def safe_next(value: str | None) -> str:
    """A path on this server only: '/x', never '//host' or 'scheme:' (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 4096:
        return HOME
    if any(ord(c) < 0x20 for c in value):
        return HOME
    return value


async def redirect_targets(tk: Tillkey, next_url: str) -> tuple[str, ...]:
    """The redirect URIs the sign-in may end at (for the page's form-action), if `next` is an
    authorization request."""
    parts = urlsplit(next_url)
    if parts.path != "/oauth2/authorize":
        return ()
    client_ids = parse_qs(parts.query).get("client_id", [])
    if len(client_ids) != 1:
        return ()
    async with tk.db.session() as s:
        client = await oauth2_repo.client_by_client_id(s, client_ids[0][:64])
    return client.redirect_uris if client is not None else ()


ENDED_NOTICE = "Your session has ended. Please sign in again."
NOTICES = {
    "ended": ENDED_NOTICE,
    "password": "Your password was changed and every session of your account ended. Sign in with the new one.",
}


def sign_in_attempt(request: Request) -> Attempt:
    return Attempt(
        client_ip(request.scope), request.headers.get("user-agent", "")[:255], request.headers.get("x-request-id")
    )


@api.route("GET", "/console/login", resources=[ANONYMOUS], include_in_schema=False, summary="Console sign-in page")
async def login_page(request: Request) -> Response:
    tk = tillkey(request)
    next_url = safe_next(request.query_params.get("next"))
    csrf = secrets.token_urlsafe(24)
    notice = NOTICES.get(request.query_params.get("reason", ""))
    response = templating.login(
        csrf=csrf,
        next_url=next_url,
        form_targets=await redirect_targets(tk, next_url),
        notice=notice,
        providers=await tk.services.federation.enabled("admin"),
        passkeys=await any_admin_passkey(tk),
    )
    set_cookie(response, request, csrf_cookie_name(request), csrf, 3600)
    return response


@api.route("POST", "/console/login", resources=[ANONYMOUS], include_in_schema=False, summary="Console sign-in")
async def login(request: Request) -> Response:
    tk = tillkey(request)
    try:
        require_https(request)
        form = oauth_params.form(await read_body(request), request.headers.get("content-type"), LOGIN_FIELDS)
    except TillkeyError as exc:
        return templating.error("Sign-in failed", exc.message, exc.status_code)
    next_url = safe_next(form.get("next"))
    targets = await redirect_targets(tk, next_url)
    expected = request.cookies.get(csrf_cookie_name(request), "")
    csrf = expected or secrets.token_urlsafe(24)
    if not expected or not constant_time_equals(form.get("csrf", ""), expected):
        refused = templating.login(
            csrf=csrf, next_url=next_url, error="The form expired; please sign in again.", form_targets=targets
        )
        set_cookie(refused, request, csrf_cookie_name(request), csrf, 3600)
        return refused
    username, password = form.get("username", ""), form.get("password", "")
    where, sessions = sign_in_attempt(request), tk.services.console_sessions

    async def issue(who: SignedIn) -> str:
        cookie = await sessions.begin(
            UserType.ADMIN,
            who.user_id,
            who.amr,
            pending_otp=False,
            fingerprint=grant_fingerprint(tk.grants.admin(who.user_id)),
            ip=where.ip,
            user_agent=where.user_agent,
        )
        await sessions.end_others(UserType.ADMIN, who.user_id, cookie)
        return cookie

    try:
        if not username or not password:
            raise LoginFailed("empty username or password")
        outcome = await tk.services.sign_in.begin(Subject(UserType.ADMIN, username), Password(password), where, issue)
    except VerificationRequired:
        # The right password, an unverified address (TILLKEY_ADMIN_EMAIL_VERIFICATION): only the
        # password's holder gets here, so the console says what to do rather than "incorrect".
        return templating.login(csrf=csrf, next_url=next_url, error=UNVERIFIED, form_targets=targets)
    except (LoginFailed, RateLimited, Unavailable) as exc:
        message = FAILED if isinstance(exc, LoginFailed) else exc.message
        return templating.login(csrf=csrf, next_url=next_url, error=message, form_targets=targets)
    except TillkeyError as exc:  # no role, …: the same generic answer
        message = exc.message if exc.status_code != 500 else FAILED
        return templating.login(csrf=csrf, next_url=next_url, error=message, form_targets=targets)
    if isinstance(outcome, SecondFactorDue):
        return await second_factor_step(request, sessions, outcome, where, next_url, csrf, targets)
    response: Response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, request, cookie_name(request), outcome.credential, tk.settings.console_absolute_lifetime)
    delete_cookie(response, request, csrf_cookie_name(request))
    return response


async def second_factor_step(
    request: Request,
    sessions: ConsoleSessions,
    due: SecondFactorDue,
    where: Attempt,
    next_url: str,
    csrf: str,
    targets: tuple[str, ...],
) -> Response:
    """The password passed and a second factor is due: a pending session (a new id) that opens
    only the code page, or, when none is set up and one is required, the enrolment page."""
    tk = tillkey(request)
    admin_id = due.account.id
    if due.enrolled:
        cookie = await sessions.begin(
            UserType.ADMIN, admin_id, due.amr, pending_otp=True, ip=where.ip, user_agent=where.user_agent
        )
        response: Response = RedirectResponse("/console/login/otp?next=" + quoted(next_url), status_code=303)
        set_cookie(response, request, cookie_name(request), cookie, PENDING_TTL)
        return response
    if await passkey_required(tk.services.factor_parts, due.account):
        # Forced passkey enrolment (TILLKEY_ADMIN_PASSKEY_REQUIRED): no authenticator app for them.
        cookie = await sessions.begin(
            UserType.ADMIN,
            admin_id,
            due.amr,
            pending_otp=True,
            enrolling=True,
            ip=where.ip,
            user_agent=where.user_agent,
        )
        response = RedirectResponse(PASSKEY_ENROLMENT + "?next=" + quoted(next_url), status_code=303)
        set_cookie(response, request, cookie_name(request), cookie, ENROL_TTL)
        return response
    # Forced enrolment: the password opens only the page that sets up the authenticator app.
    try:
        await tk.services.totp.enroll(admin_id)  # a new secret for each sign-in; replaces an unfinished one
    except Conflict:  # activated meanwhile, elsewhere: start again with the code step
        return templating.login(csrf=csrf, next_url=next_url, error=FAILED, form_targets=targets)
    await tk.audit.record_request(
        request,
        audit.TFA_ENROLMENT_STARTED,
        actor_type=int(UserType.ADMIN),
        actor_id=admin_id,
        username=account_name(due.account),
        details={"forced": True},
    )
    cookie = await sessions.begin(
        UserType.ADMIN,
        admin_id,
        due.amr,
        pending_otp=True,
        enrolling=True,
        ip=where.ip,
        user_agent=where.user_agent,
    )
    response = RedirectResponse("/console/login/enrol?next=" + quoted(next_url), status_code=303)
    set_cookie(response, request, cookie_name(request), cookie, ENROL_TTL)
    return response


async def finish_second_factor(
    request: Request, session: ConsoleSession, name: str, second: SecondFactor
) -> Issued[str] | SecondFactorDue:
    """The sign-in's second factor, through the state machine, for a pending session: the
    session's step at /console/login/otp and /console/login/enrol. On success the pending
    session is replaced by a full one (a new id) and the admin's other sessions end."""
    tk = tillkey(request)
    sessions = tk.services.console_sessions

    async def issue(who: SignedIn) -> str:
        cookie = await sessions.complete_otp(session, grant_fingerprint(tk.grants.admin(who.user_id)))
        await sessions.end_others(UserType.ADMIN, who.user_id, cookie)
        return cookie

    pending = Pending(UserType(session.user_type), session.user_id, name, tuple(session.amr))
    return await tk.services.sign_in.resume(pending, second, sign_in_attempt(request), issue)


def quoted(value: str) -> str:
    return quote(value, safe="")


async def gate_closed(
    request: Request,
    sessions: ConsoleSessions,
    session: ConsoleSession,
    exc: TillkeyError,
    next_url: str,
    targets: tuple[str, ...],
) -> Response:
    """The sign-in refused the code step: the half-finished sign-in ends (throttled, locked, the
    account changed) or waits (rate limited, busy)."""
    if isinstance(exc, Unauthenticated):
        await sessions.end(session, reason="second factor refused")
        error = FAILED if isinstance(exc, LoginFailed) else exc.message
        response = templating.login(
            csrf=secrets.token_urlsafe(24), next_url=next_url, error=error, form_targets=targets
        )
    else:
        response = templating.error("Sign-in failed", exc.message, exc.status_code)
        response.headers.update(exc.headers)
    return response


@api.route("GET", "/console/login/otp", resources=[ANONYMOUS], include_in_schema=False, summary="Second factor page")
async def otp_page(request: Request) -> Response:
    tk = tillkey(request)
    next_url = safe_next(request.query_params.get("next"))
    session = tk.services.console_sessions.find(request.cookies.get(cookie_name(request)))
    if session is None or not session.pending_otp:
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    if session.enrolling:
        return RedirectResponse("/console/login/enrol?next=" + quoted(next_url), status_code=303)
    return templating.otp(
        csrf=session.csrf,
        next_url=next_url,
        form_targets=await redirect_targets(tk, next_url),
        passkeys=await has_passkeys(tk, session.user_id),
    )


async def any_admin_passkey(tk: Tillkey) -> bool:
    async with tk.db.session() as s:
        return await passkeys_repo.any_admin(s)


async def has_passkeys(tk: Tillkey, admin_id: int) -> bool:
    return await tk.services.passkeys.has_any(Owner(UserType.ADMIN, admin_id))


@api.route("POST", "/console/login/otp", resources=[ANONYMOUS], include_in_schema=False, summary="Second factor")
async def otp(request: Request) -> Response:
    return await second_step(request, OTP_FIELDS, lambda form, _session: TotpCode(form.get("otp", ""), demanded=True))


async def second_step(
    request: Request,
    fields: frozenset[str],
    factor: Callable[[dict[str, str], ConsoleSession], SecondFactor],
    wrong: str = "The code is wrong or expired.",
) -> Response:
    """A pending session's second factor from a form (a code at /console/login/otp, a passkey's
    answer at /console/login/passkey), through the state machine."""
    tk = tillkey(request)
    try:
        require_https(request)
        form = oauth_params.form(await read_body(request), request.headers.get("content-type"), fields)
    except TillkeyError as exc:
        return templating.error("Sign-in failed", exc.message, exc.status_code)
    next_url = safe_next(form.get("next"))
    sessions = tk.services.console_sessions
    session = sessions.find(request.cookies.get(cookie_name(request)))
    if session is None or not session.pending_otp or session.enrolling:
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    targets = await redirect_targets(tk, next_url)
    passkeys = await has_passkeys(tk, session.user_id)
    if not constant_time_equals(form.get("csrf", ""), session.csrf):
        return templating.otp(
            csrf=session.csrf,
            next_url=next_url,
            error="The form expired; try again.",
            form_targets=targets,
            passkeys=passkeys,
        )
    async with tk.db.session() as s:
        admin = await admin_by_id(s, session.user_id)
    if admin is None or not admin.is_active:
        await sessions.end(session)
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    try:
        outcome = await finish_second_factor(request, session, admin.username, factor(form, session))
    except SecondFactorFailed:
        # A wrong code spends the account's one failure budget, as a wrong password does.
        return templating.otp(
            csrf=session.csrf,
            next_url=next_url,
            error=wrong,
            form_targets=targets,
            passkeys=passkeys,
        )
    except (Unauthenticated, RateLimited, Unavailable) as exc:
        return await gate_closed(request, sessions, session, exc, next_url, targets)
    if isinstance(outcome, SecondFactorDue):  # two-factor auth was reset meanwhile: start again
        await sessions.end(session, reason="second factor gone")
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, request, cookie_name(request), outcome.credential, tk.settings.console_absolute_lifetime)
    delete_cookie(response, request, csrf_cookie_name(request))
    return response


# The console's stylesheet and script, read once: served from this origin so the pages' CSP
# needs no 'unsafe-inline' and no other host.
_STATIC_TYPES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "passkeys.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_STATIC = {
    name: importlib_resources.files("tillkey.console").joinpath("static", name).read_bytes() for name in _STATIC_TYPES
}


@api.route(
    "GET",
    "/console/static/{name}",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="The console's stylesheet and script",
)
async def static(name: str) -> Response:
    body = _STATIC.get(name)
    if body is None:
        raise NotFound("Not found.")
    return Response(body, media_type=_STATIC_TYPES[name], headers={"Cache-Control": "public, max-age=300"})
