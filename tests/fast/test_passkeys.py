"""Passkeys, the service (accounts/passkeys.py): registration and assertions from a software
authenticator (tests/passkey_support.py), verified by py_webauthn, and every refusal a relying
party owes: a replayed or expired challenge, another session's challenge, a wrong origin or RP id,
a counter going back (a cloned authenticator), another account's passkey, user verification
missing when required, an authenticator model not on the AAGUID list."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.passkey_support import SoftAuthenticator
from tillkey import audit
from tillkey.accounts.passkeys import Owner, PasskeyRefused
from tillkey.errors import Conflict, InvalidRequest, NotFound
from tillkey.principal import UserType
from tillkey.store.audit import AuditQuery

RP = "127.0.0.1"  # the in-process issuer's host
SESSION = "session-a"


async def _customer(t: InProcess, email: str = "ada@example.com") -> Owner:
    return Owner(UserType.CUSTOMER, (await t.create_customer(email)).id)


async def _register(t: InProcess, owner: Owner, key: SoftAuthenticator, name: str = "Phone", **kw: Any) -> Any:
    passkeys = t.tk.services.passkeys
    ceremony = await passkeys.registration_options(owner, SESSION)
    return await passkeys.register(owner, SESSION, ceremony.id, key.create(ceremony.options, **kw), name)


async def _sign_in(t: InProcess, owner: Owner, key: SoftAuthenticator, binding: str = SESSION, **kw: Any) -> Any:
    passkeys = t.tk.services.passkeys
    ceremony = await passkeys.authentication_options(owner, binding)
    return await passkeys.authenticate(owner, binding, ceremony.id, key.get(ceremony.options, **kw))


def test_register_list_rename_use_and_remove(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            owner = await _customer(t)
            key = SoftAuthenticator(BASE_URL)
            options = (await t.tk.services.passkeys.registration_options(owner, SESSION)).options
            assert options["rp"] == {"id": RP, "name": "Tillkey"} and options["attestation"] == "none"
            assert options["authenticatorSelection"]["residentKey"] == "preferred"
            passkey = await _register(t, owner, key)
            assert (passkey.name, passkey.sign_count, passkey.backup_eligible) == ("Phone", 0, False)
            assert passkey.transports == ("internal",) and passkey.aaguid == str(uuid.UUID(bytes=bytes(16)))
            # A second registration excludes the first (the authenticator would refuse to duplicate it).
            again = (await t.tk.services.passkeys.registration_options(owner, SESSION)).options
            assert [c["id"] for c in again["excludeCredentials"]] == [passkey.credential_id]

            used = await _sign_in(t, owner, key)
            assert used.passkey.id == passkey.id and used.amr == ("hwk", "user", "mfa")
            [listed] = await t.tk.services.passkeys.list(owner)
            assert listed.sign_count == 1 and listed.last_used_ms is not None

            renamed = await t.tk.services.passkeys.rename(owner, passkey.id, "  Work laptop ")
            assert renamed.name == "Work laptop"
            with pytest.raises(InvalidRequest):
                await t.tk.services.passkeys.rename(owner, passkey.id, "bad\nname")
            await t.tk.services.passkeys.remove(owner, passkey.id)
            assert await t.tk.services.passkeys.list(owner) == []
            with pytest.raises(NotFound):
                await t.tk.services.passkeys.remove(owner, passkey.id)
            events = [r.event for r in await t.tk.audit.search(AuditQuery(event_prefix="passkey.", limit=20))]
            for event in (audit.PASSKEY_REGISTERED, audit.PASSKEY_RENAMED, audit.PASSKEY_REMOVED):
                assert event in events

    inprocess.run(body)


def test_a_synced_passkey_is_a_software_key(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            owner = await _customer(t)
            key = SoftAuthenticator(BASE_URL, synced=True, uv=False, counts=False)
            passkey = await _register(t, owner, key)
            assert passkey.backup_eligible and passkey.backup_state
            first = await _sign_in(t, owner, key)
            second = await _sign_in(t, owner, key)  # a counter that stays 0 is allowed (passkey providers)
            assert first.amr == second.amr == ("swk", "user")

    inprocess.run(body)


def test_a_challenge_is_single_use_bound_and_short_lived(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, webauthn_challenge_ttl=60) as t:
            t.freeze()
            owner = await _customer(t)
            key = SoftAuthenticator(BASE_URL)
            await _register(t, owner, key)
            passkeys = t.tk.services.passkeys

            ceremony = await passkeys.authentication_options(owner, SESSION)
            answer = key.get(ceremony.options)
            await passkeys.authenticate(owner, SESSION, ceremony.id, answer)
            with pytest.raises(PasskeyRefused, match="spent"):  # replayed: the same answer again
                await passkeys.authenticate(owner, SESSION, ceremony.id, answer)

            ceremony = await passkeys.authentication_options(owner, SESSION)
            with pytest.raises(PasskeyRefused, match="another session"):
                await passkeys.authenticate(owner, "session-b", ceremony.id, key.get(ceremony.options))
            # A wrong binding spent it too: no second try at it.
            with pytest.raises(PasskeyRefused, match="spent"):
                await passkeys.authenticate(owner, SESSION, ceremony.id, key.get(ceremony.options))

            ceremony = await passkeys.authentication_options(owner, SESSION)
            t.advance(61)
            with pytest.raises(PasskeyRefused, match="expired"):
                await passkeys.authenticate(owner, SESSION, ceremony.id, key.get(ceremony.options))

            # Registration's challenge too: expired, then replayed.
            ceremony = await passkeys.registration_options(owner, SESSION)
            t.advance(61)
            with pytest.raises(InvalidRequest):
                await passkeys.register(owner, SESSION, ceremony.id, key.create(ceremony.options), "late")
            ceremony = await passkeys.registration_options(owner, SESSION)
            made = key.create(ceremony.options)
            await passkeys.register(owner, SESSION, ceremony.id, made, "ok")
            with pytest.raises(InvalidRequest):
                await passkeys.register(owner, SESSION, ceremony.id, made, "again")

    inprocess.run(body)


def test_wrong_origin_and_wrong_rp_id_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            owner = await _customer(t)
            key = SoftAuthenticator(BASE_URL)
            with pytest.raises(InvalidRequest, match="could not be verified"):
                await _register(t, owner, key, origin="https://evil.example")
            with pytest.raises(InvalidRequest, match="could not be verified"):
                await _register(t, owner, key, rp_id="evil.example")
            assert await t.tk.services.passkeys.list(owner) == []

            await _register(t, owner, key)
            cred = key.credentials[-1]
            with pytest.raises(PasskeyRefused, match="origin"):
                await _sign_in(t, owner, key, origin="https://evil.example", credential=cred)
            with pytest.raises(PasskeyRefused, match="RP ID"):
                await _sign_in(t, owner, key, rp_id="evil.example", credential=cred)
            await _sign_in(t, owner, key, credential=cred)

    inprocess.run(body)


def test_listed_origins_replace_the_issuer(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {
            "webauthn_rp_id": "shop.example",
            "webauthn_origins": "https://shop.example,https://admin.shop.example",
        }
        async with inprocess.running(tmp_path, **settings) as t:
            owner = await _customer(t)
            key = SoftAuthenticator("https://admin.shop.example")
            with pytest.raises(InvalidRequest):
                await _register(t, owner, SoftAuthenticator(BASE_URL))
            await _register(t, owner, key)
            assert key.credentials[-1].rp_id == "shop.example"
            await _sign_in(t, owner, key)

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_a_counter_going_back_is_a_clone(tmp_path: Path, backend: str) -> None:
    async def body() -> None:
        with inprocess.database(backend, tmp_path) as db:
            async with inprocess.running(tmp_path, **db) as t:
                await _counter_and_replay(t)

    inprocess.run(body)


async def _counter_and_replay(t: InProcess) -> None:
    """On both databases: the conditional statements that spend a challenge and move a counter."""
    owner = await _customer(t)
    key = SoftAuthenticator(BASE_URL)
    await _register(t, owner, key)
    await _sign_in(t, owner, key, counter=5)
    with pytest.raises(PasskeyRefused, match="sign count"):
        await _sign_in(t, owner, key, counter=5)
    with pytest.raises(PasskeyRefused, match="sign count"):
        await _sign_in(t, owner, key, counter=3)
    await _sign_in(t, owner, key, counter=6)
    [passkey] = await t.tk.services.passkeys.list(owner)
    assert passkey.sign_count == 6
    passkeys = t.tk.services.passkeys
    ceremony = await passkeys.authentication_options(owner, SESSION)
    answer = key.get(ceremony.options, counter=7)
    await passkeys.authenticate(owner, SESSION, ceremony.id, answer)
    with pytest.raises(PasskeyRefused, match="spent"):
        await passkeys.authenticate(owner, SESSION, ceremony.id, answer)
    with pytest.raises(Conflict):  # one credential id, one account
        await _register_again(t, owner, key)


async def _register_again(t: InProcess, owner: Owner, key: SoftAuthenticator) -> None:
    """The same credential registered twice (a replayed registration with a fresh challenge)."""
    from tillkey.store import passkeys as repo

    [existing] = await t.tk.services.passkeys.list(owner)
    async with t.tk.db.transaction() as s:
        await repo.add(
            s,
            repo.NewPasskey(
                owner.user_type,
                owner.user_id,
                existing.credential_id,
                existing.public_key,
                0,
                False,
                False,
                (),
                existing.aaguid,
                "copy",
                0,
            ),
        )


def test_another_accounts_passkey_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            ada, eve = await _customer(t), await _customer(t, "eve@example.com")
            ada_key, eve_key = SoftAuthenticator(BASE_URL), SoftAuthenticator(BASE_URL)
            await _register(t, ada, ada_key)
            await _register(t, eve, eve_key)
            passkeys = t.tk.services.passkeys
            # Eve answers Ada's sign-in with her own (valid) passkey.
            ceremony = await passkeys.authentication_options(ada, SESSION)
            with pytest.raises(PasskeyRefused, match="another account"):
                await passkeys.authenticate(
                    ada, SESSION, ceremony.id, eve_key.get(ceremony.options, credential=eve_key.credentials[0])
                )
            # Eve cannot rename or remove Ada's.
            [ada_passkey] = await passkeys.list(ada)
            with pytest.raises(NotFound):
                await passkeys.remove(eve, ada_passkey.id)
            with pytest.raises(NotFound):
                await passkeys.rename(eve, ada_passkey.id, "mine")
            # An admin's sign-in never takes a customer's passkey (passwordless: any account of the type).
            ceremony = await passkeys.authentication_options(Owner(UserType.ADMIN, 0), SESSION, passwordless=True)
            with pytest.raises(PasskeyRefused, match="unknown passkey"):
                await passkeys.authenticate(
                    Owner(UserType.ADMIN, 0),
                    SESSION,
                    ceremony.id,
                    ada_key.get(ceremony.options, credential=ada_key.credentials[0]),
                )

    inprocess.run(body)


def test_user_verification_when_required(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, webauthn_user_verification="required") as t:
            owner = await _customer(t)
            key = SoftAuthenticator(BASE_URL)
            with pytest.raises(InvalidRequest):
                await _register(t, owner, key, uv=False)
            await _register(t, owner, key)
            with pytest.raises(PasskeyRefused, match="verif"):
                await _sign_in(t, owner, key, uv=False)
            assert (await _sign_in(t, owner, key)).user_verified

    inprocess.run(body)


def test_passwordless_requires_user_verification(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:  # preferred for second factors
            admin = await t.create_admin("alice")
            owner, anyone = Owner(UserType.ADMIN, admin.id), Owner(UserType.ADMIN, 0)
            key = SoftAuthenticator(BASE_URL)
            await _register(t, owner, key, uv=False)
            passkeys = t.tk.services.passkeys
            ceremony = await passkeys.authentication_options(anyone, SESSION, passwordless=True)
            assert ceremony.options["userVerification"] == "required" and ceremony.options["allowCredentials"] == []
            with pytest.raises(PasskeyRefused, match="verif"):
                await passkeys.authenticate(anyone, SESSION, ceremony.id, key.get(ceremony.options, uv=False))
            ceremony = await passkeys.authentication_options(anyone, SESSION, passwordless=True)
            used = await passkeys.authenticate(anyone, SESSION, ceremony.id, key.get(ceremony.options))
            assert used.passkey.user_id == admin.id

    inprocess.run(body)


def test_the_aaguid_list_admits_only_attested_listed_models(tmp_path: Path) -> None:
    async def body() -> None:
        model = uuid.UUID("2fc0579f-8113-47ea-b116-bb5a8db9202a")
        async with inprocess.running(tmp_path, webauthn_aaguids=str(model)) as t:
            owner = await _customer(t)
            options = (await t.tk.services.passkeys.registration_options(owner, SESSION)).options
            assert options["attestation"] == "direct"
            listed = SoftAuthenticator(BASE_URL, aaguid=model.bytes)
            with pytest.raises(InvalidRequest, match="not accepted"):  # no attestation: only a claim
                await _register(t, owner, listed)
            with pytest.raises(InvalidRequest, match="not accepted"):
                await _register(t, owner, SoftAuthenticator(BASE_URL, aaguid=uuid.uuid4().bytes), fmt="packed")
            passkey = await _register(t, owner, listed, fmt="packed")
            assert passkey.aaguid == str(model)

    inprocess.run(body)
