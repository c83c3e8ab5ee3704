"""Delegation attacks (issue 12): nobody hands out more than the credential they act with holds.

Every path that creates, assigns or renews a credential or a grant asks one rule,
access/delegation.py. Here each reproduced attack is tried again over HTTP (in-process harness),
with the variants an attacker tries next: the other surfaces (console forms, the JSON APIs, the
Medusa admin API) and the other credential kinds (admin token, console session, secret API key,
OAuth 2 token scoped narrower than its user).

The last part enumerates every route that could mint or assign (from /openapi.json and the
console's route table) and fails when one is neither declared delegating, with a behavioural case
here proving a low-grant caller is refused a bigger grant, nor allow-listed with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from typer.testing import CliRunner

from tests import inprocess
from tests.inprocess import InProcess
from tillkey.access.delegation import OPERATOR, OWN_FACTOR
from tillkey.access.tree import ALL
from tillkey.app import create_app
from tillkey.cli import app as cli_app
from tillkey.federation.providers import Changes
from tillkey.runtime import Tillkey
from tillkey.settings import Settings
from tillkey.store import accounts as repo
from tillkey.web.routing import Declared

CLIENTS = "Tillkey::oauth2_clients"
API_KEYS = "Tillkey::api_keys"
INTEGRATIONS = "Magento_Integration::integrations"
USERS = "Magento_User::acl_users"
ROLES = "Magento_User::acl_roles"
TFA = "Magento_TwoFactorAuth::tfa"
PRODUCTS = "Magento_Catalog::products"
CATALOG = "Magento_Catalog::catalog"
ADMINISTRATORS = "Administrators"

Body = Callable[[InProcess], Awaitable[None]]


def _run(tmp_path: Path, body: Body) -> None:
    async def main() -> None:
        async with inprocess.running(tmp_path) as t:
            await body(t)

    inprocess.run(main)


def _refused(r: httpx.Response, *missing: str) -> None:
    """A 403 that names what the caller lacks (never a 400 or a 500, never a success)."""
    assert r.status_code == 403, r.text
    for resource in missing:
        assert resource in r.text, r.text


async def _client_names(t: InProcess) -> set[str]:
    return {c.name for c in await t.tk.services.clients.registered()}


async def _integrations(t: InProcess) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in await t.tk.services.integrations.list()}


async def _key_count(t: InProcess) -> int:
    return (await t.tk.services.api_keys.listing(type=None, q=None, limit=1000, offset=0))[1]


async def _role_of(t: InProcess, username: str) -> str | None:
    async with t.tk.db.session() as s:
        admin = await repo.admin_by_username(s, username)
        assert admin is not None
        roles = {r.id: r.name for r in await repo.list_roles(s)}
    return roles.get(admin.role_id or -1)


async def _role(t: InProcess, name: str) -> repo.Role:
    async with t.tk.db.session() as s:
        found = await repo.role_by_name(s, name)
    assert found is not None
    return found


# --- behavioural cases, one per delegating route (the enumeration below requires each) ----------

CASES: dict[tuple[str, str], Body] = {}


def case(method: str, path: str) -> Callable[[Body], Body]:
    def register(fn: Body) -> Body:
        CASES[method, path] = fn
        return fn

    return register


@case("POST", "/console/oauth-clients")
async def _console_client_beyond_grant(t: InProcess) -> None:
    """The reproduced attack: an admin holding only Tillkey::oauth2_clients registers, through
    the console form, a client scoped Magento_Backend::all."""
    admin = await t.create_admin("ocl", resources=[CLIENTS])
    console = await t.console_session(admin.id)
    form = {"name": "escalate", "client_type": "confidential", "grant_type": "client_credentials"}
    for scope in (ALL, PRODUCTS, f"openid {CATALOG}"):
        _refused(await console.post("/console/oauth-clients", {**form, "scope": scope}))
    assert "escalate" not in await _client_names(t)
    # within the admin's grant it works: the rule refuses only what they lack
    r = await console.post("/console/oauth-clients", {**form, "scope": f"openid {CLIENTS}"})
    assert r.status_code == 200, r.text
    assert "escalate" in await _client_names(t)


@case("POST", "/tillkey/v1/idps")
async def _api_idp_role_map_beyond_grant(t: InProcess) -> None:
    """A provider's role map hands roles to whoever the provider vouches for: an admin holding
    Tillkey::idps cannot map a group to a role beyond their own grant (Administrators)."""
    await t.create_role([PRODUCTS], name="catalog-only")
    await t.create_admin("idp", resources=["Tillkey::idps", PRODUCTS])
    token = await t.admin_token("idp")
    body = {"name": "corp", "issuer": "https://login.example.com", "client_id": "c", "actor": "admin"}
    for mapped in ({"role_map": {"staff": "Administrators"}}, {"default_role": "Administrators"}):
        _refused(await t.client.post("/tillkey/v1/idps", json={**body, **mapped}, headers=t.bearer(token)), ALL)
    assert (await t.client.get("/tillkey/v1/idps", headers=t.bearer(token))).json()["providers"] == []
    r = await t.client.post(
        "/tillkey/v1/idps", json={**body, "role_map": {"staff": "catalog-only"}}, headers=t.bearer(token)
    )
    assert r.status_code == 201, r.text
    assert r.json()["role_map"] == {"staff": "catalog-only"} and "client_secret" not in r.json()


@case("PATCH", "/tillkey/v1/idps/{name}")
async def _api_idp_role_map_update_beyond_grant(t: InProcess) -> None:
    """Changing a provider's role map is handing out its roles again: not beyond one's own grant,
    and not over a map that hands out more than one holds (as assigning a role needs both)."""
    await t.create_role([PRODUCTS], name="catalog-only")
    await t.create_admin("idp", resources=["Tillkey::idps", PRODUCTS])
    token = await t.admin_token("idp")
    body = {"name": "corp", "issuer": "https://login.example.com", "client_id": "c", "actor": "admin"}
    r = await t.client.post(
        "/tillkey/v1/idps", json={**body, "role_map": {"staff": "catalog-only"}}, headers=t.bearer(token)
    )
    assert r.status_code == 201, r.text
    for mapped in ({"role_map": {"staff": "Administrators"}}, {"default_role": "Administrators"}):
        _refused(await t.client.patch("/tillkey/v1/idps/corp", json=mapped, headers=t.bearer(token)), ALL)
    shown = (await t.client.get("/tillkey/v1/idps/corp", headers=t.bearer(token))).json()
    assert shown["role_map"] == {"staff": "catalog-only"} and shown["default_role"] is None
    # A map the operator widened is out of this admin's reach, even to narrow it.
    await t.tk.services.identity_providers.update(OPERATOR, "corp", Changes(default_role=ADMINISTRATORS))
    _refused(await t.client.patch("/tillkey/v1/idps/corp", json={"default_role": ""}, headers=t.bearer(token)), ALL)


@case("POST", "/tillkey/v1/oauth2/clients")
async def _api_client_beyond_grant(t: InProcess) -> None:
    await t.create_admin("ocl", resources=[CLIENTS])
    body = {"name": "escalate", "type": "confidential", "grant_types": ["client_credentials"]}
    token = await t.admin_token("ocl")
    _refused(
        await t.client.post("/tillkey/v1/oauth2/clients", json={**body, "scopes": [ALL]}, headers=t.bearer(token)), ALL
    )
    # a secret key of an Administrator, holding only the clients resource
    root = await t.create_admin("root")
    key = await t.secret_key(root.id, [CLIENTS])
    _refused(
        await t.client.post("/tillkey/v1/oauth2/clients", json={**body, "scopes": [PRODUCTS]}, headers=t.basic(key))
    )
    # an OAuth token of that Administrator, scoped to the clients resource only
    oauth = await t.oauth_token(root.id, [CLIENTS])
    _refused(await t.client.post("/tillkey/v1/oauth2/clients", json={**body, "scopes": [ALL]}, headers=t.bearer(oauth)))
    assert "escalate" not in await _client_names(t)
    # within the caller's grant it works, and the client holds exactly that
    ok = await t.client.post("/tillkey/v1/oauth2/clients", json={**body, "scopes": [CLIENTS]}, headers=t.bearer(token))
    assert ok.status_code == 201, ok.text
    assert ok.json()["scopes"] == [CLIENTS]


@case("POST", "/admin/api-keys")
async def _medusa_key_beyond_grant(t: InProcess) -> None:
    """The reproduced attack: a secret key (or an OAuth token) holding only Tillkey::api_keys
    mints a secret key with its creator's full grant."""
    root = await t.create_admin("root")
    await t.create_admin("keeper", resources=[API_KEYS])
    medusa = await t.client.post(
        "/auth/user/emailpass", json={"email": "keeper@example.com", "password": inprocess.ADMIN_PASSWORD}
    )
    assert medusa.status_code == 200, medusa.text
    for name, headers in (
        ("key", t.basic(await t.secret_key(root.id, [API_KEYS]))),
        ("oauth", t.bearer(await t.oauth_token(root.id, [API_KEYS]))),
        ("medusa-login", t.bearer(medusa.json()["token"])),
    ):
        before = await _key_count(t)
        for asked in ([ALL], [PRODUCTS], [API_KEYS, CATALOG]):
            body = {"title": f"{name}-escalate", "type": "secret", "resources": asked}
            r = await t.client.post("/admin/api-keys", json=body, headers=headers)
            _refused(r)
            assert r.json()["type"] == "forbidden"
        assert await _key_count(t) == before
        # no resources: what the acting credential holds, not what its admin holds
        r = await t.client.post("/admin/api-keys", json={"title": name, "type": "secret"}, headers=headers)
        assert r.status_code == 200, r.text
        minted = r.json()["api_key"]
        assert minted["resources"] == [API_KEYS], (name, minted)
        assert (await t.client.get("/rest/V1/products", headers=t.basic(minted["token"]))).status_code == 403


