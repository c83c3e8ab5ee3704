"""An admin's sign-in methods in the console (issue 16 item 5): My account lists their factors and
their recent sign-ins, refused ones too; another admin holding the 2FA resource resets them from the
detail page (authenticator app, recovery codes, passkeys gone, tokens revoked), never their own.
And an identity provider's "mfa" does not stand in for the passkey TILLKEY_ADMIN_PASSKEY_REQUIRED
asks of an admin, unless its amr shows a key (RFC 8176 hwk/swk)."""

from __future__ import annotations

from pathlib import Path

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.passkey_support import SoftAuthenticator
from tillkey.accounts.passkeys import Owner
from tillkey.accounts.signin import Attempt, ExternalAssertion, Issued, SecondFactorDue, SignedIn, Subject
from tillkey.principal import UserType

USERS = "Magento_User::acl_users"
TFA = "Magento_TwoFactorAuth::tfa"


async def _passkey(t: InProcess, admin_id: int, name: str) -> None:
    owner = Owner(UserType.ADMIN, admin_id)
    passkeys = t.tk.services.passkeys
    ceremony = await passkeys.registration_options(owner, "test-binding")
    key = SoftAuthenticator(BASE_URL)
    await passkeys.register(owner, "test-binding", ceremony.id, key.create(ceremony.options), name)


def test_my_account_lists_my_factors_and_recent_sign_ins(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            alice = await t.create_admin("alice")
            page = await (await t.console_session(alice.id)).get("/console/account")
            assert "Sign-in methods" in page.text and "No sign-ins recorded." in page.text
            _, codes = await t.enable_totp(alice.id)
            await _passkey(t, alice.id, "Laptop <b>")
            await t.console_sign_in("alice", "wrong password")  # refused: shows as a failure
            page = await (await t.console_session(alice.id)).get("/console/account")
            assert page.status_code == 200, page.text
            text = page.text
            assert "Authenticator app</dt><dd>on since" in text
            assert f"Recovery codes left</dt><dd>{len(codes)}<" in text
            assert "Laptop &lt;b&gt;" in text and "never" in text  # created, not used yet
            recent = text.split("Recent sign-ins", 1)[1]
            assert "failure" in recent and "wrong password" in recent and "python-httpx" in recent

    inprocess.run(body)


def test_another_admin_resets_the_second_factor_from_the_detail_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            root = await t.create_admin("root")  # Administrator: holds the 2FA resource
            clerk = await t.create_admin("clerk", resources=[USERS])  # admin users, not 2FA
            bob = await t.create_admin("bob", resources=["Magento_Backend::store"])
            await t.enable_totp(bob.id)
            await _passkey(t, bob.id, "Phone")
            token = await t.token_for(UserType.ADMIN, bob.id)
            t.advance(1)
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code == 200

            # The clerk sees the factors but no reset, and a crafted post is forbidden.
            clerk_console = await t.console_session(clerk.id)
            page = await clerk_console.get(f"/console/admins/{bob.id}")
            assert page.status_code == 200 and ">Phone<" in page.text and "Reset second factor" not in page.text
            r = await clerk_console.post(f"/console/admins/{bob.id}/factors-reset", {"confirm": "yes"})
            assert r.status_code == 403

            console = await t.console_session(root.id)
            page = await console.get(f"/console/admins/{bob.id}")
            assert "Reset second factor" in page.text and f"/console/admins/{bob.id}/factors-reset" in page.text
            # Without the in-page confirmation: a page asks first, nothing is reset.
            asked = await console.post(f"/console/admins/{bob.id}/factors-reset")
            assert asked.status_code == 200 and "Please confirm" in asked.text
            assert (await t.tk.services.totp.status(bob.id)).active
            r = await console.post(f"/console/admins/{bob.id}/factors-reset", {"confirm": "yes"})
            assert r.status_code == 303 and r.headers["location"] == f"/console/admins/{bob.id}?done=factors"
            assert not (await t.tk.services.totp.status(bob.id)).active
            assert not await t.tk.services.passkeys.has_any(Owner(UserType.ADMIN, bob.id))
            assert (await t.client.get("/rest/V1/store/websites", headers=t.bearer(token))).status_code == 401
            page = await console.get(f"/console/admins/{bob.id}?done=factors")
            assert "The second factor was reset" in page.text and "Authenticator app</dt><dd>off" in page.text

            # One's own: no button, and a crafted post is refused in place (the privilege rule).
            await t.enable_totp(root.id)
            page = await console.get(f"/console/admins/{root.id}")
            assert "Reset second factor" not in page.text
            r = await console.post(f"/console/admins/{root.id}/factors-reset", {"confirm": "yes"})
            assert r.status_code in (400, 403, 409) and "Sign-in methods" in r.text, r.text
            assert (await t.tk.services.totp.status(root.id)).active

    inprocess.run(body)


async def _federated(t: InProcess, admin_id: int, amr: tuple[str, ...]) -> object:
    async def issue(who: SignedIn) -> tuple[str, ...]:
        return who.amr

    return await t.tk.services.sign_in.begin(
        Subject(UserType.ADMIN, "alice"),
        ExternalAssertion(UserType.ADMIN, admin_id, True, amr),
        Attempt("127.0.0.1"),
        issue,
    )


def test_a_providers_mfa_needs_a_key_when_admins_must_use_a_passkey(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_passkey_required="all") as t:
            alice = await t.create_admin("alice")
            await _passkey(t, alice.id, "Laptop")
            # The provider checked a one-time code: trusted for "mfa", yet phishable; a passkey is due.
            due = await _federated(t, alice.id, ("pwd", "otp", "mfa"))
            assert isinstance(due, SecondFactorDue) and due.enrolled
            # A security key or passkey at the provider (RFC 8176 hwk / swk) is enough.
            for key in ("hwk", "swk"):
                done = await _federated(t, alice.id, ("pwd", key, "mfa"))
                assert isinstance(done, Issued) and done.who.amr == ("fed", "mfa", key), done

    inprocess.run(body)


def test_a_providers_mfa_is_enough_without_the_passkey_setting(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="required") as t:
            alice = await t.create_admin("alice")
            done = await _federated(t, alice.id, ("pwd", "otp", "mfa"))
            assert isinstance(done, Issued) and done.who.amr == ("fed", "mfa")

    inprocess.run(body)
