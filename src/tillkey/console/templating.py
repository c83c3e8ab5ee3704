"""Server-rendered console pages: Jinja2 templates (templates/), every value autoescaped, no
inline script or style, so the Content-Security-Policy can forbid both. Styles and the one small
script come from /console/static/ ('self'). Forms carry a CSRF token.

The sign-in, second-factor and consent pages share the console's look but load no script but
passkeys.js (the sign-in page's passkey autofill, the second-factor page's "Use a passkey"): they
are reached from other sites (the OAuth 2 authorization flow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

BASE_CSP = "default-src 'none'; img-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"
# Signed-in pages: the console's own script (idle warning, role tree) and its calls back home.
CONSOLE_CSP = f"{BASE_CSP}; script-src 'self'; connect-src 'self'; form-action 'self'"

_env = Environment(
    loader=PackageLoader("tillkey.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def csp(form_targets: Iterable[str] = ()) -> str:
    """form-action also governs the redirects after a submission (the trip back to the client), so
    the origins of the redirect URIs the form may end at are listed, and nothing else."""
    origins = ["'self'"]
    for uri in form_targets:
        parts = urlsplit(uri)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
        if origin not in origins and all(c not in origin for c in " ;,'\""):
            origins.append(origin)
    return f"{BASE_CSP}; form-action {' '.join(origins)}"


def render(
    template: str,
    *,
    status: int = 200,
    policy: str | None = None,
    form_targets: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    out = {"Content-Security-Policy": policy or csp(form_targets), "Cache-Control": "no-store", **(headers or {})}
    return HTMLResponse(html, status_code=status, headers=out)


def page(title: str, body: str, *, status: int = 200, form_targets: Iterable[str] = ()) -> HTMLResponse:
    """A plain message page (body is text, escaped)."""
    return render("message.html", status=status, form_targets=form_targets, title=title, message=body)


def login(
    *,
    csrf: str,
    next_url: str,
    error: str | None = None,
    form_targets: Iterable[str] = (),
    notice: str | None = None,
    providers: Iterable[Any] = (),
    passkeys: bool = False,
) -> HTMLResponse:
    """`providers`: the admin identity providers (federation/), one "Sign in with …" link each.
    `passkeys`: some admin has one; the page offers passkey sign-in (autofill) with passkeys.js."""
    return render(
        "login.html",
        status=401 if error else 200,
        title="Sign in",
        csrf=csrf,
        next_url=next_url,
        error=error,
        notice=notice,
        providers=list(providers),
        passkeys=passkeys,
        policy=csp(form_targets) + (PASSKEY_SCRIPT if passkeys else ""),
    )


def continue_to(next_url: str) -> HTMLResponse:
    """Signed in after an external provider's redirect: a page that moves on by itself. The
    session cookie is SameSite=Strict, so it is not sent on a redirect chain a cross-site page
    began; this page's own navigation is same-site, and carries it."""
    return render("continue.html", title="Continue", next_url=next_url)


# Sign-in pages that offer a passkey load passkeys.js (and it calls back home): nothing else.
PASSKEY_SCRIPT = "; script-src 'self'; connect-src 'self'"


def otp(
    *, csrf: str, next_url: str, error: str | None = None, form_targets: Iterable[str] = (), passkeys: bool = False
) -> HTMLResponse:
    """`passkeys`: the admin has one; the page offers it beside the code (passkeys.js)."""
    return render(
        "otp.html",
        status=401 if error else 200,
        title="Two-factor authentication",
        csrf=csrf,
        next_url=next_url,
        error=error,
        passkeys=passkeys,
        policy=csp(form_targets) + (PASSKEY_SCRIPT if passkeys else ""),
    )


def consent(
    *, client_name: str, scopes: Iterable[str], csrf: str, request_fields: Mapping[str, str], redirect_uri: str
) -> HTMLResponse:
    return render(
        "consent.html",
        form_targets=[redirect_uri],
        title="Authorize access",
        client_name=client_name,
        scopes=list(scopes),
        csrf=csrf,
        fields=dict(request_fields),
    )


def error(title: str, message: str, status: int) -> HTMLResponse:
    return page(title, message, status=status)