@case("POST", "/console/api-keys")
async def _console_key_within_grant(t: InProcess) -> None:
    """The console form names no resources: the key gets its admin's grant as it is now, written
    out, so promoting the admin later does not widen the key."""
    admin = await t.create_admin("keeper", resources=[API_KEYS, PRODUCTS])
    console = await t.console_session(admin.id)
    r = await console.post("/console/api-keys", {"title": "mine", "type": "secret"})
    assert r.status_code == 200, r.text
    keys, _ = await t.tk.services.api_keys.listing(type="secret", q="mine", limit=5, offset=0)
    assert [k.resources for k in keys] == [(PRODUCTS, API_KEYS)]
    assert ALL not in keys[0].resources
    raw = re.search(r"sk_[0-9a-f]{64}", r.text)
    assert raw is not None
    await t.accounts.assign_role(OPERATOR, "keeper", ADMINISTRATORS)
    assert (await t.client.get("/rest/V1/store/websites", headers=t.basic(raw.group()))).status_code == 403


@case("POST", "/tillkey/v1/integrations")
async def _api_integration_beyond_grant(t: InProcess) -> None:
    """The reproduced attack: an admin holding only Magento_Integration::integrations creates an
    integration with `all`."""
    await t.create_admin("integ", resources=[INTEGRATIONS])
    headers = t.bearer(await t.admin_token("integ"))
    _refused(await t.client.post("/tillkey/v1/integrations", json={"name": "all", "all": True}, headers=headers), ALL)
    _refused(
        await t.client.post("/tillkey/v1/integrations", json={"name": "p", "resources": [PRODUCTS]}, headers=headers),
        PRODUCTS,
    )
    root = await t.create_admin("root")
    key = t.basic(await t.secret_key(root.id, [INTEGRATIONS]))
    _refused(await t.client.post("/tillkey/v1/integrations", json={"name": "k", "all": True}, headers=key))
    assert await _integrations(t) == {}
    ok = await t.client.post(
        "/tillkey/v1/integrations", json={"name": "ok", "resources": [INTEGRATIONS]}, headers=headers
    )
    assert ok.status_code == 201, ok.text


