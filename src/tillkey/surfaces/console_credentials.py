"""Console pages for machine credentials: integrations (OAuth 1.0a, Magento's), API keys and
OAuth 2 clients. Secrets are shown once, on the page that answers their creation, and never
again; every change goes through the same service the CLI and the API use."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from tillkey.accounts.api_keys import ApiKeys
from tillkey.accounts.integrations import Integrations
from tillkey.console.routing import Console, ConsolePages
from tillkey.errors import NotFound
from tillkey.oauth2.clients import GRANT_TYPES, Clients
from tillkey.principal import UserType
from tillkey.store.api_keys import SECRET, TYPES

pages = ConsolePages()
INTEGRATIONS = "Magento_Integration::integrations"
API_KEYS = "Tillkey::api_keys"
CLIENTS = "Tillkey::oauth2_clients"


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else "—"


def _int_param(c: Console) -> int:
    raw = str(c.request.path_params.get("id", ""))
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound("Not found.")
    return int(raw)


def _once(c: Console, title: str, back: str, values: list[tuple[str, str]], note: str = "") -> Response:
    return c.render("secrets.html", title, values=values, back=back, note=note)


# --- integrations -------------------------------------------------------------------------------


@pages.route("GET", "/console/integrations", resources=[INTEGRATIONS], summary="Integrations")
async def integrations_page(c: Console) -> Response:
    found = await Integrations(c.tk).list()
    return c.render("integrations.html", "Integrations", integrations=found, tree=list(c.tk.tree.walk()), checked=set())


@pages.route(
    "POST", "/console/integrations", resources=[INTEGRATIONS], summary="Create an integration",
    delegates="integration",
)  # fmt: skip
async def create_integration(c: Console) -> Response:
    everything = c.field("all_resources") == "1"
    created = await Integrations(c.tk).create(
        c.principal, name=c.field("name"), email=c.field("email"), resources=[] if everything else c.fields("resource"),
        all_resources=everything, endpoint_url=c.field("endpoint_url") or None,
    )  # fmt: skip
    return _once(
        c, f"Integration {created.name} created", "/console/integrations",
        [("Consumer key", created.consumer_key), ("Consumer secret", created.consumer_secret)],
        "Activate it to issue its access token.",
    )  # fmt: skip


@pages.route(
    "POST", "/console/integrations/{id}/activate", resources=[INTEGRATIONS], summary="Activate an integration",
    delegates="integration_activation",
)  # fmt: skip
async def activate_integration(c: Console) -> Response:
    done = await Integrations(c.tk).activate(c.principal, _int_param(c))
    if done.access_token is None:
        note = "The activation handshake was posted to the integration's endpoint."
        values = [("Consumer key", done.consumer_key)]
        return _once(c, f"Integration {done.name}", "/console/integrations", values, note)
    return _once(
        c, f"Integration {done.name} activated", "/console/integrations",
        [("Consumer key", done.consumer_key), ("Access token", done.access_token),
         ("Access token secret", done.access_token_secret or "")],
    )  # fmt: skip


@pages.route(
    "POST", "/console/integrations/{id}/revoke", resources=[INTEGRATIONS], summary="Revoke an integration's tokens",
    confirm="Revoke this integration's tokens? It stops working until reauthorized.",
)  # fmt: skip
async def revoke_integration(c: Console) -> Response:
    await Integrations(c.tk).revoke(_int_param(c))
    return c.redirect("/console/integrations")


@pages.route(
    "POST", "/console/integrations/{id}/deactivate", resources=[INTEGRATIONS], summary="Deactivate an integration",
    confirm="Deactivate this integration? Its tokens stop working.",
)  # fmt: skip
async def deactivate_integration(c: Console) -> Response:
    await Integrations(c.tk).deactivate(_int_param(c))
    return c.redirect("/console/integrations")


@pages.route(
    "POST", "/console/integrations/{id}/delete", resources=[INTEGRATIONS], summary="Delete an integration",
    confirm="Delete this integration? Its tokens stop working; this cannot be undone.",
)  # fmt: skip
async def delete_integration(c: Console) -> Response:
    await Integrations(c.tk).delete(_int_param(c))
    return c.redirect("/console/integrations")


# --- API keys -----------------------------------------------------------------------------------


@pages.route("GET", "/console/api-keys", resources=[API_KEYS], summary="API keys")
async def api_keys_page(c: Console) -> Response:
    keys, _total = await ApiKeys(c.tk).listing(type=None, q=None, limit=200, offset=0)
    rows = [
        {"id": k.id, "title": k.title, "type": k.type, "redacted": k.redacted, "created": _when(k.created_ms),
         "last_used": _when(k.last_used_ms), "revoked": k.revoked_ms is not None}
        for k in keys
    ]  # fmt: skip
    return c.render("api_keys.html", "API keys", keys=rows, types=sorted(TYPES))


@pages.route("POST", "/console/api-keys", resources=[API_KEYS], summary="Create an API key", delegates="api_key")
async def create_api_key(c: Console) -> Response:
    kind = c.field("type")
    created = await ApiKeys(c.tk).create(c.principal, title=c.field("title"), type=kind)
    note = "A secret key acts with your role's resources, never more." if kind == SECRET else ""
    return _once(c, f"API key {created.key.title} created", "/console/api-keys", [("Key", created.token)], note)


@pages.route(
    "POST", "/console/api-keys/{id}/revoke", resources=[API_KEYS], summary="Revoke an API key",
    confirm="Revoke this API key? Requests with it are refused from now on.",
)  # fmt: skip
async def revoke_api_key(c: Console) -> Response:
    await ApiKeys(c.tk).revoke(
        _int_param(c), by=c.session.user_id, actor_type=int(UserType.ADMIN), actor_id=c.session.user_id
    )
    return c.redirect("/console/api-keys")


# --- OAuth 2 clients ----------------------------------------------------------------------------


@pages.route("GET", "/console/oauth-clients", resources=[CLIENTS], summary="OAuth 2 clients")
async def clients_page(c: Console) -> Response:
    found = await Clients(c.tk).registered()
    return c.render("oauth_clients.html", "OAuth clients", clients=found, grant_types=GRANT_TYPES)


@pages.route(
    "POST", "/console/oauth-clients", resources=[CLIENTS], summary="Register an OAuth 2 client",
    delegates="oauth_client",
)  # fmt: skip
async def create_client(c: Console) -> Response:
    uris = [u.strip() for u in c.field("redirect_uris").splitlines() if u.strip()]
    done = await Clients(c.tk).create(
        c.principal, name=c.field("name"), client_type=c.field("client_type"), redirect_uris=uris,
        grant_types=c.fields("grant_type"), scopes=c.field("scope").split(), first_party=c.field("first_party") == "1",
        resource_server=c.field("resource_server") == "1",
    )  # fmt: skip
    values = [("Client id", done.client.client_id)]
    if done.secret is not None:
        values.append(("Client secret", done.secret))
    return _once(c, f"OAuth client {done.client.name} registered", "/console/oauth-clients", values)


@pages.route(
    "POST", "/console/oauth-clients/{client_id}/delete", resources=[CLIENTS], summary="Delete an OAuth 2 client",
    confirm="Delete this client? Its tokens stop working; this cannot be undone.",
)  # fmt: skip
async def delete_client(c: Console) -> Response:
    await Clients(c.tk).delete(str(c.request.path_params.get("client_id", ""))[:64])
    return c.redirect("/console/oauth-clients")
