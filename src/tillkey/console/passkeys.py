"""Passkeys in the console (accounts/passkeys.py has the rules; static/passkeys.js runs the
browser's side).

- /console/2fa lists the admin's passkeys; they rename and remove them (never the last second
  factor: another admin resets that), and register new ones: the script fetches creation options
  (bound to this console session), runs navigator.credentials.create() and posts the answer.
- /console/login/otp offers "Use a passkey" to an admin who has one: request options bound to the
  pending session, and the answer goes through the sign-in machine as the second factor (the same
  budget and lockout as a code).
- /console/login/enrol/passkey: an admin who must use a passkey (TILLKEY_ADMIN_PASSKEY_REQUIRED) and
  has none adds one after the password, as forced TOTP enrolment does; it is the second factor.
- /console/login offers passwordless sign-in once some admin has a passkey: the browser's autofill
  lists discoverable passkeys (conditional mediation); the options are bound to the sign-in page's
  CSRF cookie, user verification is required, and the passkey is the sign-in's first factor (with
  user verification it stands for two: amr "mfa").
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tillkey.access.tree import ADMIN_SELF, ANONYMOUS
from tillkey.accounts.passkeys import Owner
from tillkey.accounts.signin import (
    LoginFailed,
    PasskeyAssertion,
    PasskeyEnrolment,
    PasskeySignIn,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    Subject,
)
from tillkey.console import templating
from tillkey.console.login import (
    FAILED,
    PASSKEY_ENROLMENT,
    finish_second_factor,
    gate_closed,
    has_passkeys,
    quoted,
    redirect_targets,
    safe_next,
    second_factor_step,
    second_step,
    sign_in_attempt,
)
from tillkey.console.routing import Console, ConsolePages
from tillkey.console.sign_in_session import (
    ConsoleSession,
    cookie_name,
    csrf_cookie_name,
    delete_cookie,
    grant_fingerprint,
    set_cookie,
)
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import NotFound, RateLimited, TillkeyError, Unauthenticated, Unavailable
from tillkey.oauth2.rfc6749 import params as oauth_params
from tillkey.parsing import ascii_int
from tillkey.principal import UserType
from tillkey.store.accounts import admin_by_id
from tillkey.web.caching import NO_STORE_ONLY as NO_STORE
from tillkey.web.forms import read_body, require_https
from tillkey.web.routing import Api, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

api = Api(tags=["Console"])
pages = ConsolePages()
PASSKEY_FIELDS = frozenset({"csrf", "next", "ceremony_id", "credential"})
ENROL_FIELDS = PASSKEY_FIELDS | {"name"}


def _binding(session: ConsoleSession) -> str:
    # The session's own secret (its CSRF token): a ceremony started in one session ends in it.
    return f"console:{session.csrf}"


def _when(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def passkey_rows(tk: Tillkey, admin_id: int) -> list[dict[str, Any]]:
    """The admin's passkeys as /console/2fa lists them."""
    found = await tk.services.passkeys.list(Owner(UserType.ADMIN, admin_id))
    return [
        {
            "id": p.id,
            "name": p.name,
            "synced": p.backup_eligible,
            "created": _when(p.created_ms),
            "last_used": _when(p.last_used_ms),
        }
        for p in found
    ]


def _ceremony(ceremony_id: str, options: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"ceremony_id": ceremony_id, "options": options}, headers=NO_STORE)


def _passkey_id(c: Console) -> int:
    raw = str(c.request.path_params.get("passkey_id", ""))
    value = ascii_int(raw, 18)
    if value is None:
        raise NotFound("No such passkey.")
    return value


# --- signed in: /console/2fa --------------------------------------------------------------------


@pages.route("POST", "/console/2fa/passkeys/options", resources=[ADMIN_SELF], summary="Passkey creation options")
async def registration_options(c: Console) -> Response:
    ceremony = await c.tk.services.passkeys.registration_options(
        Owner(UserType.ADMIN, c.session.user_id), _binding(c.session)
    )
    return _ceremony(ceremony.id, ceremony.options)


@pages.route("POST", "/console/2fa/passkeys", resources=[ADMIN_SELF], summary="Register a passkey")
async def register(c: Console) -> Response:
    credential = (c.form.get("credential") or [""])[0]
    owner = Owner(UserType.ADMIN, c.session.user_id)
    await c.tk.services.passkeys.register(
        owner, _binding(c.session), c.field("ceremony_id"), credential, c.field("name")
    )
    return c.redirect("/console/2fa")