@case("POST", "/console/integrations")
async def _console_integration_beyond_grant(t: InProcess) -> None:
    admin = await t.create_admin("integ", resources=[INTEGRATIONS])
    console = await t.console_session(admin.id)
    _refused(await console.post("/console/integrations", {"name": "all", "all_resources": "1"}), ALL)
    _refused(await console.post("/console/integrations", {"name": "p", "resource": [PRODUCTS, INTEGRATIONS]}), PRODUCTS)
    assert await _integrations(t) == {}


async def _big_integration(t: InProcess) -> int:
    created = await t.tk.services.integrations.create(OPERATOR, name="big", all_resources=True)
    return created.id


@case("POST", "/tillkey/v1/integrations/{integration_id}/activate")
async def _api_activation_beyond_grant(t: InProcess) -> None:
    """...and activates it: activation issues a token with the integration's grant, so whoever
    activates must hold all of it, whoever created it."""
    big = await _big_integration(t)
    await t.create_admin("integ", resources=[INTEGRATIONS])
    root = await t.create_admin("root")
    for headers in (
        t.bearer(await t.admin_token("integ")),
        t.basic(await t.secret_key(root.id, [INTEGRATIONS])),
        t.bearer(await t.oauth_token(root.id, [INTEGRATIONS])),
    ):
        r = await t.client.post(f"/tillkey/v1/integrations/{big}/activate", headers=headers)
        _refused(r, ALL)
        assert "access_token" not in r.text
    listed = await _integrations(t)
    assert listed["big"]["has_access_token"] is False and listed["big"]["status"] == "inactive"


@case("POST", "/console/integrations/{id}/activate")
async def _console_activation_beyond_grant(t: InProcess) -> None:
    big = await _big_integration(t)
    admin = await t.create_admin("integ", resources=[INTEGRATIONS, CATALOG])
    console = await t.console_session(admin.id)
    _refused(await console.post(f"/console/integrations/{big}/activate"), ALL)
    assert (await _integrations(t))["big"]["has_access_token"] is False


@case("POST", "/console/admins/{id}/role")
async def _console_role_assignment(t: InProcess) -> None:
    """The reproduced attack: an admin holding only Magento_User::acl_users gives themself
    Administrators in the console. Also: to another admin, and demoting an Administrator."""
    ua = await t.create_admin("ua", resources=[USERS, CATALOG])
    within = await t.create_role([CATALOG])
    low = await t.create_admin("low", role=within)
    root = await t.create_admin("root")
    console = await t.console_session(ua.id)
    for target, role in ((ua, ADMINISTRATORS), (ua, within), (low, ADMINISTRATORS), (root, within)):
        _refused(await console.post(f"/console/admins/{target.id}/role", {"role": role}))
    assert not t.tk.grants.admin(ua.id).all_resources
    assert await _role_of(t, "low") == within and await _role_of(t, "root") == ADMINISTRATORS
    own = await _role_of(t, "ua")
    r = await console.post(f"/console/admins/{low.id}/role", {"role": own or ""})
    assert r.status_code == 303, r.text  # a role within the actor's grant, to someone else: allowed
    assert await _role_of(t, "low") == own


@case("POST", "/console/admins")
async def _console_admin_creation(t: InProcess) -> None:
    ua = await t.create_admin("ua", resources=[USERS])
    console = await t.console_session(ua.id)
    form: dict[str, str | list[str]] = {
        "username": "sock",
        "email": "sock@example.com",
        "password": inprocess.ADMIN_PASSWORD,
    }
    _refused(await console.post("/console/admins", {**form, "role": ADMINISTRATORS}), ALL)
    _refused(await console.post("/console/admins", form), ALL)  # no role: Administrators
    catalog = await t.create_role([CATALOG])
    _refused(await console.post("/console/admins", {**form, "role": catalog}))
    async with t.tk.db.session() as s:
        assert await repo.admin_by_username(s, "sock") is None


