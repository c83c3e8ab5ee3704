"""Admins sign in to the console with an external OpenID provider (issue 14), against a real one:
panva's oidc-provider (tests/js/oidc-op). The test is the browser: it clicks "Sign in with …",
signs in at the provider, and lands in the console with the role its groups map to."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.federation_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONSOLE_CALLBACK,
    OpenIDProvider,
    openid_provider,
    sign_in_at_provider,
)
from tests.polling import until
from tillkey.access.delegation import OPERATOR
from tillkey.federation.providers import NewProvider
from tillkey.store import accounts as accounts_repo

pytestmark = pytest.mark.interop

STAFF = {"email": "staff@corp.example", "email_verified": True, "name": "Sam Staff", "groups": ["shop-staff"]}
LIN = {"email": "lin@corp.example", "email_verified": True, "groups": ["shop-staff"]}
ACCOUNTS = {
    "staff": {"claims": STAFF},
    "lin": {"claims": LIN},
    "boss": {
        "claims": {"email": "boss@corp.example", "email_verified": True, "groups": ["admins"]},
        "amr": ["pwd", "mfa"],
    },
    "keyed": {
        "claims": {"email": "keyed@corp.example", "email_verified": True, "groups": ["admins"]},
        "amr": ["hwk", "mfa"],
    },
}


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    with openid_provider(ACCOUNTS, [CONSOLE_CALLBACK], tmp_path_factory.mktemp("op")) as started:
        yield started


async def _setup(t: inprocess.InProcess, op: OpenIDProvider, **extra: Any) -> None:
    await t.create_role(["Magento_Catalog::products"], name="catalog")
    await t.create_role(["Magento_Backend::all"], name="everything")
    await t.tk.services.identity_providers.add(
        OPERATOR,
        NewProvider(
            **{
                "name": "corp",
                "display_name": "Corp SSO",
                "issuer": op.issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "actor": "admin",
                "scope": "openid email profile groups",
                "groups_claim": "groups",
                "role_map": {"admins": "everything", "shop-staff": "catalog"},
                "provisioning": "jit",
                "allowed_domains": ["corp.example"],
                **extra,
            }
        ),
    )


async def _sign_in(browser: httpx.AsyncClient, account: str) -> httpx.Response:
    """Click "Sign in with Corp SSO", sign in at the provider, come back."""
    r = await browser.get("/console/login/idp/corp", params={"next": "/console/"})
    assert r.status_code == 303, r.text
    query = await sign_in_at_provider(r.headers["location"], account, CONSOLE_CALLBACK)
    return await browser.get("/console/login/idp/corp/callback", params=query)


async def _role(t: inprocess.InProcess, email: str) -> str | None:
    async with t.tk.db.session() as s:
        admin = await accounts_repo.admin_by_email(s, email)
        assert admin is not None
        role = await accounts_repo.role_by_id(s, admin.role_id) if admin.role_id else None
    return role.name if role else None


def test_an_admin_signs_in_with_the_provider_and_groups_map_to_roles(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await _setup(t, op)
            page = await t.client.get("/console/login")
            assert "Sign in with Corp SSO" in page.text and 'href="/console/login/idp/corp?next=' in page.text

            async with t.browser() as browser:
                r = await _sign_in(browser, "staff")
                assert r.status_code == 200 and 'http-equiv="refresh"' in r.text, r.text
                dashboard = await browser.get("/console/")
                assert dashboard.status_code == 200 and "corp-staff" in dashboard.text
            assert await _role(t, "staff@corp.example") == "catalog"

            # The group is removed at the provider: the next sign-in takes the role away (refused: no role).
            op.set_account("staff", {**STAFF, "groups": []})
            async with t.browser() as browser:
                r = await _sign_in(browser, "staff")
                assert r.status_code == 401
            assert await _role(t, "staff@corp.example") is None
            op.set_account("staff", STAFF)

    inprocess.run(body)


def test_a_callback_from_another_browser_is_refused(tmp_path: Path, op: OpenIDProvider) -> None:
    """Login CSRF: the state is bound to the browser that started the flow."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await _setup(t, op)
            async with t.browser() as attacker:
                r = await attacker.get("/console/login/idp/corp")
                query = await sign_in_at_provider(r.headers["location"], "staff", CONSOLE_CALLBACK)
            async with t.browser() as victim:
                r = await victim.get("/console/login/idp/corp/callback", params=query)
                assert r.status_code == 401 and "tk_console" not in r.headers.get("set-cookie", "")

    inprocess.run(body)


def test_the_second_factor_policy_applies_unless_the_provider_asserts_mfa(tmp_path: Path, op: OpenIDProvider) -> None:
    async def body() -> None:
        settings = {"federation_allow_private_endpoints": True, "admin_2fa": "required"}
        async with inprocess.running(tmp_path, **settings) as t:
            await _setup(t, op, mfa_from_amr=True)
            async with t.browser() as browser:
                # No MFA asserted: TILLKEY_ADMIN_2FA=required sends the admin to set up TOTP first.
                r = await _sign_in(browser, "staff")
                assert r.status_code == 200 and "/console/login/enrol" in r.text
                assert (await browser.get("/console/")).status_code != 200
            async with t.browser() as browser:
                # amr carries "mfa" and the provider is trusted for it: straight into the console.
                r = await _sign_in(browser, "boss")
                assert r.status_code == 200 and 'url=/console/"' in r.text, r.text
                assert (await browser.get("/console/")).status_code == 200

    inprocess.run(body)


