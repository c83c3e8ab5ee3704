"""Customer sign-in with an external identity provider for Magento-style storefronts (issue 14):
the redirect flow Medusa storefronts get at /auth/customer/{provider}, ending the Magento way, in
a customer token (a bare JSON string) and the refresh cookie, as POST
/rest/V1/integration/customer/token does.

    storefront → POST /rest/V1/tillkey/federation/customer/{provider}   → {"location": URL}
    browser    → the provider → back to the storefront's callback page (the provider's redirect URI)
    storefront → POST /rest/V1/tillkey/federation/customer/{provider}/token {"code", "state", "iss"?}
               → "token" + Set-Cookie tillkey_refresh (then POST /rest/V1/integration/token/refresh)

A first sign-in of a provider that provisions (`--provision jit`, a verified email) creates the
customer at once; every other refusal is Magento's 401 and is audited (federation/service.py).
"""

from __future__ import annotations

from fastapi import Request

from tillkey.access.tree import ANONYMOUS
from tillkey.accounts.signin import SignedIn, login_token
from tillkey.errors import InvalidRequest
from tillkey.surfaces.magento import attempt, with_refresh_cookie
from tillkey.surfaces.magento_wire import MagentoJSON, json_body
from tillkey.web.caching import NO_STORE_ONLY as NO_STORE
from tillkey.web.routing import Api, tillkey

api = Api(prefix="/rest/V1", tags=["Magento tokens"])
_CALLBACK = {
    "type": "object",
    "required": ["code", "state"],
    "properties": {k: {"type": "string"} for k in ("code", "state", "iss")},
}


@api.route(
    "POST",
    "/tillkey/federation/customer/{provider}",
    resources=[ANONYMOUS],
    summary="Start a customer's sign-in with an external identity provider: the URL to send the browser to",
)
async def start(request: Request, provider: str) -> MagentoJSON:
    location = await tillkey(request).services.customer_federation.location(provider, attempt(request))
    return MagentoJSON({"location": location}, headers=NO_STORE)


@api.route(
    "POST",
    "/tillkey/federation/customer/{provider}/token",
    resources=[ANONYMOUS],
    body_schema=_CALLBACK,
    summary="Finish it with the provider's code and state: a customer token (bare JSON string) and the refresh cookie",
)
async def token(request: Request, provider: str) -> MagentoJSON:
    where = attempt(request)
    tk = tillkey(request)
    body = await json_body(request, tk.settings.max_body_bytes)
    params: dict[str, str] = {}
    for key in ("code", "state", "iss"):
        if key in body:
            if not isinstance(body[key], str):
                raise InvalidRequest("code, state and iss must be strings.")
            params[key] = body[key]

    async def issue(who: SignedIn) -> MagentoJSON:
        access = await login_token(tk.services.accounts)(who)
        return with_refresh_cookie(
            access, await tk.services.headless.begin(who.user_type, who.user_id, access, who.amr)
        )

    return await tk.services.customer_federation.magento(provider, params, where, issue)