@pages.route("POST", "/console/2fa/passkeys/{passkey_id}/rename", resources=[ADMIN_SELF], summary="Rename a passkey")
async def rename(c: Console) -> Response:
    await c.tk.services.passkeys.rename(Owner(UserType.ADMIN, c.session.user_id), _passkey_id(c), c.field("name"))
    return c.redirect("/console/2fa")


@pages.route(
    "POST",
    "/console/2fa/passkeys/{passkey_id}/remove",
    resources=[ADMIN_SELF],
    summary="Remove a passkey",
    confirm="Remove this passkey?",
)
async def remove(c: Console) -> Response:
    await c.tk.services.passkeys.remove_own(Owner(UserType.ADMIN, c.session.user_id), _passkey_id(c))
    return c.redirect("/console/2fa")


# --- the second factor: /console/login/otp ---------------------------------------------------------


async def _form(request: Request, fields: frozenset[str] = PASSKEY_FIELDS) -> dict[str, str] | None:
    try:
        require_https(request)
        return oauth_params.form(await read_body(request), request.headers.get("content-type"), fields)
    except TillkeyError:
        return None


@api.route(
    "POST",
    "/console/login/passkey/options",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Passkey request options for the pending sign-in",
)
async def second_factor_options(request: Request) -> Response:
    tk = tillkey(request)
    form = await _form(request)
    session = tk.services.console_sessions.find(request.cookies.get(cookie_name(request)))
    if form is None or session is None or not session.pending_otp or session.enrolling:
        raise NotFound("No sign-in is waiting for a passkey.")
    if not constant_time_equals(form.get("csrf", ""), session.csrf) or not await has_passkeys(tk, session.user_id):
        raise NotFound("No sign-in is waiting for a passkey.")
    owner = Owner(UserType.ADMIN, session.user_id)
    ceremony = await tk.services.passkeys.authentication_options(owner, _binding(session))
    return _ceremony(ceremony.id, ceremony.options)


@api.route(
    "POST",
    "/console/login/passkey",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Second factor: a passkey's answer",
)
async def second_factor(request: Request) -> Response:
    def factor(form: dict[str, str], session: ConsoleSession) -> PasskeyAssertion:
        return PasskeyAssertion(form.get("ceremony_id", "")[:64], _binding(session), form.get("credential", ""), True)

    return await second_step(request, PASSKEY_FIELDS, factor, "The passkey was not accepted.")


# --- forced enrolment: /console/login/enrol/passkey (TILLKEY_ADMIN_PASSKEY_REQUIRED) -------------


def _enrolling(request: Request) -> ConsoleSession | None:
    session = tillkey(request).services.console_sessions.find(request.cookies.get(cookie_name(request)))
    return session if session is not None and session.enrolling else None


@api.route(
    "GET", PASSKEY_ENROLMENT, resources=[ANONYMOUS], include_in_schema=False, summary="Forced passkey enrolment page"
)
async def enrolment_page(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    session = _enrolling(request)
    if session is None:
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    return _enrolment_page(session, next_url)


def _enrolment_page(session: ConsoleSession, next_url: str, error: str | None = None) -> Response:
    return templating.render(
        "enrol_passkey.html",
        status=401 if error else 200,
        title="Add a passkey",
        csrf=session.csrf,
        next_url=next_url,
        error=error,
        policy=templating.csp() + templating.PASSKEY_SCRIPT,
    )


@api.route(
    "POST",
    PASSKEY_ENROLMENT + "/options",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Passkey creation options for a forced enrolment",
)
async def enrolment_options(request: Request) -> Response:
    form = await _form(request)
    session = _enrolling(request)
    if form is None or session is None or not constant_time_equals(form.get("csrf", ""), session.csrf):
        raise NotFound("No sign-in is waiting for a passkey.")
    owner = Owner(UserType.ADMIN, session.user_id)
    ceremony = await tillkey(request).services.passkeys.registration_options(owner, _binding(session))
    return _ceremony(ceremony.id, ceremony.options)


@api.route(
    "POST",
    PASSKEY_ENROLMENT,
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Forced passkey enrolment: the new passkey is the sign-in's second factor",
)
async def enrol(request: Request) -> Response:
    tk = tillkey(request)
    form = await _form(request, ENROL_FIELDS)
    session = _enrolling(request)
    next_url = safe_next((form or {}).get("next"))
    if form is None or session is None:
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    if not constant_time_equals(form.get("csrf", ""), session.csrf):
        return _enrolment_page(session, next_url, "The form expired; try again.")
    first = PasskeyEnrolment(
        form.get("ceremony_id", "")[:64], _binding(session), form.get("credential", ""), form.get("name", "Passkey")
    )
    async with tk.db.session() as s:
        admin = await admin_by_id(s, session.user_id)
    sessions = tk.services.console_sessions
    if admin is None or not admin.is_active:
        await sessions.end(session, reason="enrolment gone")
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    try:
        outcome = await finish_second_factor(request, session, admin.username, first)
    except SecondFactorFailed:  # spends the account's one failure budget, as a wrong first code does
        return _enrolment_page(session, next_url, "The passkey could not be added. Try again.")
    except (Unauthenticated, RateLimited, Unavailable) as exc:
        return await gate_closed(request, sessions, session, exc, next_url, await redirect_targets(tk, next_url))
    if isinstance(outcome, SecondFactorDue):  # a passkey was added elsewhere meanwhile: sign in again
        await sessions.end(session, reason="enrolment gone")
        return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, request, cookie_name(request), outcome.credential, tk.settings.console_absolute_lifetime)
    delete_cookie(response, request, csrf_cookie_name(request))
    return response


