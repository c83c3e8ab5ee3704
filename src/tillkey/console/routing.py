"""Console routes as data, like the API's (web/routing.py): each page declares the resources
it needs, and one guard runs before every handler, in this order:

1. the console session from its cookie (none, pending or ended: to the sign-in page; one in forced
   two-factor enrolment: back to the enrolment page, the only one it may open);
2. on a state-changing request: same-origin (Sec-Fetch-Site / Origin) and the synchronizer CSRF
   token, form-encoded bodies only, bounded in size;
3. the admin's grant as their role holds it now; a change since the session began rotates the id;
4. the idle deadline slides (server-side idle timeout);
5. the access check against the declared resources (403 page, audited, like the API's).

Handlers receive a `Console` context: the session, the Principal, the parsed form, and helpers
to render a page inside the console's frame.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tillkey.access.policy import is_allowed
from tillkey.access.tree import ADMIN_SELF
from tillkey.audit import ACCESS_DENIED, FAILURE
from tillkey.console import templating
from tillkey.console.sign_in_session import (
    ConsoleSession,
    cookie_name,
    grant_fingerprint,
    set_cookie,
)
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import TillkeyError
from tillkey.principal import Principal, UserType
from tillkey.store.accounts import admin_by_id
from tillkey.web.forms import read_body
from tillkey.web.routing import Declared, tillkey

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

log = logging.getLogger("tillkey.console")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 2000
WARN_BEFORE = 60  # seconds before the idle deadline the page offers to stay signed in

# The console's menu: (path, label, resource the page needs). Only what the admin may open shows.
NAV: tuple[tuple[str, str, str], ...] = (
    ("/console/", "Dashboard", ADMIN_SELF),
    ("/console/sessions", "Sessions", ADMIN_SELF),
    ("/console/admins", "Admin users", "Magento_User::acl_users"),
    ("/console/roles", "Roles", "Magento_User::acl_roles"),
    ("/console/customers", "Customers", "Magento_Customer::manage"),
    ("/console/integrations", "Integrations", "Magento_Integration::integrations"),
    ("/console/api-keys", "API keys", "Tillkey::api_keys"),
    ("/console/oauth-clients", "OAuth clients", "Tillkey::oauth2_clients"),
    ("/console/idps", "Identity providers", "Tillkey::idps"),
    ("/console/keys", "Signing keys", "Tillkey::keys"),
    ("/console/audit", "Audit log", "Tillkey::audit"),
)
ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Frame:
    """What every signed-in page shows around its content."""

    username: str
    nav: list[tuple[str, str]]
    csrf: str
    expires_in: int
    warn_before: int
    path: str
    error: str | None = None
    notice: str | None = None


@dataclass(slots=True)
class Console:
    tk: Tillkey
    request: Request
    session: ConsoleSession
    principal: Principal
    username: str
    form: dict[str, list[str]] = field(default_factory=dict)
    # Set when a form was refused and its page is shown again: the message shows above the form,
    # and what was typed (never a password) fills it in again.
    error: str | None = None
    kept: dict[str, list[str]] = field(default_factory=dict)
    shown_path: str | None = None  # the page's own path when a refused form's page is shown again

    @property
    def by(self) -> tuple[int, int]:
        return (int(UserType.ADMIN), self.session.user_id)

    def allowed(self, resource: str) -> bool:
        return is_allowed(self.principal, resource)

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0].strip() if values else default

    def fields(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.get(name, []) if v.strip()]

    def frame(self, *, error: str | None = None, notice: str | None = None) -> Frame:
        error = error or self.error
        now_ms = int(self.tk.clock.now() * 1000)
        return Frame(
            self.username,
            [(href, label) for href, label, res in NAV if self.allowed(res)],
            self.session.csrf,
            max(0, -(-(self.session.expires_ms - now_ms) // 1000)),
            WARN_BEFORE,
            self.shown_path or self.request.url.path,
            error,
            notice,
        )

    def render(
        self,
        template: str,
        title: str,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        return templating.render(
            template,
            status=status,
            policy=templating.CONSOLE_CSP,
            title=title,
            frame=self.frame(error=error, notice=notice),
            **{"kept": Kept(self.kept), **context},
        )

    def failed(self, exc: TillkeyError, back: str) -> HTMLResponse:
        """A service refused the change: say why, in the console's frame (the message is public)."""
        status = exc.status_code if exc.status_code != 500 else 500
        return self.render("failed.html", "That did not work", status=status, error=exc.text, back=back)

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)