@case("POST", "/console/admins/{id}/active")
async def _console_admin_activation(t: InProcess) -> None:
    """Re-enabling an Administrator hands their grant back; disabling one locks out a superior."""
    ua = await t.create_admin("ua", resources=[USERS])
    root = await t.create_admin("root")
    dormant = await t.create_admin("dormant")
    await t.accounts.set_admin_active(OPERATOR, dormant.id, False)
    console = await t.console_session(ua.id)
    _refused(await console.post(f"/console/admins/{dormant.id}/active", {"active": "1"}), ALL)
    _refused(await console.post(f"/console/admins/{root.id}/active", {"active": "0", "confirm": "yes"}), ALL)
    _refused(await console.post(f"/console/admins/{ua.id}/active", {"active": "0", "confirm": "yes"}))
    async with t.tk.db.session() as s:
        assert [a.is_active for a in (await repo.list_admins(s)) if a.username in ("dormant", "root")] == [True, False]


@case("POST", "/console/roles")
async def _console_role_creation(t: InProcess) -> None:
    ra = await t.create_admin("ra", resources=[ROLES])
    console = await t.console_session(ra.id)
    _refused(await console.post("/console/roles", {"name": "god", "resource": [ALL]}), ALL)
    _refused(await console.post("/console/roles", {"name": "cat", "resource": [ROLES, PRODUCTS]}), PRODUCTS)
    async with t.tk.db.session() as s:
        assert not {"god", "cat"} & {r.name for r in await repo.list_roles(s)}


@case("POST", "/console/roles/{id}")
async def _console_role_grant(t: InProcess) -> None:
    ra = await t.create_admin("ra", resources=[ROLES])
    mine = await _role(t, await _role_of(t, "ra") or "")
    above = await _role(t, await t.create_role([PRODUCTS]))
    console = await t.console_session(ra.id)
    # widen one's own role, or any role, past one's grant
    _refused(await console.post(f"/console/roles/{mine.id}", {"resource": [ROLES, ALL]}), ALL)
    _refused(await console.post(f"/console/roles/{mine.id}", {"resource": [ROLES, PRODUCTS]}), PRODUCTS)
    # a role above the actor is not theirs to change, not even to narrow
    _refused(await console.post(f"/console/roles/{above.id}", {"resource": [ROLES]}), PRODUCTS)
    assert (await _role(t, mine.name)).resources == (ROLES,)
    assert (await _role(t, above.name)).resources == (PRODUCTS,)
    assert not t.tk.grants.admin(ra.id).all_resources


async def _enrolled(t: InProcess, admin_id: int) -> bool:
    return (await t.tk.services.totp.status(admin_id)).enrolled


@case("POST", "/console/admins/{id}/2fa-reset")
async def _console_tfa_reset(t: InProcess) -> None:
    """Console two-factor self-reset (the API forbade it, the console allowed it), and resetting
    the factor of an admin above oneself (the first step of taking their account over)."""
    tf = await t.create_admin("tf", resources=[USERS, TFA])
    root = await t.create_admin("root")
    for admin in (tf, root):
        await t.tk.services.totp.enroll(admin.id)
    console = await t.console_session(tf.id)
    r = await console.post(f"/console/admins/{tf.id}/2fa-reset", {"confirm": "yes"})
    _refused(r)
    assert "reset your own second factor" in r.text
    _refused(await console.post(f"/console/admins/{root.id}/2fa-reset", {"confirm": "yes"}), ALL)
    assert await _enrolled(t, tf.id) and await _enrolled(t, root.id)


@case("POST", "/console/admins/{id}/factors-reset")
async def _console_factors_reset(t: InProcess) -> None:
    """The same reset from the admin's detail page: one's own, or an admin above oneself."""
    tf = await t.create_admin("tf", resources=[USERS, TFA])
    root = await t.create_admin("root")
    for admin in (tf, root):
        await t.tk.services.totp.enroll(admin.id)
    console = await t.console_session(tf.id)
    r = await console.post(f"/console/admins/{tf.id}/factors-reset", {"confirm": "yes"})
    _refused(r)
    assert "reset your own second factor" in r.text
    _refused(await console.post(f"/console/admins/{root.id}/factors-reset", {"confirm": "yes"}), ALL)
    assert await _enrolled(t, tf.id) and await _enrolled(t, root.id)


@case("POST", "/console/admins/{id}/password")
async def _console_password_reset(t: InProcess) -> None:
    """Resetting one's own password without the current one, or that of an admin above oneself
    (taking their account over)."""
    ua = await t.create_admin("ua", resources=[USERS])
    root = await t.create_admin("root")
    console = await t.console_session(ua.id)
    new: dict[str, str | list[str]] = {"password": "a-new-Password-42", "password_confirm": "a-new-Password-42"}
    r = await console.post(f"/console/admins/{ua.id}/password", new)
    _refused(r)
    _refused(await console.post(f"/console/admins/{root.id}/password", new), ALL)
    for name in ("ua", "root"):
        async with t.tk.db.session() as s:
            admin = await repo.admin_by_username(s, name)
        assert admin is not None and await t.tk.passwords.verify(admin.password_hash, inprocess.ADMIN_PASSWORD)


