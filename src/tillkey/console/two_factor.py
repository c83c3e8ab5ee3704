"""Setting up two-factor auth (TOTP) in the console.

Forced enrolment (TILLKEY_ADMIN_2FA=required, an admin without TOTP): the right password at
/console/login gives a pending session (sign_in_session.py ENROL_TTL) that opens only /console/login/enrol:
the QR code (inline SVG: no script), the secret as text for typing into an app, and a field for the
first code. The right code activates TOTP, completes the sign-in under a new session id and shows
the recovery codes once, with the way on to `next` (the console, or the /oauth2/authorize request
that sent the admin). The first code is the sign-in's second factor (accounts/signin/
EnrolmentCode): a wrong one spends the account's failure budget, as at /console/login/otp.

Signed in without TOTP (optional, off): /console/2fa sets it up the same way, linked from the
sessions page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tillkey import audit
from tillkey.access.tree import ADMIN_SELF, ANONYMOUS
from tillkey.accounts.signin import EnrolmentCode, SecondFactorDue, SecondFactorFailed
from tillkey.accounts.signin.factors import passkey_required
from tillkey.accounts.totp import Enrolment, qr_svg
from tillkey.console import templating as html
from tillkey.console.login import (
    PASSKEY_ENROLMENT,
    finish_second_factor,
    gate_closed,
    quoted,
    redirect_targets,
    safe_next,
)
from tillkey.console.passkeys import passkey_rows
from tillkey.console.routing import Console, ConsolePages
from tillkey.console.sign_in_session import (
    cookie_name,
    csrf_cookie_name,
    delete_cookie,
    set_cookie,
)
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import InvalidRequest, RateLimited, TillkeyError, Unauthenticated, Unavailable
from tillkey.oauth2.rfc6749 import params as oauth_params
from tillkey.principal import UserType
from tillkey.store.accounts import admin_by_id
from tillkey.web.forms import read_body, require_https
from tillkey.web.routing import Api, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

api = Api(tags=["Console"])
pages = ConsolePages()
ENROL_FIELDS = frozenset({"csrf", "next", "otp"})
WRONG_CODE = "The code is wrong or expired. Check the time on your device and enter the code it shows now."


def _qr(enrolment: Enrolment) -> Markup:
    # Markup: the SVG is path geometry qrcode drew from our own otpauth URI; no text of anyone's.
    return Markup(qr_svg(enrolment.uri))  # noqa: S704


def _enrol_page(enrolment: Enrolment, *, csrf: str, next_url: str, error: str | None = None) -> HTMLResponse:
    return html.render(
        "enrol.html",
        status=401 if error else 200,
        title="Set up two-factor authentication",
        csrf=csrf,
        next_url=next_url,
        qr=_qr(enrolment),
        secret=enrolment.secret,
        error=error,
    )


async def _passkey_enrolment(tk: Tillkey, admin_id: int) -> bool:
    """Is this admin's forced enrolment a passkey's (TILLKEY_ADMIN_PASSKEY_REQUIRED)?"""
    async with tk.db.session() as s:
        admin = await admin_by_id(s, admin_id)
    return admin is not None and await passkey_required(tk.services.factor_parts, admin)


def _to_login(next_url: str) -> RedirectResponse:
    return RedirectResponse("/console/login?next=" + quoted(next_url), status_code=303)


@api.route(
    "GET",
    "/console/login/enrol",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Forced two-factor enrolment page",
)
async def enrol_page(request: Request) -> Response:
    tk = tillkey(request)
    next_url = safe_next(request.query_params.get("next"))
    sessions = tk.services.console_sessions
    session = sessions.find(request.cookies.get(cookie_name(request)))
    if session is None or not session.enrolling:
        return _to_login(next_url)
    if await _passkey_enrolment(tk, session.user_id):
        return RedirectResponse(PASSKEY_ENROLMENT + "?next=" + quoted(next_url), status_code=303)
    enrolment = await tk.services.totp.pending(session.user_id)
    if enrolment is None:  # activated or reset meanwhile: sign in again
        await sessions.end(session, reason="enrolment gone")
        return _to_login(next_url)
    return _enrol_page(enrolment, csrf=session.csrf, next_url=next_url)


@api.route(
    "POST",
    "/console/login/enrol",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Forced two-factor enrolment: the first code",
)
async def enrol(request: Request) -> Response:
    tk = tillkey(request)
    try:
        require_https(request)
        form = oauth_params.form(await read_body(request), request.headers.get("content-type"), ENROL_FIELDS)
    except TillkeyError as exc:
        return html.error("Sign-in failed", exc.message, exc.status_code)
    next_url = safe_next(form.get("next"))
    sessions = tk.services.console_sessions
    session = sessions.find(request.cookies.get(cookie_name(request)))
    if session is None or not session.enrolling:
        return _to_login(next_url)
    totp = tk.services.totp
    enrolment = await totp.pending(session.user_id)
    async with tk.db.session() as s:
        admin = await admin_by_id(s, session.user_id)
    if enrolment is None or admin is None or not admin.is_active:
        await sessions.end(session, reason="enrolment gone")
        return _to_login(next_url)
    if not constant_time_equals(form.get("csrf", ""), session.csrf):
        return _enrol_page(enrolment, csrf=session.csrf, next_url=next_url, error="The form expired; try again.")
    first_code = EnrolmentCode(form.get("otp", ""))
    try:
        outcome = await finish_second_factor(request, session, admin.username, first_code)
    except SecondFactorFailed:
        # As a wrong code at /console/login/otp: it spends the account's one failure budget.
        return _enrol_page(enrolment, csrf=session.csrf, next_url=next_url, error=WRONG_CODE)
    except (Unauthenticated, RateLimited, Unavailable) as exc:
        return await gate_closed(request, sessions, session, exc, next_url, await redirect_targets(tk, next_url))
    if isinstance(outcome, SecondFactorDue):  # the enrolment was reset or finished elsewhere meanwhile
        await sessions.end(session, reason="enrolment gone")
        return _to_login(next_url)
    cookie, codes = outcome.credential, first_code.recovery_codes
    response = html.render(
        "enrolled.html",
        title="Two-factor authentication is on",
        codes=codes,
        next_url=next_url,
        policy=html.csp(),
    )
    set_cookie(response, request, cookie_name(request), cookie, tk.settings.console_absolute_lifetime)
    delete_cookie(response, request, csrf_cookie_name(request))
    return response


# --- signed in, without two-factor auth yet (optional, off) ------------------------------------------


@pages.route("GET", "/console/2fa", resources=[ADMIN_SELF], summary="Two-factor authentication")
async def tfa_page(c: Console) -> Response:
    totp = c.tk.services.totp
    status = await totp.status(c.session.user_id)
    enrolment = None if status.active else await totp.pending(c.session.user_id)
    return c.render(
        "tfa.html",
        "Two-factor authentication",
        tfa=status,
        mode=c.tk.settings.admin_2fa,
        passkeys=await passkey_rows(c.tk, c.session.user_id),
        qr=_qr(enrolment) if enrolment else None,
        secret=enrolment.secret if enrolment else None,
    )


@pages.route("POST", "/console/2fa/enrol", resources=[ADMIN_SELF], summary="Start two-factor set-up")
async def tfa_enrol(c: Console) -> Response:
    await c.tk.services.totp.enroll(c.session.user_id)  # Conflict when active: the guard renders it
    await c.tk.audit.record_request(
        c.request,
        audit.TFA_ENROLMENT_STARTED,
        actor_type=int(UserType.ADMIN),
        actor_id=c.session.user_id,
        username=c.username,
        details={"forced": False},
    )
    return c.redirect("/console/2fa")


@pages.route("POST", "/console/2fa/activate", resources=[ADMIN_SELF], summary="Activate two-factor auth")
async def tfa_activate(c: Console) -> Response:
    totp = c.tk.services.totp
    try:
        codes = await totp.activate(c.session.user_id, c.field("otp"))
    except InvalidRequest as exc:
        enrolment = await totp.pending(c.session.user_id)
        return c.render(
            "tfa.html",
            "Two-factor authentication",
            status=400,
            error=WRONG_CODE if enrolment else exc.message,
            passkeys=await passkey_rows(c.tk, c.session.user_id),
            tfa=await totp.status(c.session.user_id),
            mode=c.tk.settings.admin_2fa,
            qr=_qr(enrolment) if enrolment else None,
            secret=enrolment.secret if enrolment else None,
        )
    return c.render(
        "secrets.html",
        "Two-factor authentication is on",
        back="/console/sessions",
        values=[(f"Recovery code {i}", code) for i, code in enumerate(codes, 1)],
        note="Each recovery code signs you in once in place of a code from the app, if you lose the device.",
    )