class Kept:
    """What the refused form held, for the page that shows it again (templates: kept.v("name"))."""

    def __init__(self, form: dict[str, list[str]]) -> None:
        self.form = form

    def v(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def has(self, name: str, value: str) -> bool:
        return value in self.form.get(name, [])

    def __bool__(self) -> bool:
        return bool(self.form)


Handler = Callable[[Console], Awaitable[Response]]
Confirm = Callable[[Console], str | None]
NOT_KEPT = ("csrf", "confirm")  # and every field named like a password
CONFIRMED = "yes"

# GET handlers by path template, across every ConsolePages: a refused form's page is the GET of the
# same path (/console/roles/{id}), or else of its section (/console/admins for /console/admins/3/role).
_PAGES: dict[str, tuple[Handler, tuple[str, ...]]] = {}


def _kept(form: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: v for k, v in form.items() if k not in NOT_KEPT and "password" not in k}


async def _shown_again(ctx: Console, template: str, exc: TillkeyError) -> Response:
    """The form's own page with the error in place and the input kept; the separate page only when
    there is no such page (or it fails too)."""
    section = "/".join(template.split("/")[:3])
    parts = template.rstrip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(len(parts), 2, -1)]
    key = next((p for p in [*candidates, section + "/"] if p in _PAGES), None)
    # The page is shown only if the admin may open it anyway (its own resources, not the form's).
    if key is not None and all(ctx.allowed(r) for r in _PAGES[key][1]):
        page = _PAGES[key][0]
        ctx.error, ctx.kept = exc.text, _kept(ctx.form)
        # Its own path (the idle warning's "stay signed in" returns there), not the form's action.
        depth = len(key.rstrip("/").split("/"))
        ctx.shown_path = key if key.endswith("/") else "/".join(ctx.request.url.path.split("/")[:depth])
        try:
            response = await page(ctx)
        except TillkeyError:
            pass
        else:
            response.status_code = exc.status_code if 400 <= exc.status_code < 600 else 400
            return response
    return ctx.failed(exc, section)


def confirm_page(ctx: Console, question: str) -> HTMLResponse:
    """A destructive action asked without its confirmation (no script ran, or a crafted post): ask
    on a page of its own; the button re-posts the same form with confirm=yes."""
    fields = [(k, v) for k, values in ctx.form.items() if k not in NOT_KEPT for v in values]
    return ctx.render(
        "confirm.html",
        "Please confirm",
        question=question,
        action=ctx.request.url.path,
        fields=fields,
        back="/".join(ctx.request.url.path.split("/")[:3]),
    )


def _target(request: Request) -> str:
    return request.url.path if request.method == "GET" else "/console/"


def to_sign_in(request: Request, *, ended: bool) -> RedirectResponse:
    query = "?next=" + quote(_target(request), safe="") + (f"&reason={ENDED}" if ended else "")
    return RedirectResponse("/console/login" + query, status_code=303)


def to_enrolment(request: Request) -> RedirectResponse:
    return RedirectResponse("/console/login/enrol?next=" + quote(_target(request), safe=""), status_code=303)


def refused(title: str, message: str, status: int = 403) -> HTMLResponse:
    return templating.render("message.html", status=status, policy=templating.CONSOLE_CSP, title=title, message=message)