@case("DELETE", "/rest/V1/tillkey/tfa/{admin_id}")
async def _api_tfa_reset(t: InProcess) -> None:
    tf = await t.create_admin("tf", resources=[USERS, TFA])
    root = await t.create_admin("root")
    other = await t.create_admin("other")
    for admin in (tf, root, other):
        await t.tk.services.totp.enroll(admin.id)
    headers = t.bearer(await t.admin_token("tf"))
    r = await t.client.delete(f"/rest/V1/tillkey/tfa/{tf.id}", headers=headers)
    _refused(r)
    assert r.json()["message"] == OWN_FACTOR
    _refused(await t.client.delete(f"/rest/V1/tillkey/tfa/{root.id}", headers=headers), ALL)
    # an Administrator's own OAuth token scoped to the 2FA resource: its effective grant is that
    # scope, so it may not reset another Administrator's factor either
    oauth = t.bearer(await t.oauth_token(root.id, [TFA, USERS]))
    _refused(await t.client.delete(f"/rest/V1/tillkey/tfa/{other.id}", headers=oauth), ALL)
    # a secret key acting for tf is tf: it may not strip tf's factor either
    key = t.basic(await t.secret_key(tf.id, [USERS, TFA]))
    r = await t.client.delete(f"/rest/V1/tillkey/tfa/{tf.id}", headers=key)
    _refused(r)
    assert r.json()["message"] == OWN_FACTOR
    assert all([await _enrolled(t, a.id) for a in (tf, root, other)])


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_low_grant_caller_is_refused_a_bigger_grant(tmp_path: Path, route: tuple[str, str]) -> None:
    _run(tmp_path, CASES[route])


# --- further variants ----------------------------------------------------------------------------


def test_two_factor_reset_of_a_peer_within_ones_grant_still_works_on_both_surfaces(tmp_path: Path) -> None:
    """The rule refuses only what the actor lacks: a peer's lost device can still be reset."""

    async def body(t: InProcess) -> None:
        role = await t.create_role([USERS, TFA])
        tf = await t.create_admin("tf", role=role)
        peers = [await t.create_admin(f"peer{i}", role=role) for i in (1, 2)]
        for admin in peers:
            await t.tk.services.totp.enroll(admin.id)
        console = await t.console_session(tf.id)
        assert (await console.post(f"/console/admins/{peers[0].id}/2fa-reset", {"confirm": "yes"})).status_code == 303
        r = await t.client.delete(f"/rest/V1/tillkey/tfa/{peers[1].id}", headers=t.bearer(await t.admin_token("tf")))
        assert r.status_code == 200, r.text
        assert not any([await _enrolled(t, a.id) for a in peers])

    _run(tmp_path, body)


def test_a_key_minted_by_a_key_never_outgrows_the_minting_key_when_its_admin_is_promoted(tmp_path: Path) -> None:
    async def body(t: InProcess) -> None:
        admin = await t.create_admin("ops", resources=[API_KEYS, PRODUCTS])
        parent = await t.secret_key(admin.id, [API_KEYS])
        r = await t.client.post("/admin/api-keys", json={"title": "child", "type": "secret"}, headers=t.basic(parent))
        child = r.json()["api_key"]
        assert child["resources"] == [API_KEYS] and child["created_by"] == f"user_{admin.id}"
        await t.accounts.assign_role(OPERATOR, "ops", ADMINISTRATORS)
        assert (await t.client.get("/rest/V1/products", headers=t.basic(child["token"]))).status_code == 403

    _run(tmp_path, body)


def test_an_oauth_client_token_cannot_register_a_client_or_activate_beyond_its_scope(tmp_path: Path) -> None:
    """A client-credentials token (user type 6) holding the clients resource by scope."""

    async def body(t: InProcess) -> None:
        done = await t.tk.services.clients.create(
            OPERATOR,
            name="machine",
            client_type="confidential",
            redirect_uris=[],
            grant_types=["client_credentials"],
            scopes=[CLIENTS],
        )
        assert done.secret is not None
        r = await t.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": CLIENTS},
            auth=(done.client.client_id, done.secret),
        )
        assert r.status_code == 200, r.text
        headers = t.bearer(r.json()["access_token"])
        body = {"name": "escalate", "type": "confidential", "grant_types": ["client_credentials"], "scopes": [ALL]}
        _refused(await t.client.post("/tillkey/v1/oauth2/clients", json=body, headers=headers), ALL)
        assert "escalate" not in await _client_names(t)

    _run(tmp_path, body)


def test_customers_delegate_nothing(tmp_path: Path) -> None:
    """A customer token never reaches the minting routes (401/403), and the rule gives them
    nothing to delegate even if a route let them through."""

    async def body(t: InProcess) -> None:
        await t.create_customer("eve@example.com")
        headers = t.bearer(await t.customer_token("eve@example.com"))
        for path, payload in (
            ("/admin/api-keys", {"title": "x", "type": "secret"}),
            ("/tillkey/v1/integrations", {"name": "x", "resources": [PRODUCTS]}),
            ("/tillkey/v1/oauth2/clients", {"name": "x", "type": "public", "scopes": ["self"]}),
        ):
            r = await t.client.post(path, json=payload, headers=headers)
            assert r.status_code in (401, 403), (path, r.text)
        assert await _key_count(t) == 0

    _run(tmp_path, body)