def test_a_providers_mfa_is_no_passkey_unless_its_amr_shows_a_key(tmp_path: Path, op: OpenIDProvider) -> None:
    """TILLKEY_ADMIN_PASSKEY_REQUIRED: the provider's "mfa" after a one-time code leaves a full-access
    admin a passkey to show; its "hwk" (a security key at the provider) is phishing-resistant."""

    async def body() -> None:
        settings = {"federation_allow_private_endpoints": True, "admin_passkey_required": "full_access"}
        async with inprocess.running(tmp_path, **settings) as t:
            await _setup(t, op, mfa_from_amr=True)
            async with t.browser() as browser:
                r = await _sign_in(browser, "boss")  # amr pwd, mfa: no key
                assert r.status_code == 200 and "/console/login/enrol/passkey" in r.text, r.text
                assert (await browser.get("/console/")).status_code != 200
            async with t.browser() as browser:
                r = await _sign_in(browser, "keyed")  # amr hwk, mfa
                assert r.status_code == 200 and 'url=/console/"' in r.text, r.text
                assert (await browser.get("/console/")).status_code == 200

    inprocess.run(body)


def test_an_existing_admin_links_the_provider_from_their_account(tmp_path: Path, op: OpenIDProvider) -> None:
    """A verified email is not enough to reach an existing account; signed in, its admin links."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await _setup(t, op)
            lin = await t.create_admin("lin", role="catalog", email="lin@corp.example")
            async with t.browser() as browser:
                r = await _sign_in(browser, "lin")
                assert r.status_code == 401 and "Sign in to it the way you usually do" in r.text
            caller = await t.console_session(lin.id)
            page = await caller.get("/console/account")
            assert "Link Corp SSO" in page.text
            r = await caller.post("/console/account/identities", {"provider": "corp"})
            assert r.status_code == 200, r.text
            location = html.unescape(re.search(r'url=([^"]+)"', r.text).group(1))  # type: ignore[union-attr]
            query = await sign_in_at_provider(location, "lin", CONSOLE_CALLBACK)
            r = await t.client.get("/console/login/idp/corp/callback", params=query)
            assert r.status_code == 200 and "/console/account?done=linked" in r.text, r.text
            # From now on the provider signs in to this very admin.
            async with t.browser() as browser:
                r = await _sign_in(browser, "lin")
                assert r.status_code == 200, r.text
                assert (await browser.get("/console/")).status_code == 200
                page = await browser.get("/console/account")
                assert "Corp SSO: lin@corp.example" in page.text

    inprocess.run(body)


def test_a_mandatory_provider_ends_password_sign_in_once_linked(tmp_path: Path, op: OpenIDProvider) -> None:
    """TILLKEY_FEDERATION_ADMIN_REQUIRED: linking the provider for real takes the password away
    from that admin on every surface; a provisioned admin (no password) cannot unlink its only way in."""

    async def body() -> None:
        settings = {"federation_allow_private_endpoints": True, "federation_admin_required": "corp"}
        async with inprocess.running(tmp_path, **settings) as t:
            await _setup(t, op)
            lin = await t.create_admin("lin", role="catalog", email="lin@corp.example")
            await t.admin_token("lin")  # not linked yet: the password still signs in
            caller = await t.console_session(lin.id)
            r = await caller.post("/console/account/identities", {"provider": "corp"})
            location = html.unescape(re.search(r'url=([^"]+)"', r.text).group(1))  # type: ignore[union-attr]
            query = await sign_in_at_provider(location, "lin", CONSOLE_CALLBACK)
            assert (await t.client.get("/console/login/idp/corp/callback", params=query)).status_code == 200
            refused = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "lin", "password": inprocess.ADMIN_PASSWORD}
            )
            assert refused.status_code == 401, refused.text
            async with t.browser() as browser:
                assert (await t.console_sign_in("lin")).status_code != 303
                assert (await _sign_in(browser, "lin")).status_code == 200
                assert (await browser.get("/console/")).status_code == 200
            # Provisioned by the provider: no password, so its one identity is its only way in.
            async with t.browser() as browser:
                assert (await _sign_in(browser, "staff")).status_code == 200
                page = await browser.get("/console/account")
                action = re.search(r'action="(/console/account/identities/\d+/remove)"', page.text)
                assert action is not None, page.text
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
                headers = {"Origin": inprocess.BASE_URL, "Sec-Fetch-Site": "same-origin"}
                r = await browser.post(action.group(1), data={"csrf": csrf, "confirm": "yes"}, headers=headers)
                assert r.status_code == 409 and "last way to sign in" in r.text, r.text

    inprocess.run(body)


def test_a_role_mapped_at_sign_in_reaches_the_admins_running_tokens(tmp_path: Path, op: OpenIDProvider) -> None:
    """Groups decide the role at every sign-in, and the new role is what every running token of that
    admin holds from then on, both ways (the grants change rides the change feed, as any role
    change does): here a Magento admin token lin got with its password before."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await _setup(t, op)
            lin = await t.create_admin("lin", role="catalog", email="lin@corp.example")
            await _link(t, lin.id, "lin")
            token = await t.admin_token("lin")

            async def status(path: str) -> int:
                return (await t.client.get(path, headers=t.bearer(token))).status_code

            assert (await status("/tillkey/v1/idps"), await status("/rest/V1/products")) == (403, 200)
            for groups, idps, products in ((["admins"], 200, 200), (["shop-staff"], 403, 200)):
                op.set_account("lin", {**LIN, "groups": groups})
                async with t.browser() as browser:
                    assert (await _sign_in(browser, "lin")).status_code == 200
                assert (await status("/tillkey/v1/idps"), await status("/rest/V1/products")) == (idps, products)
            # No group maps and no default role: the sign-in is refused and the role is gone at once.
            op.set_account("lin", {**LIN, "groups": []})
            async with t.browser() as browser:
                assert (await _sign_in(browser, "lin")).status_code == 401
            assert (await status("/tillkey/v1/idps"), await status("/rest/V1/products")) == (403, 403)
            op.set_account("lin", LIN)

    inprocess.run(body)


