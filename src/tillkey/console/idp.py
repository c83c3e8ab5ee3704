"""Console sign-in with an external identity provider (issue 14): "Sign in with <name>" on
/console/login goes to GET /console/login/idp/{name}, which sends the browser to the provider; the
provider returns it to GET /console/login/idp/{name}/callback, which signs the admin in through the
sign-in state machine (first factor: the provider's assertion; the second-factor policy applies
unless the provider is trusted to assert MFA) and ends in the console, or continues the OAuth 2
authorization request that sent the admin to sign in (`next`).

The flow's `state` is also kept in a cookie of this browser (SameSite=Lax: it must survive the
provider's cross-site redirect back), so a callback another browser started cannot sign this one
in (login CSRF). Every refusal is a page naming what to do, and is audited.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.signin import Attempt, ExternalAssertion, SecondFactorDue, SignedIn, Subject
from tillkey.console import templating
from tillkey.console.login import safe_next, second_factor_step, sign_in_attempt
from tillkey.console.sign_in_session import cookie_name, grant_fingerprint, set_cookie
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import TillkeyError
from tillkey.federation.linking import Resolved
from tillkey.federation.oidc import Assertion, Refused
from tillkey.principal import UserType
from tillkey.security.proxy import is_secure
from tillkey.store.accounts import Admin
from tillkey.store.idps import Provider
from tillkey.web.forms import require_https
from tillkey.web.routing import Api, tillkey

api = Api(tags=["Console"])
STATE_COOKIE = "tk_idp_state"
STATE_PATH = "/console/login/idp/"
SAML_STATE_COOKIE = "tk_saml_state"
SAML_STATE_PATH = "/saml/"
TITLE = "Sign-in failed"


@api.route(
    "GET",
    "/console/login/idp/{name}",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Console sign-in: off to the external identity provider",
)
async def start(request: Request, name: str) -> Response:
    tk = tillkey(request)
    next_url = safe_next(request.query_params.get("next"))
    federation = tk.services.federation
    try:
        require_https(request)
        provider = await federation.provider(name, "admin")
        location = await federation.start(provider, sign_in_attempt(request), {"next": next_url})
    except TillkeyError as exc:
        return templating.error(TITLE, exc.message, exc.status_code if exc.status_code != 500 else 400)
    return to_provider(request, location)


def to_provider(request: Request, location: str, *, page: bool = False) -> Response:
    """Off to the provider, with the flow's state bound to this browser. `page`: after a form
    post, a page that moves on by itself (the console's CSP form-action would stop a redirect
    of the post to another origin)."""
    query = dict(parse_qsl(urlsplit(location).query))
    state = query.get("state", "")
    response: Response = templating.continue_to(location) if page else RedirectResponse(location, status_code=303)
    if "RelayState" in query:  # SAML: bound for the ACS (surfaces/saml.py), not for the callback here
        return bind_relay_state(request, response, query["RelayState"])
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=tillkey(request).settings.federation_flow_ttl,
        path=STATE_PATH,
        httponly=True,
        secure=is_secure(request.scope),
        samesite="lax",
    )
    return response


@api.route(
    "GET",
    "/console/login/idp/{name}/callback",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="Console sign-in: the external identity provider's answer",
)
async def callback(request: Request, name: str) -> Response:
    tk = tillkey(request)
    where, federation = sign_in_attempt(request), tk.services.federation
    params = dict(request.query_params)
    try:
        require_https(request)
        provider = await federation.provider(name, "admin")
        bound = request.cookies.get(STATE_COOKIE, "")
        if not bound or not constant_time_equals(bound, params.get("state", "")):
            exc = Refused("state not bound to this browser (login CSRF?)")
            await federation.refused(provider.name, exc, where)
            raise exc
        assertion, resolved = await federation.complete(provider, params, where)
    except TillkeyError as exc:
        return _forget_state(templating.error(TITLE, exc.message, 401 if exc.status_code == 500 else exc.status_code))
    return _forget_state(await admin_signed_in(request, provider, assertion, resolved, where))


async def admin_signed_in(
    request: Request, provider: Provider, assertion: Assertion, resolved: Resolved, where: Attempt
) -> Response:
    """A provider's verified assertion for an admin (OpenID Connect callback, SAML ACS): the sign-in
    state machine with the assertion as first factor, ending in the console (or the next page)."""
    tk = tillkey(request)
    federation = tk.services.federation
    admin = resolved.account
    if not isinstance(admin, Admin):
        return templating.error(TITLE, "This provider signs in administrators only.", 401)
    next_url = safe_next(assertion.context.get("next"))
    if "link_admin" in assertion.context:  # linked (federation/linking.py link_to); the session is as it was
        return templating.continue_to("/console/account?done=linked")
    sessions = tk.services.console_sessions

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

    mfa = provider.mfa_from_amr and assertion.asserts_mfa
    try:
        outcome = await tk.services.sign_in.begin(
            Subject(UserType.ADMIN, admin.username),
            ExternalAssertion(UserType.ADMIN, admin.id, mfa, assertion.amr),
            where,
            issue,
        )
    except TillkeyError as exc:
        await federation.refused(provider.name, Refused(exc.detail or exc.message), where)
        return templating.error(TITLE, exc.message, 401 if exc.status_code == 500 else exc.status_code)
    if isinstance(outcome, SecondFactorDue):
        step = await second_factor_step(request, sessions, outcome, where, next_url, "", ())
        return _same_site(step)
    await federation.signed_in(assertion, int(UserType.ADMIN), admin.id, where)
    response = templating.continue_to(next_url)
    set_cookie(response, request, cookie_name(request), outcome.credential, tk.settings.console_absolute_lifetime)
    return response


def bind_relay_state(request: Request, response: Response, relay_state: str) -> Response:
    """A SAML flow's RelayState bound to this browser for the ACS. The IdP answers with a
    cross-site form POST, which carries only a SameSite=None cookie (and that only over https;
    on plain http, tests on loopback, the IdP is same-site and Lax is enough)."""
    secure = is_secure(request.scope)
    response.set_cookie(
        SAML_STATE_COOKIE,
        relay_state,
        max_age=tillkey(request).settings.federation_flow_ttl,
        path=SAML_STATE_PATH,
        httponly=True,
        secure=secure,
        samesite="none" if secure else "lax",
    )
    return response


def _same_site(step: Response) -> Response:
    """A redirect of the console (its cookies SameSite=Strict) as a page that moves on by itself,
    so the next request is same-site and carries them (templating.continue_to)."""
    location = step.headers.get("location")
    if step.status_code != 303 or location is None:
        return step
    page = templating.continue_to(location)
    for value in step.headers.getlist("set-cookie"):
        page.headers.append("set-cookie", value)
    return page


def _forget_state(response: Response) -> Response:
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH, httponly=True, samesite="lax")
    return response
