"""A provider mandatory for admins (TILLKEY_FEDERATION_ADMIN_REQUIRED, issue 14): an admin linked
to it signs in through it only. The sign-in state machine refuses every password, so each surface
answers its usual sign-in failure: an attacker holding the password tries them one after another.
Credentials that are no sign-in (API keys, integrations) keep working."""

from __future__ import annotations

import json
from pathlib import Path

from tests import inprocess
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.accounts.signin import Attempt, ExternalAssertion, Issued, SignedIn, Subject
from tillkey.federation.providers import NewProvider
from tillkey.principal import UserType
from tillkey.store import idps as repo
from tillkey.store.audit import AuditQuery
from tillkey.surfaces.api_keys import API_KEYS

SETTINGS = {"federation_allow_private_endpoints": True, "federation_admin_required": "corp"}
PASSWORD = inprocess.ADMIN_PASSWORD


async def linked_admin(t: inprocess.InProcess, username: str, provider: str) -> int:
    """An admin with a password and an identity linked from `provider` (as linking.py stores it)."""
    admin = await t.create_admin(username, email=f"{username}@corp.example")
    found = await t.tk.services.identity_providers.get(provider)
    async with t.tk.db.transaction() as s:
        await repo.link(
            s,
            provider_id=found.id,
            subject=f"sub-{username}",
            user_type=int(UserType.ADMIN),
            user_id=admin.id,
            email=admin.email,
            auth_identity_id=None,
            now_ms=1_700_000_000_000,
        )
    return admin.id


async def providers(t: inprocess.InProcess) -> None:
    for name in ("corp", "other"):
        await t.tk.services.identity_providers.add(
            OPERATOR, NewProvider(name=name, issuer=f"http://127.0.0.1:9/{name}", client_id="c", actor="admin")
        )


async def password_surfaces(t: inprocess.InProcess, username: str) -> dict[str, int]:
    """The same right password on every surface that takes one, as an attacker would try them."""
    magento = await t.client.post("/rest/V1/integration/admin/token", json={"username": username, "password": PASSWORD})
    medusa = await t.client.post(
        "/auth/user/emailpass", json={"email": f"{username}@corp.example", "password": PASSWORD}
    )
    async with t.browser() as browser:  # the console's form, in a browser of its own
        page = await browser.get("/console/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        console = await browser.post("/console/login", data={"csrf": csrf, "username": username, "password": PASSWORD})
    return {"magento": magento.status_code, "medusa": medusa.status_code, "console": console.status_code}


def test_password_sign_in_is_refused_on_every_surface_for_sso_only_admins(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS) as t:
            await providers(t)
            sso = await linked_admin(t, "ssoonly", "corp")
            await linked_admin(t, "elsewhere", "other")  # linked to a provider that is not mandatory
            await t.create_admin("plain", email="plain@corp.example")  # linked to none
            key = await t.secret_key(sso, [API_KEYS])
            refused = await password_surfaces(t, "ssoonly")
            assert refused["magento"] == 401 and refused["medusa"] == 401, refused
            assert refused["console"] != 303, refused  # the form again, no session
            # Magento's second-factor endpoint takes the password too: refused before any code.
            tfa = await t.client.post(
                "/rest/V1/tfa/provider/google/authenticate",
                json={"username": "ssoonly", "password": PASSWORD, "otp": "123456"},
            )
            assert tfa.status_code == 401, tfa.text
            # The refusal is the generic one: nothing tells the password was right.
            r = await t.client.post("/rest/V1/integration/admin/token", json={"username": "ssoonly", "password": "x"})
            magento = await t.client.post(
                "/rest/V1/integration/admin/token", json={"username": "ssoonly", "password": PASSWORD}
            )
            assert magento.json() == r.json()
            for username in ("elsewhere", "plain"):
                ok = await password_surfaces(t, username)
                assert ok == {"magento": 200, "medusa": 200, "console": 303}, (username, ok)
            found = await t.tk.audit.search(AuditQuery(event_prefix=audit.LOGIN_FAILURE, limit=50))
            reasons = [json.loads(f.details or "{}").get("reason") for f in found if f.actor_id == sso]
            assert reasons.count("identity provider required") == 5  # magento 3 times, medusa, console

            # Refusals spend the name's failure budget as wrong passwords do (else the throttle would
            # tell a right password from a wrong one), so the name is throttled for a while, the
            # provider's sign-in too, as after any run of wrong passwords; no account lockout.
            t.advance(t.tk.settings.login_throttle_lock_seconds + 1)

            # Then the provider's own sign-in works (the machine with its assertion) ...
            async def issue(who: SignedIn) -> str:
                return "signed in"

            outcome = await t.tk.services.sign_in.begin(
                Subject(UserType.ADMIN, "ssoonly"), ExternalAssertion(UserType.ADMIN, sso), Attempt("127.0.0.1"), issue
            )
            assert isinstance(outcome, Issued) and outcome.who.amr == ("fed",)
            # ... and so does an API key acting for the admin (no sign-in; integrations act for no admin).
            listed = await t.client.get("/admin/api-keys", headers=t.basic(key))
            assert listed.status_code == 200, listed.text
            # The mandatory provider's identity cannot be unlinked to bring passwords back.
            console = await t.console_session(sso)
            async with t.tk.db.session() as s:
                (identity,) = await repo.identities_of(s, int(UserType.ADMIN), sso)
            gone = await console.post(f"/console/account/identities/{identity.id}/remove", {"confirm": "yes"})
            assert gone.status_code == 409 and "required for administrators" in gone.text

    inprocess.run(body)


def test_without_the_setting_the_same_admin_signs_in_with_the_password(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await providers(t)
            await linked_admin(t, "ssoonly", "corp")
            assert await password_surfaces(t, "ssoonly") == {"magento": 200, "medusa": 200, "console": 303}

    inprocess.run(body)