async def _link(t: inprocess.InProcess, admin_id: int, account: str) -> None:
    """The admin, signed in to the console, links its identity at the provider (My account)."""
    caller = await t.console_session(admin_id)
    r = await caller.post("/console/account/identities", {"provider": "corp"})
    location = html.unescape(re.search(r'url=([^"]+)"', r.text).group(1))  # type: ignore[union-attr]
    query = await sign_in_at_provider(location, account, CONSOLE_CALLBACK)
    assert (await t.client.get("/console/login/idp/corp/callback", params=query)).status_code == 200


@pytest.mark.serial  # times the change feed
def test_changing_the_role_map_signs_linked_admins_out_on_every_server(
    tmp_path: Path, op: OpenIDProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider keeps no admin's groups, so a new role map cannot recompute their roles: it
    signs every admin linked through the provider out (tokens revoked, sessions ended), and their
    next sign-in maps their groups anew. Through the API, this server refuses them at once; through
    the CLI (another process), the running server follows the change feed within a second."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS", "true")

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await _setup(t, op)
            lin = await t.create_admin("lin", role="catalog", email="lin@corp.example")  # not linked: untouched
            operator = await t.create_admin("op", resources=["Tillkey::idps", "Magento_Backend::all"])
            token = await t.admin_token("op")
            async with t.browser() as staff, t.browser() as boss:
                assert (await _sign_in(staff, "staff")).status_code == 200
                assert (await _sign_in(boss, "boss")).status_code == 200
                lin_session = await t.console_session(lin.id)
                # Not a change to roles: nobody is signed out.
                r = await t.client.patch(
                    "/tillkey/v1/idps/corp", json={"display_name": "Corp"}, headers=t.bearer(token)
                )
                assert r.status_code == 200 and r.json()["display_name"] == "Corp", r.text
                assert (await staff.get("/console/")).status_code == 200

                r = await t.client.patch(
                    "/tillkey/v1/idps/corp",
                    json={"role_map": {"shop-staff": "everything", "admins": "everything"}},
                    headers=t.bearer(token),
                )
                assert r.status_code == 200 and r.json()["role_map"] == {
                    "shop-staff": "everything",
                    "admins": "everything",
                }
                assert (await staff.get("/console/")).status_code != 200
                assert (await boss.get("/console/")).status_code != 200
                assert (await lin_session.get("/console/")).status_code == 200
                assert (await t.client.get("/tillkey/v1/idps", headers=t.bearer(token))).status_code == 200
                # Signing in again maps the groups with the new map.
                assert (await _sign_in(staff, "staff")).status_code == 200
                assert (await staff.get("/console/keys")).status_code == 200

                # The operator's CLI is another process: it commits the revocation and the running
                # server applies it from the change feed (TILLKEY_SYNC_INTERVAL, 1 s).
                await inprocess.cli(
                    "idp",
                    "update",
                    "corp",
                    "--role-map",
                    "admins=everything",
                    "--role-map",
                    "shop-staff=catalog",
                    "--json",
                )
                start = time.monotonic()
                await until(lambda: _signed_out(staff), within=5, what="the CLI's change reaching the server")
                assert time.monotonic() - start < 3.0  # a poll of the feed each second, with room for a loaded machine
                assert (await _sign_in(staff, "staff")).status_code == 200
                assert (await staff.get("/console/keys")).status_code == 403  # catalog again
            assert operator.id != lin.id

    inprocess.run(body)


async def _signed_out(browser: httpx.AsyncClient) -> bool:
    return (await browser.get("/console/")).status_code != 200