def test_an_integration_token_cannot_create_or_activate_beyond_its_own_grant(tmp_path: Path) -> None:
    """The credential kind Magento gives machines: an integration holding the integrations
    resource, calling with its access token as a Bearer (TILLKEY_INTEGRATION_AS_BEARER)."""

    async def body(t: InProcess) -> None:
        big = await _big_integration(t)
        manager = await t.tk.services.integrations.create(OPERATOR, name="manager", resources=[INTEGRATIONS])
        done = await t.tk.services.integrations.activate(OPERATOR, manager.id)
        assert done.access_token is not None
        headers = t.bearer(done.access_token)
        _refused(await t.client.post("/tillkey/v1/integrations", json={"name": "x", "all": True}, headers=headers))
        _refused(await t.client.post(f"/tillkey/v1/integrations/{big}/activate", headers=headers), ALL)
        listed = await _integrations(t)
        assert "x" not in listed and listed["big"]["has_access_token"] is False

    async def main() -> None:
        async with inprocess.running(tmp_path, integration_as_bearer=True) as t:
            await body(t)

    inprocess.run(main)


def test_the_cli_acts_as_the_operator_who_may_grant_anything(tmp_path: Path) -> None:
    """The local operator (whoever runs `tillkey` on the server's files) is not limited by the rule."""
    env = {
        "TILLKEY_DATA_DIR": str(tmp_path / "data"),
        "TILLKEY_ARGON2_TIME_COST": "2",
        "TILLKEY_ARGON2_MEMORY_KIB": "19456",
        "TILLKEY_ARGON2_PARALLELISM": "1",
    }
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(cli_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    cli("role", "create", "Everything", "-r", ALL)
    cli("role", "grant", "Everything", "-r", PRODUCTS)
    password = inprocess.ADMIN_PASSWORD
    cli(
        "admin",
        "create",
        "--username",
        "ops",
        "--email",
        "ops@example.com",
        "--password",
        password,
        "--role",
        "Everything",
    )
    cli(
        "admin",
        "create",
        "--username",
        "dev",
        "--email",
        "dev@example.com",
        "--password",
        password,
        "--role",
        "Everything",
    )
    cli("admin", "assign-role", "dev", ADMINISTRATORS)
    cli("admin", "2fa", "reset", "dev")
    cli("integration", "create", "--name", "erp", "--all")
    assert "access_token" in cli("integration", "activate", "erp", "--json")
    cli("client", "create", "--name", "svc", "--type", "confidential", "--grant", "client_credentials", "--scope", ALL)
    cli("api-key", "create", "--title", "k", "--type", "secret", "--for", "ops")


# --- every minting route goes through the rule ---------------------------------------------------

# Path words of a route that could create, return or change a credential or a grant.
CANDIDATE = re.compile(
    r"token|key|session|client|integration|role|admin|user|grant|2fa|tfa|auth|oauth|consent|customer|"
    r"identit|password|secret|scope|login|enrol|activate|regist|invite|member|permission|acl",
    re.IGNORECASE,
)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Routes that match CANDIDATE but hand out nothing from their caller's grant, each with why.
# A new route lands here only with a reason a reviewer can check.
NOT_DELEGATING: dict[tuple[str, str], str] = {
    # Sign-in: the credential carries the signer's own grant, nothing delegated (the sign-in state
    # machine owns these; the access check narrows what the token may do on every call).
    ("POST", "/rest/V1/integration/admin/token"): "sign-in",
    ("POST", "/rest/V1/integration/customer/token"): "sign-in",
    ("POST", "/rest/V1/tfa/provider/google/authenticate"): "sign-in",
    ("POST", "/rest/V1/tillkey/federation/customer/{provider}"): "the redirect to an external provider",
    ("POST", "/rest/V1/tillkey/federation/customer/{provider}/token"): (
        "sign-in with an external provider (Magento-style): the customer's own grant, through the sign-in machine"
    ),
    ("POST", "/auth/{actor}/{provider}"): "sign-in (Medusa emailpass), or the redirect to an external provider",
    ("POST", "/saml/{name}/acs"): (
        "SAML sign-in (admins: the console session through the sign-in machine; customers: handed to the "
        "storefront, which finishes through /auth/customer/{provider}/callback)"
    ),
    ("POST", "/auth/{actor}/{provider}/callback"): (
        "sign-in with an external provider: the linked account's own grant, through the sign-in machine"
    ),
    ("POST", "/console/login"): "sign-in",
    ("POST", "/console/login/otp"): "sign-in, second step",
    ("POST", "/console/login/enrol"): "sign-in, forced enrolment of one's own first factor",
    ("POST", "/console/login/passkey/options"): "sign-in, second step: a passkey challenge for it",
    ("POST", "/console/login/enrol/passkey/options"): "sign-in, forced passkey enrolment: a challenge",
    ("POST", "/console/login/enrol/passkey"): "sign-in, forced enrolment of one's own first passkey",
    ("POST", "/console/login/passkey"): "sign-in, second step with a passkey",
    ("POST", "/console/login/passkey/discover/options"): "passwordless sign-in: a passkey challenge",
    ("POST", "/console/login/passkey/discover"): "passwordless sign-in with a passkey",
    ("POST", "/oauth2/consent"): "the signed-in user grants a client scopes; tokens hold user grant ∩ scope",
    ("POST", "/oauth/token/request"): "OAuth 1.0a handshake after an activation the rule allowed",
    ("POST", "/oauth/token/access"): "OAuth 1.0a handshake after an activation the rule allowed",
    # Renewals: the issuance work (issue 12, item 2) owns these and bounds them to what was issued.
    ("POST", "/rest/V1/integration/token/refresh"): "refresh rotation (issuance)",
    ("POST", "/auth/token/refresh"): "Medusa renewal (issuance)",
    ("POST", "/auth/session"): "Medusa session from a token (issuance)",
    ("POST", "/oauth2/token"): "OAuth 2 grants and refresh (issuance); scopes ⊆ the client's",
    # Self-service on one's own account: registers or changes nothing beyond the caller's own.
    ("POST", "/auth/{actor}/{provider}/register"): "a new identity with no grant",
    ("POST", "/auth/{actor}/{provider}/reset-password"): "sends a reset link; grants nothing",
    ("POST", "/auth/{actor}/{provider}/update"): "one's own password, by reset token",
    ("POST", "/store/customers"): "a customer account: holds only `self`",
    ("POST", "/rest/V1/tillkey/tfa/enroll"): "one's own new factor (refused while one is active)",
    ("POST", "/rest/V1/tillkey/tfa/activate"): "one's own factor",
    ("POST", "/console/2fa/enrol"): "one's own new factor (refused while one is active)",
    ("POST", "/console/2fa/activate"): "one's own factor",
    ("POST", "/console/2fa/passkeys/options"): "one's own passkey registration, first step (a challenge)",
    ("POST", "/console/2fa/passkeys"): "one's own new passkey",
    ("POST", "/console/2fa/passkeys/{passkey_id}/rename"): "renames one's own passkey",
    ("POST", "/console/2fa/passkeys/{passkey_id}/remove"): "removes one's own passkey (never the last factor)",
    ("POST", "/auth/mfa/factors"): "one's own new factor (Medusa MFA; refused while one is active)",
    ("POST", "/auth/mfa/factors/{factor_id}/verify"): "one's own factor",
    ("POST", "/auth/mfa/recovery-codes"): "one's own recovery codes for one's own active factor",
    ("POST", "/auth/mfa/challenges/{challenge_id}/verify"): "sign-in, second step (Medusa MFA challenge)",
    ("DELETE", "/auth/mfa/factors/{factor_id}"): "a customer removes their own factor (step-up: recent MFA)",
    ("POST", "/auth/mfa/challenges/{challenge_id}/passkey"): "sign-in, second step: a passkey challenge for it",
    ("POST", "/auth/mfa/passkeys/options"): "one's own passkey registration, first step (a challenge)",
    ("POST", "/auth/mfa/passkeys"): "one's own new passkey",
    ("POST", "/auth/mfa/passkeys/{passkey_id}"): "renames one's own passkey",
    (
        "DELETE",
        "/auth/mfa/passkeys/{passkey_id}",
    ): "removes one's own passkey (step-up; not an admin's last factor)",
    ("POST", "/auth/verification/request"): "a code mailed for one's own address (Medusa email verification)",
    ("POST", "/auth/verification/confirm"): "one's own address verified; the client signs in again for a token",
    ("DELETE", "/store/customers/me/identities/{identity_id}"): "a customer unlinks their own identity; grants nothing",
    ("POST", "/store/customers/me/identities/{provider}"): "a customer starts linking a provider to itself: a URL",
    (
        "POST",
        "/store/customers/me/identities/{provider}/callback",
    ): "links a provider's subject to the calling customer (the one that started it); grants no role, no token",
    # Taking away, never handing out.
    ("POST", "/rest/V1/integration/customer/revoke-customer-token"): "revocation",
    ("POST", "/rest/V1/integration/admin/revoke-admin-token"): "revocation",
    ("POST", "/tillkey/v1/logout"): "revocation",
    ("DELETE", "/auth/session"): "sign-out",
    ("POST", "/console/logout"): "sign-out",
    ("POST", "/console/sessions/end"): "ends sessions",
    ("POST", "/console/session/extend"): "slides one's own idle deadline",
    ("POST", "/admin/api-keys/{key_id}"): "renames a key; its grant is unchanged",
    ("DELETE", "/admin/api-keys/{key_id}"): "deletes a revoked key",
    ("POST", "/admin/api-keys/{key_id}/revoke"): "revocation",
    ("POST", "/console/api-keys/{id}/revoke"): "revocation",
    ("POST", "/tillkey/v1/integrations/{integration_id}/deactivate"): "stops an integration",
    ("PUT", "/tillkey/v1/integrations/{integration_id}/certificate"): (
        "binds an integration to a client certificate (where its calls are accepted); its grant is unchanged"
    ),
    ("POST", "/tillkey/v1/integrations/{integration_id}/revoke"): "revocation",
    ("DELETE", "/tillkey/v1/integrations/{integration_id}"): "deletion",
    ("POST", "/console/integrations/{id}/deactivate"): "stops an integration",
    ("POST", "/console/integrations/{id}/revoke"): "revocation",
    ("POST", "/console/integrations/{id}/certificate"): (
        "binds an integration to a client certificate, or unbinds it (as the API's PUT); its grant is unchanged"
    ),
    ("DELETE", "/tillkey/v1/oauth2/clients/{client_id}"): "deletion; its tokens stop",
    ("DELETE", "/tillkey/v1/idps/{name}"): "deletion; its linked identities sign in no more",
    ("POST", "/console/oauth-clients/{client_id}/delete"): "deletion; its tokens stop",
    ("POST", "/console/customers/{id}/sign-out"): "revocation",
    ("POST", "/oauth2/revoke"): "revocation (RFC 7009)",
    ("POST", "/oauth2/introspect"): "reads a token; mints nothing",
    ("POST", "/oauth2/par"): "stores an authorization request checked as /oauth2/authorize checks it; mints nothing",
    ("POST", "/oauth2/userinfo"): "reads claims; mints nothing",
    ("POST", "/console/keys/rotate"): "rotates the server's signing keys; no one's grant changes",
    ("POST", "/console/admins/{id}/delete"): "deletion (only admins within one's grant: require_manages)",
    ("POST", "/console/integrations/{id}/delete"): "deletion; its tokens stop",
    ("POST", "/console/roles/{id}/rename"): "renames a role within one's grant; its resources are unchanged",
    ("POST", "/console/roles/{id}/delete"): "deletion, refused while any admin holds the role",
    ("POST", "/console/account/password"): "one's own password, with the current one; grants nothing",
    ("POST", "/console/account/identities"): "links one's own external identity; grants nothing",
    ("POST", "/console/account/identities/{id}/remove"): "unlinks one's own external identity; grants nothing",
    ("POST", "/tillkey/v1/admins/me/password"): "one's own password, with the current one; grants nothing",
}


def _app(tmp_path: Path) -> Any:
    return create_app(tk=Tillkey(Settings(**{**inprocess.FAST_SETTINGS, "data_dir": tmp_path / "data"})))


def _openapi(app: Any) -> dict[str, Any]:
    """GET /openapi.json, as a client reads it (the document needs no started runtime)."""

    async def fetch() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=inprocess.BASE_URL) as client:
            r = await client.get("/openapi.json")
        assert r.status_code == 200, r.text
        document: dict[str, Any] = r.json()
        return document

    return inprocess.run(fetch)


