"""Console pages for machine credentials: integrations (OAuth 1.0a, Magento's), API keys and
OAuth 2 clients. Secrets are shown once, on the page that answers their creation, and never
again; every change goes through the same service the CLI and the API use."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from tillkey.console import listing
from tillkey.console.dashboard import trail
from tillkey.console.routing import Console, ConsolePages
from tillkey.errors import NotFound
from tillkey.oauth2.clients import GRANT_TYPES
from tillkey.parsing import ascii_int
from tillkey.principal import UserType
from tillkey.store import api_keys as keys_repo
from tillkey.store import oauth2 as oauth2_repo
from tillkey.store.api_keys import SECRET, TYPES

pages = ConsolePages()
INTEGRATIONS = "Magento_Integration::integrations"
API_KEYS = "Tillkey::api_keys"
CLIENTS = "Tillkey::oauth2_clients"
MAX_ID = 2**31 - 1


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else "—"


def _int_param(c: Console) -> int:
    raw = str(c.request.path_params.get("id", ""))
    value = ascii_int(raw, 12)
    if value is None:
        raise NotFound("Not found.")
    return value


def _once(c: Console, title: str, back: str, values: list[tuple[str, str]], note: str = "") -> Response:
    return c.render("secrets.html", title, values=values, back=back, note=note)


# --- integrations -------------------------------------------------------------------------------


@pages.route("GET", "/console/integrations", resources=[INTEGRATIONS], summary="Integrations")
async def integrations_page(c: Console) -> Response:
    found, pager, q = listing.paginate(
        c.request, await c.tk.services.integrations.list(), lambda i: f"{i['name']} {i['email']} {i['status']}"
    )
    return c.render(
        "integrations.html",
        "Integrations",
        integrations=found,
        tree=list(c.tk.tree.walk()),
        checked=set(),
        pager=pager,
        q=q,
    )


_INTEGRATION_DONE = {
    "bound": "The integration is bound to the certificate: its calls must come with it.",
    "unbound": "The integration is no longer bound to a certificate.",
}


@pages.route("GET", "/console/integrations/{id}", resources=[INTEGRATIONS], summary="An integration")
async def integration_page(c: Console) -> Response:
    integration_id = _int_param(c)
    found = next((i for i in await c.tk.services.integrations.list() if i["id"] == integration_id), None)
    if found is None:
        raise NotFound("The integration doesn't exist.")
    return c.render(
        "integration.html",
        f"Integration: {found['name']}",
        notice=_INTEGRATION_DONE.get(c.request.query_params.get("done", "")),
        i=found,
        trail=await trail(c, UserType.INTEGRATION, integration_id),
    )


@pages.route(
    "POST",
    "/console/integrations",
    resources=[INTEGRATIONS],
    summary="Create an integration",
    delegates="integration",
)
async def create_integration(c: Console) -> Response:
    everything = c.field("all_resources") == "1"
    created = await c.tk.services.integrations.create(
        c.principal,
        name=c.field("name"),
        email=c.field("email"),
        resources=[] if everything else c.fields("resource"),
        all_resources=everything,
        endpoint_url=c.field("endpoint_url") or None,
    )
    return _once(
        c,
        f"Integration {created.name} created",
        "/console/integrations",
        [("Consumer key", created.consumer_key), ("Consumer secret", created.consumer_secret)],
        "Activate it to issue its access token.",
    )


@pages.route(
    "POST",
    "/console/integrations/{id}/activate",
    resources=[INTEGRATIONS],
    summary="Activate an integration",
    delegates="integration_activation",
)
async def activate_integration(c: Console) -> Response:
    done = await c.tk.services.integrations.activate(c.principal, _int_param(c))
    if done.access_token is None:
        note = "The activation handshake was posted to the integration's endpoint."
        values = [("Consumer key", done.consumer_key)]
        return _once(c, f"Integration {done.name}", "/console/integrations", values, note)
    return _once(
        c,
        f"Integration {done.name} activated",
        "/console/integrations",
        [
            ("Consumer key", done.consumer_key),
            ("Access token", done.access_token),
            ("Access token secret", done.access_token_secret or ""),
        ],
    )


def _unbinding(c: Console) -> str | None:
    return "Unbind this integration's certificate? Its calls are accepted from any connection." if _unbind(c) else None


def _unbind(c: Console) -> bool:
    return c.field("unbind") == "1"


@pages.route(
    "POST",
    "/console/integrations/{id}/certificate",
    resources=[INTEGRATIONS],  # as PUT /tillkey/v1/integrations/{id}/certificate
    summary="Bind an integration to a client certificate, or unbind it",
    confirm=_unbinding,
)
async def bind_integration_certificate(c: Console) -> Response:
    integration_id = _int_param(c)
    if integration_id > MAX_ID:  # beyond the column's range: no such integration (as the API's path check)
        raise NotFound("The integration doesn't exist.")
    # An empty Bind is refused by the service (not a PEM certificate): only the Unbind form unbinds.
    pem = None if _unbind(c) else c.field("certificate")
    done = await c.tk.services.integrations.bind_certificate(integration_id, pem, acting=c.principal)
    return c.redirect(f"/console/integrations/{done['id']}?done={'bound' if done['certificate'] else 'unbound'}")


@pages.route(
    "POST",
    "/console/integrations/{id}/revoke",
    resources=[INTEGRATIONS],
    summary="Revoke an integration's tokens",
    confirm="Revoke this integration's tokens? It stops working until reauthorized.",
)
async def revoke_integration(c: Console) -> Response:
    await c.tk.services.integrations.revoke(_int_param(c), acting=c.principal)
    return c.redirect("/console/integrations")


@pages.route(
    "POST",
    "/console/integrations/{id}/deactivate",
    resources=[INTEGRATIONS],
    summary="Deactivate an integration",
    confirm="Deactivate this integration? Its tokens stop working.",
)
async def deactivate_integration(c: Console) -> Response:
    await c.tk.services.integrations.deactivate(_int_param(c), acting=c.principal)
    return c.redirect("/console/integrations")


@pages.route(
    "POST",
    "/console/integrations/{id}/delete",
    resources=[INTEGRATIONS],
    summary="Delete an integration",
    confirm="Delete this integration? Its tokens stop working; this cannot be undone.",
)
async def delete_integration(c: Console) -> Response:
    await c.tk.services.integrations.delete(_int_param(c), acting=c.principal)
    return c.redirect("/console/integrations")


# --- API keys -----------------------------------------------------------------------------------


@pages.route("GET", "/console/api-keys", resources=[API_KEYS], summary="API keys")
async def api_keys_page(c: Console) -> Response:
    q = listing.query(c.request)
    page = listing.page_number(c.request)
    keys, total = await c.tk.services.api_keys.listing(
        type=None, q=q or None, limit=listing.PER_PAGE, offset=(page - 1) * listing.PER_PAGE
    )
    pager = listing.pager(c.request, page, more=page * listing.PER_PAGE < total, total=total)
    rows = [
        {
            "id": k.id,
            "title": k.title,
            "type": k.type,
            "redacted": k.redacted,
            "created": _when(k.created_ms),
            "last_used": _when(k.last_used_ms),
            "revoked": k.revoked_ms is not None,
        }
        for k in keys
    ]
    return c.render("api_keys.html", "API keys", keys=rows, types=sorted(TYPES), pager=pager, q=q)


@pages.route("GET", "/console/api-keys/{id}", resources=[API_KEYS], summary="An API key")
async def api_key_page(c: Console) -> Response:
    key_id = _int_param(c)
    async with c.tk.db.session() as s:
        key = await keys_repo.by_id(s, key_id)
    if key is None or key.deleted_ms is not None:
        raise NotFound("The API key doesn't exist.")
    status = "revoked " + _when(key.revoked_ms) if key.revoked_ms else "live"
    facts = [
        ("Title", key.title),
        ("Type", key.type),
        ("Key", key.redacted),
        ("Created", _when(key.created_ms)),
        ("Last used", _when(key.last_used_ms)),
        ("Status", status),
        ("Resources", ", ".join(key.resources) or ("—" if key.type == SECRET else "publishable: store scope only")),
    ]
    return c.render(
        "detail.html",
        f"API key: {key.title}",
        facts=facts,
        back=("/console/api-keys", "All API keys"),
        trail=await trail(c, UserType.API_KEY, key.id),
        revoke=None if key.revoked_ms else (f"/console/api-keys/{key.id}/revoke", "Revoke", f"Revoke {key.title}?"),
    )


@pages.route("POST", "/console/api-keys", resources=[API_KEYS], summary="Create an API key", delegates="api_key")
async def create_api_key(c: Console) -> Response:
    kind = c.field("type")
    created = await c.tk.services.api_keys.create(c.principal, title=c.field("title"), type=kind)
    note = "A secret key acts with your role's resources, never more." if kind == SECRET else ""
    return _once(c, f"API key {created.key.title} created", "/console/api-keys", [("Key", created.token)], note)


@pages.route(
    "POST",
    "/console/api-keys/{id}/revoke",
    resources=[API_KEYS],
    summary="Revoke an API key",
    confirm="Revoke this API key? Requests with it are refused from now on.",
)
async def revoke_api_key(c: Console) -> Response:
    await c.tk.services.api_keys.revoke(
        _int_param(c), by=c.session.user_id, actor_type=int(UserType.ADMIN), actor_id=c.session.user_id
    )
    return c.redirect("/console/api-keys")


# --- OAuth 2 clients ----------------------------------------------------------------------------


@pages.route("GET", "/console/oauth-clients", resources=[CLIENTS], summary="OAuth 2 clients")
async def clients_page(c: Console) -> Response:
    found, pager, q = listing.paginate(
        c.request, await c.tk.services.clients.registered(), lambda x: f"{x.name} {x.client_id} {' '.join(x.scopes)}"
    )
    return c.render("oauth_clients.html", "OAuth clients", clients=found, grant_types=GRANT_TYPES, pager=pager, q=q)


@pages.route("GET", "/console/oauth-clients/{client_id}", resources=[CLIENTS], summary="An OAuth 2 client")
async def client_page(c: Console) -> Response:
    async with c.tk.db.session() as s:
        client = await oauth2_repo.client_by_client_id(s, str(c.request.path_params.get("client_id", ""))[:64])
    if client is None:
        raise NotFound("The OAuth client doesn't exist.")
    facts = [
        ("Name", client.name),
        ("Client id", client.client_id),
        ("Type", client.client_type),
        ("Redirect URIs", " ".join(client.redirect_uris) or "—"),
        ("Grants", ", ".join(client.grant_types) or "—"),
        ("Scopes", " ".join(client.scopes) or "—"),
        ("First party", "yes" if client.first_party else "no"),
        ("Resource server", "yes" if client.resource_server else "no"),
        ("Token binding", _binding_text(client)),
        ("Token endpoint auth method", client.auth_method),
        ("Client keys (JWKS)", client.jwks_uri or ("registered inline" if client.jwks else "—")),
        ("Pushed authorization requests", "required" if client.require_pushed_authorization_requests else "optional"),
        ("Created", _when(client.created_at * 1000)),
    ]
    back = ("/console/oauth-clients", "All OAuth clients")
    return c.render(
        "detail.html",
        f"OAuth client: {client.name}",
        facts=facts,
        back=back,
        trail=await trail(c, UserType.OAUTH_CLIENT, client.id, client_id=client.client_id),
        revoke=(f"/console/oauth-clients/{client.client_id}/delete", "Delete", f"Delete {client.name}?"),
    )


@pages.route(
    "POST",
    "/console/oauth-clients",
    resources=[CLIENTS],
    summary="Register an OAuth 2 client",
    delegates="oauth_client",
)
async def create_client(c: Console) -> Response:
    uris = [u.strip() for u in c.field("redirect_uris").splitlines() if u.strip()]
    done = await c.tk.services.clients.create(
        c.principal,
        name=c.field("name"),
        client_type=c.field("client_type"),
        redirect_uris=uris,
        grant_types=c.fields("grant_type"),
        scopes=c.field("scope").split(),
        first_party=c.field("first_party") == "1",
        resource_server=c.field("resource_server") == "1",
        dpop_bound_access_tokens=c.field("dpop_bound") == "1",
    )
    values = [("Client id", done.client.client_id)]
    if done.secret is not None:
        values.append(("Client secret", done.secret))
    return _once(c, f"OAuth client {done.client.name} registered", "/console/oauth-clients", values)


@pages.route(
    "POST",
    "/console/oauth-clients/{client_id}/delete",
    resources=[CLIENTS],
    summary="Delete an OAuth 2 client",
    confirm="Delete this client? Its tokens stop working; this cannot be undone.",
)
async def delete_client(c: Console) -> Response:
    await c.tk.services.clients.delete(str(c.request.path_params.get("client_id", ""))[:64], acting=c.principal)
    return c.redirect("/console/oauth-clients")


def _binding_text(client: oauth2_repo.Client) -> str:
    parts = ["DPoP required"] if client.dpop_bound_access_tokens else []
    if client.tls_client_certificate_bound_access_tokens:
        parts.append("client certificate (mTLS) required")
    return ", ".join(parts) or "bearer (DPoP on request)"
