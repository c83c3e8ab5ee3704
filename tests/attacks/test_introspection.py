"""Token introspection as a token scanner (RFC 7662 §2.1): a confidential client that is not a
resource server learns nothing about tokens it was not issued — admin and customer login tokens,
API keys, other clients' access and refresh tokens — and gets the same {"active": false} as for
garbage. A client marked as a resource server (CLI flag, JSON API field, console form) does."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests.oauth2_support import hidden_fields
from tillkey.access.delegation import OPERATOR
from tillkey.principal import UserType

PRODUCTS = "Magento_Catalog::products"
INACTIVE = {"active": False}


def _basic(client_id: str, secret: str | None) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def _client(t: inprocess.InProcess, name: str, *, resource_server: bool = False) -> dict[str, str]:
    done = await t.tk.services.clients.create(
        OPERATOR,
        name=name,
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=[PRODUCTS],
        resource_server=resource_server,
    )
    assert done.secret is not None
    return {"client_id": done.client.client_id, "secret": done.secret}


async def _cc_token(t: inprocess.InProcess, c: dict[str, str]) -> str:
    r = await t.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=_basic(c["client_id"], c["secret"])
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def _introspect(t: inprocess.InProcess, c: dict[str, str], token: str) -> Any:
    r = await t.client.post("/oauth2/introspect", data={"token": token}, headers=_basic(c["client_id"], c["secret"]))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("token_format", ["jwt", "opaque"])
def test_only_resource_servers_and_the_tokens_own_client_see_a_token(tmp_path: Path, token_format: str) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, oauth2_access_token_format=token_format) as t:
            await t.create_admin("boss")
            customer = await t.create_customer("ada@example.com")
            snoop = await _client(t, "snoop")
            other = await _client(t, "other")
            gateway = await _client(t, "gateway", resource_server=True)
            admin_token = await t.admin_token("boss")
            customer_token = await t.customer_token("ada@example.com")
            other_token = await _cc_token(t, other)
            snoop_token = await _cc_token(t, snoop)
            refresh = await t.tk.services.refresh_tokens.start(
                client_id=other["client_id"],
                user_type=int(UserType.CUSTOMER),
                user_id=customer.id,
                scope=("openid",),
                auth_time=t.tk.clock.now_int(),
                amr=("pwd",),
                access_jti=None,
                access_expires_at=None,
            )
            theirs = {
                "admin": admin_token,
                "customer": customer_token,
                "other client": other_token,
                "other client's refresh": refresh.token,
            }
            for what, token in theirs.items():
                assert await _introspect(t, snoop, token) == INACTIVE, what
            assert await _introspect(t, snoop, "garbage") == INACTIVE
            # Its own token: yes.
            own = await _introspect(t, snoop, snoop_token)
            assert own["active"] is True and own["client_id"] == snoop["client_id"]
            # The resource server sees access tokens of everyone...
            for what in ("admin", "customer", "other client"):
                seen = await _introspect(t, gateway, theirs[what])
                assert seen["active"] is True, what
            assert (await _introspect(t, gateway, admin_token))["sub"].startswith("admin:")
            assert (await _introspect(t, gateway, other_token))["client_id"] == other["client_id"]
            # ...but a refresh token only ever to the client holding it.
            assert await _introspect(t, gateway, refresh.token) == INACTIVE
            assert (await _introspect(t, other, refresh.token))["active"] is True

    inprocess.run(body)


def test_the_resource_server_mark_on_every_registration_surface(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("boss")
            auth = t.bearer(await t.admin_token("boss"))
            base = {"name": "gw", "type": "confidential", "grant_types": ["client_credentials"]}
            r = await t.client.post("/tillkey/v1/oauth2/clients", json={**base, "resource_server": True}, headers=auth)
            assert r.status_code == 201 and r.json()["resource_server"] is True, r.text
            r = await t.client.post("/tillkey/v1/oauth2/clients", json=base, headers=auth)
            assert r.status_code == 201 and r.json()["resource_server"] is False
            r = await t.client.post("/tillkey/v1/oauth2/clients", json={**base, "resource_server": "yes"}, headers=auth)
            assert r.status_code == 400
            public = {"name": "spa", "type": "public", "redirect_uris": ["https://spa.example/cb"]}
            clients = "/tillkey/v1/oauth2/clients"
            r = await t.client.post(clients, json={**public, "resource_server": True}, headers=auth)
            assert r.status_code == 400 and "confidential" in r.json()["message"]
            listed = (await t.client.get("/tillkey/v1/oauth2/clients", headers=auth)).json()
            assert sorted(c["resource_server"] for c in listed) == [False, True]

    inprocess.run(body)


def test_the_console_form_marks_a_resource_server(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("boss")
            page = await t.client.get("/console/login")
            r = await t.client.post(
                "/console/login",
                data={**hidden_fields(page.text), "username": "boss", "password": inprocess.ADMIN_PASSWORD},
            )
            assert r.status_code == 303, r.text
            csrf = hidden_fields((await t.client.get("/console/")).text)["csrf"]
            form = {"csrf": csrf, "client_type": "confidential", "grant_type": "client_credentials", "scope": ""}
            for name, mark in (("gateway", {"resource_server": "1"}), ("plain", {})):
                r = await t.client.post("/console/oauth-clients", data={**form, "name": name, **mark})
                assert r.status_code in (200, 303), r.text
            marked = {c.name: c.resource_server for c in await t.tk.services.clients.registered()}
            assert marked == {"gateway": True, "plain": False}
            listing = await t.client.get("/console/oauth-clients")
            assert "resource server" in listing.text

    inprocess.run(body)