def _openapi_routes(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method.upper() in {"GET", "HEAD", *MUTATING}
    }


def _served(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every API route the app serves, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((method, prefix + route.path) for method in route.methods or ())
        included, context = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if included is not None:
            yield from _served(included.routes, prefix + getattr(context, "prefix", ""))


# Served without a declaration: forward-auth judges the proxied request by its own rule table
# (TILLKEY_FORWARD_AUTH_ROUTES), and answers only GET/HEAD.
UNDECLARED = {("GET", "/tillkey/v1/forward-auth"), ("HEAD", "/tillkey/v1/forward-auth")}


def _candidates(declared: list[Declared]) -> set[tuple[str, str]]:
    return {(d.method, d.path) for d in declared if d.method in MUTATING and CANDIDATE.search(d.path)}


def test_every_route_is_declared_with_its_resources(tmp_path: Path) -> None:
    """The route table the enumeration reads is complete: every route the app serves, in the
    OpenAPI document or not (the console's pages are not), was declared through Api/ConsolePages."""
    app = _app(tmp_path)
    declared = {(d.method, d.path) for d in app.state.declared} | UNDECLARED
    served = set(_served(app.routes))
    assert len(served) > 100
    assert served - declared == set()
    assert set(_openapi_routes(_openapi(app))) <= declared
    # Safe methods change nothing, so a route that hands out a grant is never one.
    assert not [d for d in app.state.declared if d.delegates and d.method not in MUTATING]


def test_every_minting_route_goes_through_the_delegation_rule(tmp_path: Path) -> None:
    """Each route that could mint or assign is declared delegating and has a behavioural case
    above, or is allow-listed with a reason. A new `POST /…/tokens`, `/…/roles`, … without either
    fails here."""
    app = _app(tmp_path)
    declared: list[Declared] = app.state.declared
    delegating = {(d.method, d.path) for d in declared if d.delegates}
    unexplained = _candidates(declared) - delegating - set(NOT_DELEGATING)
    assert unexplained == set(), "declare delegates=… (and add a case) or allow-list with a reason"
    assert delegating - set(CASES) == set(), "every delegating route needs a behavioural case here"
    assert set(CASES) - delegating == set(), "a case for a route that does not declare delegates=…"
    assert delegating & set(NOT_DELEGATING) == set()
    assert set(NOT_DELEGATING) - {(d.method, d.path) for d in declared} == set(), "stale allow-list entries"
    # The JSON routes say it in the OpenAPI document too, for reviewers and generated clients.
    for key, op in _openapi_routes(_openapi(app)).items():
        assert (op.get("x-tillkey-delegates") is not None) == (key in delegating), key


def test_the_enumeration_catches_a_new_minting_route(tmp_path: Path) -> None:
    """The check above, shown failing: a new token route declared without delegates=…"""
    app = _app(tmp_path)
    declared: list[Declared] = [*app.state.declared, Declared("POST", "/tillkey/v1/tokens/exchange", ("anonymous",))]
    delegating = {(d.method, d.path) for d in declared if d.delegates}
    assert _candidates(declared) - delegating - set(NOT_DELEGATING) == {("POST", "/tillkey/v1/tokens/exchange")}
