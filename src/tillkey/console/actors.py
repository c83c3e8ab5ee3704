"""Who did it, by name: audit records name their actor as (user type, id); the console shows the
admin's username, the customer's email, the integration's, key's or client's name, with a link to
its page. Looked up once per page for the actors on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import api_keys as keys_repo
from tillkey.store import integrations as integrations_repo
from tillkey.store import oauth2 as oauth2_repo

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str
    name: str
    href: str | None


KINDS = {
    UserType.ADMIN: "admin",
    UserType.CUSTOMER: "customer",
    UserType.INTEGRATION: "integration",
    UserType.API_KEY: "API key",
    UserType.OAUTH_CLIENT: "OAuth client",
    UserType.GUEST: "guest",
}


async def names(tk: Tillkey, pairs: Iterable[tuple[int | None, int | None]]) -> dict[tuple[int, int], Actor]:
    wanted = {(t, i) for t, i in pairs if t is not None and i is not None}
    out: dict[tuple[int, int], Actor] = {}
    if not wanted:
        return out
    async with tk.db.session() as s:
        admins = (
            {a.id: a.username for a in await accounts_repo.list_admins(s)}
            if any(t == UserType.ADMIN for t, _ in wanted)
            else {}
        )
        clients = (
            {c.id: c for c in await oauth2_repo.clients(s)}
            if any(t == UserType.OAUTH_CLIENT for t, _ in wanted)
            else {}
        )
        for t, i in sorted(wanted):
            kind = KINDS.get(UserType(t), str(t)) if t in set(UserType) else str(t)
            actor = Actor(kind, f"{kind} #{i} (deleted)", None)
            if t == UserType.ADMIN and i in admins:
                actor = Actor(kind, admins[i], f"/console/admins/{i}")
            elif t == UserType.CUSTOMER:
                customer = await accounts_repo.customer_by_id(s, i)
                if customer is not None:
                    actor = Actor(kind, customer.email, f"/console/customers/{i}")
            elif t == UserType.INTEGRATION:
                integration = await integrations_repo.by_id(s, i)
                if integration is not None:
                    actor = Actor(kind, integration.name, f"/console/integrations/{i}")
            elif t == UserType.API_KEY:
                key = await keys_repo.by_id(s, i)
                if key is not None:
                    actor = Actor(kind, key.title, f"/console/api-keys/{i}")
            elif t == UserType.OAUTH_CLIENT and i in clients:
                actor = Actor(kind, clients[i].name, f"/console/oauth-clients/{clients[i].client_id}")
            elif t == UserType.GUEST:
                actor = Actor(kind, f"guest #{i}", None)
            out[(t, i)] = actor
    return out
