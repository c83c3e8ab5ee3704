"""Server-rendered console pages: plain HTML, every value escaped, no script and no inline style, so
the Content-Security-Policy can forbid both. Forms carry a CSRF token."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

BASE_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"


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


def page(title: str, body: str, *, status: int = 200, form_targets: Iterable[str] = ()) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Tillkey</title></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {"Content-Security-Policy": csp(form_targets), "Cache-Control": "no-store"}
    return HTMLResponse(html, status_code=status, headers=headers)


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())


def _error(message: str | None) -> str:
    return f'<p role="alert">{escape(message)}</p>' if message else ""


def login(*, csrf: str, next_url: str, error: str | None = None, form_targets: Iterable[str] = ()) -> HTMLResponse:
    body = (
        f'{_error(error)}<form method="post" action="/console/login">{_hidden({"csrf": csrf, "next": next_url})}'
        '<p><label>Username <input name="username" autocomplete="username" required></label></p>'
        '<p><label>Password <input name="password" type="password" autocomplete="current-password" required>'
        '</label></p><p><button type="submit">Sign in</button></p></form>'
    )
    return page("Sign in", body, status=401 if error else 200, form_targets=form_targets)


def otp(*, csrf: str, next_url: str, error: str | None = None, form_targets: Iterable[str] = ()) -> HTMLResponse:
    body = (
        f'{_error(error)}<form method="post" action="/console/login/otp">{_hidden({"csrf": csrf, "next": next_url})}'
        "<p><label>Code from your authenticator app (or a recovery code) "
        '<input name="otp" autocomplete="one-time-code" inputmode="numeric" required></label></p>'
        '<p><button type="submit">Verify</button></p></form>'
    )
    return page("Two-factor authentication", body, status=401 if error else 200, form_targets=form_targets)


def consent(
    *, client_name: str, scopes: Iterable[str], csrf: str, request_fields: Mapping[str, str], redirect_uri: str
) -> HTMLResponse:
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    fields = _hidden({"csrf": csrf, **request_fields})
    body = (
        f"<p><strong>{escape(client_name)}</strong> asks to act on your behalf with these scopes:</p><ul>{items}</ul>"
        f'<form method="post" action="/oauth2/consent">{fields}'
        '<button type="submit" name="decision" value="allow">Allow</button> '
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
    )
    return page("Authorize access", body, form_targets=[redirect_uri])


def error(title: str, message: str, status: int) -> HTMLResponse:
    return page(title, f"<p>{escape(message)}</p>", status=status)
