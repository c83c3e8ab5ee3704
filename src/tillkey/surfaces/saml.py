"""SAML 2.0 service provider endpoints (issue 15; the protocol is federation/saml.py):

    GET  /saml/{name}/metadata   the SP's signed metadata (entity ID, ACS, certificates)
    POST /saml/{name}/acs        the IdP's answer (HTTP-POST binding)

SP-initiated sign-in starts where OpenID Connect's does: the console's "Sign in with NAME"
(/console/login/idp/{name}) for admins, POST /auth/customer/{name} for customers. The ACS ends an
admin's sign-in in the console (console/idp.py, the one sign-in state machine); for a customer it
hands the response, unread, to the storefront page (`redirect_uri?code&state`), which finishes it
through /auth/customer/{name}/callback exactly as for OpenID Connect. Every refusal is an HTML page
(the browser came by form post) or JSON, with its status, and is audited.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tillkey.access.tree import ANONYMOUS
from tillkey.console import templating
from tillkey.console.idp import SAML_STATE_COOKIE, SAML_STATE_PATH, TITLE, admin_signed_in
from tillkey.console.login import sign_in_attempt
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import NotFound, TillkeyError
from tillkey.federation.oidc import Refused
from tillkey.federation.service import UnknownProvider
from tillkey.store.idps import Provider
from tillkey.web.caching import NO_STORE
from tillkey.web.forms import read_body
from tillkey.web.routing import Api, tillkey

api = Api(tags=["SAML"])
METADATA_TYPE = "application/samlmetadata+xml"


async def _provider(request: Request, name: str) -> Provider:
    found = [p for p in await tillkey(request).services.federation.enabled("admin") if p.name == name]
    found += [p for p in await tillkey(request).services.federation.enabled("customer") if p.name == name]
    if not found or found[0].protocol != "saml":
        raise NotFound("There is no SAML identity provider named %name.", parameters={"name": name[:64]})
    return found[0]


@api.route(
    "GET",
    "/saml/{name}/metadata",
    resources=[ANONYMOUS],
    summary="The SAML service provider's signed metadata for one identity provider",
)
async def metadata(request: Request, name: str) -> Response:
    tk = tillkey(request)
    provider = await _provider(request, name)
    xml = await tk.services.saml_sp.metadata(provider)
    return Response(xml, media_type=METADATA_TYPE, headers={"Cache-Control": "public, max-age=300"})


@api.route(
    "POST",
    "/saml/{name}/acs",
    resources=[ANONYMOUS],
    include_in_schema=False,
    summary="SAML assertion consumer service (HTTP-POST binding)",
)
async def acs(request: Request, name: str) -> Response:
    tk = tillkey(request)
    where, federation = sign_in_attempt(request), tk.services.federation
    try:
        form = await _form(request)
        provider = await _provider(request, name)
    except TillkeyError as exc:
        refusal = Refused(exc.detail or exc.message)
        if isinstance(exc, NotFound):
            refusal = UnknownProvider(name)
        await federation.refused(name[:64], refusal, where)
        return _page(exc.message, 404 if isinstance(exc, NotFound) else 400)
    if provider.actor == "customer":
        try:
            await federation.limits.ip(where.ip)
            handle = await tk.services.saml_sp.park(provider, form)
        except TillkeyError as exc:
            await federation.refused(provider.name, Refused(exc.detail or exc.message), where)
            return _page(exc.message, exc.status_code)
        back = _with_query(provider.redirect_uri, {"code": handle, "state": form.get("RelayState", "")})
        return RedirectResponse(back, status_code=303, headers=NO_STORE)
    try:
        relay = form.get("RelayState", "")
        bound = request.cookies.get(SAML_STATE_COOKIE, "")
        if relay and not (bound and constant_time_equals(bound, relay)):
            # Not this browser's request (login CSRF), or an IdP-initiated response with the IdP's
            # own RelayState: dropped, so only an unsolicited response can go on (where allowed);
            # a solicited one then fails the check of its request's RelayState.
            form = {k: v for k, v in form.items() if k != "RelayState"}
        assertion, resolved = await federation.complete(provider, form, where)
    except TillkeyError as exc:
        return _page(exc.message, exc.status_code)
    return _forget(await admin_signed_in(request, provider, assertion, resolved, where))


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Refused("ACS post is not a form", "The identity provider's answer must be a form post.")
    try:
        text = (await read_body(request)).decode("ascii")
    except UnicodeDecodeError:
        raise Refused("ACS form is not ASCII", "The identity provider's answer could not be read.") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=8)
    except ValueError:
        raise Refused("ACS form has too many fields", "The identity provider's answer could not be read.") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise Refused("ACS form repeats a field", "The identity provider's answer could not be read.")
    return fields


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(message: str, status: int) -> Response:
    return _forget(templating.error(TITLE, message, 401 if status >= 500 else status))


def _forget(response: Response) -> Response:
    response.delete_cookie(SAML_STATE_COOKIE, path=SAML_STATE_PATH, httponly=True, samesite="lax")
    return response