# --- passwordless: /console/login ------------------------------------------------------------------


def _login_binding(request: Request, form: dict[str, str]) -> str | None:
    """The sign-in page's double-submit CSRF cookie, checked: the ceremony belongs to this browser."""
    expected = request.cookies.get(csrf_cookie_name(request), "")
    if not expected or not constant_time_equals(form.get("csrf", ""), expected):
        return None
    return f"login:{expected}"


@api.route(
    "POST",
    "/console/login/passkey/discover/options",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Passkey request options for a passwordless sign-in",
)
async def passwordless_options(request: Request) -> Response:
    tk = tillkey(request)
    form = await _form(request)
    binding = None if form is None else _login_binding(request, form)
    if binding is None:
        raise NotFound("The sign-in page expired; reload it.")
    # Unauthenticated: limited like a sign-in attempt, per client address.
    await tk.ratelimiter.hit(tk.login_ip_limit, "login-ip", sign_in_attempt(request).ip)
    ceremony = await tk.services.passkeys.authentication_options(Owner(UserType.ADMIN, 0), binding, passwordless=True)
    return _ceremony(ceremony.id, ceremony.options)


@api.route(
    "POST",
    "/console/login/passkey/discover",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Passwordless sign-in with a passkey",
)
async def passwordless(request: Request) -> Response:
    tk = tillkey(request)
    form = await _form(request)
    next_url = safe_next((form or {}).get("next"))
    targets = await redirect_targets(tk, next_url)
    binding = None if form is None else _login_binding(request, form)
    csrf = request.cookies.get(csrf_cookie_name(request)) or secrets.token_urlsafe(24)
    if form is None or binding is None:
        return _login_again(request, csrf, next_url, "The form expired; please sign in again.", targets)
    first = PasskeySignIn(form.get("ceremony_id", "")[:64], binding, form.get("credential", ""))
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
        subject = Subject(UserType.ADMIN, await first.claimed_name(tk.services.factor_parts))
        outcome = await tk.services.sign_in.begin(subject, first, where, issue)
    except (LoginFailed, RateLimited, Unavailable) as exc:
        return _login_again(request, csrf, next_url, FAILED if isinstance(exc, LoginFailed) else exc.message, targets)
    except TillkeyError as exc:  # no role, …
        return _login_again(request, csrf, next_url, exc.message if exc.status_code != 500 else FAILED, targets)
    if isinstance(outcome, SecondFactorDue):  # (a passkey with user verification never leaves one due)
        return await second_factor_step(request, sessions, outcome, where, next_url, csrf, targets)
    response: Response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, request, cookie_name(request), outcome.credential, tk.settings.console_absolute_lifetime)
    delete_cookie(response, request, csrf_cookie_name(request))
    return response


def _login_again(request: Request, csrf: str, next_url: str, error: str, targets: tuple[str, ...]) -> Response:
    response = templating.login(csrf=csrf, next_url=next_url, error=error, form_targets=targets)
    set_cookie(response, request, csrf_cookie_name(request), csrf, 3600)
    return response