def _cross_site(request: Request) -> bool:
    """Browsers say where a request comes from; anything but this origin is refused before the
    token is even looked at (SameSite=Strict already keeps the cookie off such requests)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # "null": browsers send it on every form post under Referrer-Policy: no-referrer (ours),
        # same-origin ones too; the token and the SameSite=Strict cookie decide then.
        return False
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin != own


async def _form(request: Request) -> dict[str, list[str]] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request)
    if not body:
        return {}
    if content_type != FORM_TYPE:
        return None
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None


async def guarded(
    request: Request,
    fn: Handler,
    resources: tuple[str, ...],
    activity: bool,
    template: str = "",
    confirm: Confirm | None = None,
) -> Response:
    tk = tillkey(request)
    sessions = tk.services.console_sessions
    cookie = request.cookies.get(cookie_name(request))
    session = sessions.find(cookie)
    if session is not None and session.enrolling:
        return to_enrolment(request)
    if session is None or session.pending_otp:
        return to_sign_in(request, ended=cookie is not None)
    form: dict[str, list[str]] = {}
    if request.method in STATE_CHANGING:
        try:
            parsed = await _form(request)
        except TillkeyError as exc:
            return refused("Request refused", exc.message, exc.status_code)
        token = (parsed or {}).get("csrf", [""])[0]
        if parsed is None or _cross_site(request) or not constant_time_equals(token, session.csrf):
            tk.audit.record_soon(
                ACCESS_DENIED,
                outcome=FAILURE,
                actor_type=session.user_type,
                actor_id=session.user_id,
                request=request,
                details={
                    "method": request.method,
                    "path": request.url.path[:256],
                    "reason": "console form without a valid CSRF token",
                },
            )
            return refused(
                "Request refused",
                "The form has expired or did not come from this console. Reload the page and try again.",
            )
        form = parsed
    principal = tk.grants.admin(session.user_id, session.amr)
    new_cookie = None
    fingerprint = grant_fingerprint(principal)
    if fingerprint != session.fingerprint:
        new_cookie = await sessions.rotate(session, fingerprint)
        rotated = sessions.find(new_cookie)
        if rotated is None:
            return to_sign_in(request, ended=True)
        session = rotated
    elif activity:
        touched = await sessions.touch(session)
        if touched is None:
            return to_sign_in(request, ended=True)
        session = touched
    async with tk.db.session() as s:
        admin = await admin_by_id(s, session.user_id)
    if admin is None or not admin.is_active:
        await sessions.end(session, reason="account inactive")
        return to_sign_in(request, ended=True)
    ctx = Console(tk, request, session, principal, admin.username, form)
    missing = [r for r in resources if not ctx.allowed(r)]
    if missing:
        tk.audit.record_soon(
            ACCESS_DENIED,
            outcome=FAILURE,
            actor_type=session.user_type,
            actor_id=session.user_id,
            request=request,
            details={
                "method": request.method,
                "path": request.url.path[:256],
                "resources": list(resources),
                "reason": f"missing {missing[0]}",
            },
        )
        response: Response = ctx.render(
            "failed.html",
            "Not allowed",
            status=403,
            back="/console/",
            error=f"Your role does not grant {', '.join(missing)}.",
        )
    elif confirm is not None and ctx.field("confirm") != CONFIRMED and (question := confirm(ctx)):
        response = confirm_page(ctx, question)
    else:
        try:
            response = await fn(ctx)
        except TillkeyError as exc:
            if exc.detail:
                log.info("%s %s -> %s: %s", request.method, request.url.path, exc.status_code, exc.detail)
            if request.method in STATE_CHANGING:
                response = await _shown_again(ctx, template, exc)
            else:
                response = ctx.failed(exc, "/".join(request.url.path.split("/")[:3]))
    if new_cookie is not None:
        set_cookie(response, request, cookie_name(request), new_cookie, tk.settings.console_absolute_lifetime)
    return response


class ConsolePages:
    """A router whose every page states its resources; `declared` lists them beside the API's."""

    def __init__(self) -> None:
        self.router = APIRouter()
        self.declared: list[Declared] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        resources: Sequence[str],
        summary: str,
        activity: bool = True,
        delegates: str | None = None,
        confirm: str | Confirm | None = None,
        page: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """activity=False: the request does not count as the admin's activity (status polls).
        delegates: what the page hands out from the admin's grant (web/routing.Declared).
        confirm: a destructive action's question (or a function of the request giving it, None when
        this request is not destructive): the post must carry confirm=yes (the page's script asks
        in place; without it, a confirmation page asks).
        page: the GET page whose form posts here, shown again with the error when the post is
        refused (default: the nearest GET above this path)."""
        if not resources:
            raise ValueError(f"{method} {path} declares no resources")
        res = tuple(resources)
        ask: Confirm | None = (lambda _c, q=confirm: q) if isinstance(confirm, str) else confirm

        def register(fn: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                return await guarded(request, fn, res, activity, page or path, ask)

            if method == "GET":
                _PAGES[path] = (fn, res)

            self.router.add_api_route(
                path, endpoint, methods=[method], summary=summary, include_in_schema=False, name=fn.__name__
            )
            self.declared.append(Declared(method, path, res, delegates))
            return fn

        return register
