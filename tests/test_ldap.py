"""LDAP / Active Directory (issue 15) against a real directory nobody here wrote: Debian's slapd
on loopback (tests/slapd.py), one per module, with users, groups and a nested group. Tillkey runs
in-process; sign-ins go through the real surfaces (Magento's admin token endpoint, the console,
Medusa's emailpass), the sync through the service and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tests import slapd as directory
from tests.conftest import REQUIRE_SERVICES
from tests.polling import until
from tillkey.access.delegation import OPERATOR
from tillkey.crypto.passwords import is_unusable
from tillkey.federation import ldap as wire
from tillkey.federation.providers import NewProvider
from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import directory_syncs as syncs_repo
from tillkey.store.audit import AuditQuery

pytestmark = pytest.mark.interop

PASSWORDS = {"ada": "ada-Directory-1", "bob": "bob-Directory-1", "cy": "cy-Directory-1", "eve": "eve-Directory-1"}
SALES = directory.group_dn("Sales")
SUPPORT = directory.group_dn("Support")
SALES_ROLE = "Sales Manager"
SUPPORT_ROLE = "Support"


def _ldif() -> str:
    people = "".join(directory.person_ldif(uid, pw) for uid, pw in PASSWORDS.items())
    people += directory.person_ldif("alice", "alice-Directory-1", mail="alice@example.com")
    people += directory.person_ldif("dan", "dan-Directory-1")  # in no mapped group
    groups = directory.group_ldif("Sales East", [directory.user_dn("bob")])
    groups += directory.group_ldif("Sales", [directory.user_dn("ada"), directory.group_dn("Sales East")])
    groups += directory.group_ldif("Support", [directory.user_dn(u) for u in ("cy", "eve", "alice")])
    groups += directory.group_ldif("Other", [directory.user_dn("dan")])
    return directory.base_ldif() + people + groups


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[directory.Slapd]:
    reason = directory.available()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    server = directory.make(tmp_path_factory.mktemp("slapd"), _ldif())
    yield server
    server.stop()


async def _setup(t: inprocess.InProcess, slapd: directory.Slapd, *, sync: bool = True, interval: str = "0") -> None:
    """Two roles, the provider (the bind password from the environment, stored encrypted), a sync;
    and a local admin `alice` (Administrators) whose name is also in the directory."""
    await t.create_role(["Magento_Sales::sales"], SALES_ROLE)
    await t.create_role(["Magento_Catalog::catalog"], SUPPORT_ROLE)
    await t.create_admin("alice")
    new = NewProvider(
        name="ad",
        issuer=slapd.url,
        client_id=directory.SERVICE_DN,
        client_secret=directory.SERVICE_PW,
        actor="admin",
        protocol="ldap",
        provisioning="jit",
        role_map={SALES: SALES_ROLE, SUPPORT: SUPPORT_ROLE},
        settings={
            "user_base": directory.PEOPLE,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
            "group_base": directory.GROUPS,
            "nested_groups": "1",
            "sync_interval": interval,
        },
    )
    await t.tk.services.identity_providers.add(OPERATOR, new)
    if sync:
        outcome = await t.tk.services.directory_sync.sync("ad")
        assert outcome.error is None, outcome
        # ada, bob (through Sales East), cy, eve; alice is a local admin's name: skipped, never linked.
        assert (outcome.created, outcome.deactivated, outcome.members) == (4, 0, 5)
        assert [s.split(":")[0] for s in outcome.skipped] == ["alice"]


async def _admin(t: inprocess.InProcess, username: str) -> accounts_repo.Admin:
    async with t.tk.db.session() as s:
        found = await accounts_repo.admin_by_username(s, username)
    assert found is not None
    return found


async def _role_of(t: inprocess.InProcess, username: str) -> str | None:
    admin = await _admin(t, username)
    async with t.tk.db.session() as s:
        role = await accounts_repo.role_by_id(s, admin.role_id) if admin.role_id else None
    return role.name if role else None


async def _token(t: inprocess.InProcess, username: str, password: str) -> tuple[int, object]:
    r = await t.client.post("/rest/V1/integration/admin/token", json={"username": username, "password": password})
    return r.status_code, r.json()


def test_directory_admins_sign_in_on_every_surface(tmp_path: Path, slapd: directory.Slapd) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd)
            assert await _role_of(t, "ada") == SALES_ROLE
            assert await _role_of(t, "bob") == SALES_ROLE  # a member of Sales East, inside Sales
            assert await _role_of(t, "cy") == SUPPORT_ROLE
            assert is_unusable((await _admin(t, "ada")).password_hash)  # no password stored here
            # Magento's admin token endpoint.
            status, token = await _token(t, "ada", PASSWORDS["ada"])
            assert status == 200, token
            assert (await t.client.get("/rest/V1/orders", headers=t.bearer(str(token)))).status_code == 200
            # The console.
            async with t.browser() as browser:
                t2 = inprocess.InProcess(t.tk, browser, t.clock, t.transport)
                r = await t2.console_sign_in("bob", PASSWORDS["bob"])
                assert r.status_code == 303 and "login" not in r.headers["location"], r.text
                assert (await browser.get("/console/")).status_code == 200
            # Medusa's emailpass, by email.
            r = await t.client.post(
                "/auth/user/emailpass", json={"email": "cy@corp.example", "password": PASSWORDS["cy"]}
            )
            assert r.status_code == 200, r.text
            # Still hashed nowhere after the sign-ins, and audited as any sign-in.
            assert is_unusable((await _admin(t, "ada")).password_hash)
            records = await t.tk.audit.search(AuditQuery(event="login.success", username="ada"))
            assert records

    inprocess.run(body)


def test_wrong_and_empty_passwords_are_refused_and_counted(tmp_path: Path, slapd: directory.Slapd) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd)
            assert (await _token(t, "ada", "wrong-password"))[0] == 401
            assert (await _token(t, "ada", PASSWORDS["bob"]))[0] == 401  # another user's password
            assert (await _token(t, "ada", ""))[0] in (400, 401)
            r = await t.client.post("/auth/user/emailpass", json={"email": "ada@corp.example", "password": "nope"})
            assert r.status_code == 401
            failures = await t.tk.audit.search(AuditQuery(event="login.failure", username="ada"))
            assert {json.loads(f.details or "{}").get("reason") for f in failures} == {"wrong password"}
        # An empty password never reaches a bind: no connection is even tried.
        config = wire.Config("ldap://127.0.0.1:9", "cn=x", "", "dc=x", "(uid={username})", "dc=x")
        conn = object.__new__(wire.Connection)
        conn.config = config
        assert conn.user_bind("uid=ada," + directory.PEOPLE, "") is False

    inprocess.run(body)


INJECTIONS = [
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "ada)(|(uid=*",
    "ada\x00",
    "ad*",
    "\u0430da",
    "ada)(objectClass=*",
    "ada\\",
]
FULLWIDTH = "\uff41\uff44\uff41"  # full-width "ada": the same as "ada" to the directory (RFC 4518 NFKC), not to Tillkey


def test_injection_in_the_username_finds_no_one(tmp_path: Path, slapd: directory.Slapd) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd)
            for name in INJECTIONS:
                status, _ = await _token(t, name, PASSWORDS["ada"])
                assert status in (400, 401), name
                r = await t.client.post("/auth/user/emailpass", json={"email": name, "password": PASSWORDS["ada"]})
                assert r.status_code in (400, 401), name
                # The directory itself, searched for the name: matched literally (RFC 4515), so no one.
                tested = await t.tk.services.directory.test("ad", name, PASSWORDS["ada"])
                assert tested.person is None and not tested.ok, (name, tested)
            # The directory's own string preparation folds full-width letters, so there it is ada's
            # entry (ada's own password works); the sign-in, keyed by Tillkey's names, refuses it.
            assert (await _token(t, FULLWIDTH, PASSWORDS["ada"]))[0] in (400, 401)
            folded = await t.tk.services.directory.test("ad", FULLWIDTH)
            assert folded.person is not None and folded.person.dn == directory.user_dn("ada")
            tested = await t.tk.services.directory.test("ad", "ada", PASSWORDS["ada"])
            assert tested.ok and tested.person is not None and tested.password_ok
            assert wire.escape("*)(uid=*") == "\\2a\\29\\28uid=\\2a"
            assert wire.escape("a\x00b\\") == "a\\00b\\5c"

    inprocess.run(body)


def test_group_change_moves_the_role_and_removal_deactivates(tmp_path: Path, slapd: directory.Slapd) -> None:
    ada, eve = directory.user_dn("ada"), directory.user_dn("eve")

    def move_ada(src: str, dst: str) -> None:
        slapd.modify(
            f"dn: {src}\nchangetype: modify\ndelete: member\nmember: {ada}\n\n"
            f"dn: {dst}\nchangetype: modify\nadd: member\nmember: {ada}\n"
        )

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd)
            status, token = await _token(t, "eve", PASSWORDS["eve"])
            assert status == 200
            eves = t.browser()  # eve's console session, which the removal must end
            r = await inprocess.InProcess(t.tk, eves, t.clock, t.transport).console_sign_in("eve", PASSWORDS["eve"])
            assert r.status_code == 303 and (await eves.get("/console/")).status_code == 200
            catalog = await t.client.get("/rest/V1/products", headers=t.bearer(str(token)))
            assert catalog.status_code == 200
            move_ada(SALES, SUPPORT)
            slapd.modify(f"dn: {SUPPORT}\nchangetype: modify\ndelete: member\nmember: {eve}\n")
            try:
                outcome = await t.tk.services.directory_sync.sync("ad")
                assert (outcome.created, outcome.updated, outcome.deactivated) == (0, 1, 1), outcome
                assert await _role_of(t, "ada") == SUPPORT_ROLE
                # eve: deactivated, her token refused, she cannot sign in; audited.
                assert not (await _admin(t, "eve")).is_active
                refused = await t.client.get("/rest/V1/products", headers=t.bearer(str(token)))
                assert refused.status_code == 401
                assert (await _token(t, "eve", PASSWORDS["eve"]))[0] == 401
                ended = await eves.get("/console/")
                assert ended.status_code in (302, 303) and "/console/login" in ended.headers["location"]
                await eves.aclose()
                synced = await t.tk.audit.search(AuditQuery(event="idp.synced"))
                assert json.loads(synced[0].details or "{}")["deactivated"] == 1
                health = (await t.tk.services.directory.health())["ad"]
                assert (health["updated"], health["deactivated"], health["last_error"]) == (1, 1, None)
            finally:
                move_ada(SUPPORT, SALES)
                slapd.modify(f"dn: {SUPPORT}\nchangetype: modify\nadd: member\nmember: {eve}\n")
            # Back in a mapped group: active again at the next sync.
            outcome = await t.tk.services.directory_sync.sync("ad")
            assert (outcome.updated, outcome.deactivated) == (2, 0), outcome
            assert (await _admin(t, "eve")).is_active and await _role_of(t, "ada") == SALES_ROLE
            # An operator's deactivation stands: only those the sync made are undone by it.
            await t.accounts.set_admin_active(OPERATOR, (await _admin(t, "cy")).id, False)
            outcome = await t.tk.services.directory_sync.sync("ad")
            assert (outcome.updated, outcome.deactivated) == (0, 0) and not (await _admin(t, "cy")).is_active

    inprocess.run(body)


def test_directory_down_is_a_503_and_local_accounts_are_unaffected(tmp_path: Path, slapd: directory.Slapd) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd)
            # alice is local (her directory namesake was skipped): her own password, not the directory's.
            assert (await _token(t, "alice", inprocess.ADMIN_PASSWORD))[0] == 200
            assert (await _token(t, "alice", "alice-Directory-1"))[0] == 401
            slapd.stop()
            try:
                r = await t.client.post(
                    "/rest/V1/integration/admin/token", json={"username": "ada", "password": PASSWORDS["ada"]}
                )
                assert r.status_code == 503, r.text
                assert "directory" in r.json()["message"].lower() and "SERVER_DOWN" not in r.text  # cause: log only
                r = await t.client.post("/auth/user/emailpass", json={"email": "ada@corp.example", "password": "x"})
                assert r.status_code == 503, r.text
                page = await t.console_sign_in("ada", PASSWORDS["ada"])  # the console's form says so
                assert "directory server is not reachable" in page.text, page.text
                assert (await _token(t, "alice", inprocess.ADMIN_PASSWORD))[0] == 200
                # A sync that cannot reach the directory deactivates no one and records why.
                outcome = await t.tk.services.directory_sync.sync("ad")
                assert outcome.error and outcome.deactivated == 0
                assert (await t.tk.services.directory.health())["ad"]["last_error"]
                assert not (await t.tk.services.directory.test("ad")).ok
            finally:
                slapd.start()
            assert (await _token(t, "ada", PASSWORDS["ada"]))[0] == 200

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_two_syncs_at_once_one_wins(
    backend: str, tmp_path: Path, slapd: directory.Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run holds the lease while it reads the directory (held there by the test); a
    second run then finds the lease taken and returns at once; a holder that died loses its lease
    when it expires."""
    real_run = wire.run

    async def body() -> None:
        gate = asyncio.Event()

        async def held(config: wire.Config, work: Any) -> Any:
            await gate.wait()
            return await real_run(config, work)

        with inprocess.database(backend, tmp_path) as db:
            async with inprocess.running(tmp_path, **db) as t:
                await _setup(t, slapd, sync=False)
                sync = t.tk.services.directory_sync.sync
                monkeypatch.setattr(wire, "run", held)
                first = asyncio.create_task(sync("ad"))
                await until(lambda: _running(t), what="the first run holds the lease")
                second = await sync("ad")
                assert not second.ran and second.created == 0
                gate.set()
                winner = await first
                assert winner.ran and winner.created == 4
                async with t.tk.db.session() as s:
                    admins = [a for a in await accounts_repo.list_admins(s) if a.username != "alice"]
                assert len(admins) == 4  # nobody made twice
                # The lease is released: the next run runs (and changes nothing).
                again = await sync("ad")
                assert again.ran and (again.created, again.updated, again.deactivated) == (0, 0, 0)
                # A holder that died: its lease expires, then another run takes over.
                provider_id = (await t.tk.services.identity_providers.get("ad")).id
                async with t.tk.db.transaction() as s:
                    now = int(t.clock.now() * 1000)
                    assert await syncs_repo.take_lease(s, provider_id, "dead", now, now + 60_000)
                assert not (await sync("ad")).ran
                t.advance(61)
                assert (await sync("ad")).ran

    inprocess.run(body)


async def _running(t: inprocess.InProcess) -> bool:
    return bool((await t.tk.services.directory.health())["ad"]["running"])


def test_cli_add_test_sync_and_console_health(
    tmp_path: Path, slapd: directory.Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AD_BIND_PASSWORD", directory.SERVICE_PW)
    monkeypatch.setenv("ADA_PASSWORD", PASSWORDS["ada"])

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_role(["Magento_Sales::sales"], SALES_ROLE)
            added = await inprocess.cli_json(
                "idp",
                "add",
                "--name",
                "corp",
                "--protocol",
                "ldap",
                "--actor",
                "admin",
                "--url",
                slapd.url,
                "--bind-dn",
                directory.SERVICE_DN,
                "--bind-password-env",
                "AD_BIND_PASSWORD",
                "--user-base",
                directory.PEOPLE,
                "--user-filter",
                "(uid={username})",
                "--group-base",
                directory.GROUPS,
                "--nested-groups",
                "--role-map",
                f"{SALES}={SALES_ROLE}",
                "--sync-interval",
                "0",
            )
            assert added["protocol"] == "ldap" and added["has_client_secret"]
            assert directory.SERVICE_PW not in str(added)
            tested = await inprocess.cli_json(
                "idp", "test", "corp", "--username", "ada", "--password-env", "ADA_PASSWORD"
            )
            assert tested["ok"] and tested["user_dn"] == directory.user_dn("ada")
            synced = await inprocess.cli_json("idp", "sync", "corp")
            assert (synced["ran"], synced["created"], synced["error"]) == (True, 2, None)
            shown = await inprocess.cli_json("idp", "show", "corp")
            assert (shown["sync"]["created"], shown["sync"]["last_error"]) == (2, None)
            # A new map: saved like an OpenID provider's (delegation, sign-out), applied by the next sync.
            await t.create_role(["Magento_Catalog::catalog"], SUPPORT_ROLE)
            await inprocess.cli("idp", "update", "corp", "--role-map", f"{SALES}={SUPPORT_ROLE}")
            again = await inprocess.cli_json("idp", "sync", "corp")
            assert (again["created"], again["updated"]) == (0, 2)
            assert await _role_of(t, "ada") == SUPPORT_ROLE
            bad = await inprocess.cli(
                "idp",
                "add",
                "--name",
                "bad",
                "--protocol",
                "ldap",
                "--actor",
                "admin",
                "--url",
                "http://x",
                "--bind-dn",
                "cn=x",
                "--bind-password-env",
                "AD_BIND_PASSWORD",
                "--user-base",
                "dc=x",
                "--group-base",
                "dc=x",
                check=False,
            )
            assert bad.exit_code == 1 and "ldap://" in bad.stderr
            admin = await t.create_admin("root")
            console = await t.console_session(admin.id)
            page = await console.get("/console/idps")
            assert page.status_code == 200 and "corp" in page.text and "created 0, updated 2" in page.text, page.text

    inprocess.run(body)


def test_start_tls_verifies_the_directory_certificate(tmp_path: Path, slapd: directory.Slapd) -> None:
    """StartTLS with the directory's own CA works; trusting only the system's CAs, the same server
    is refused (certificate verification is on), which a sign-in answers with a 503."""

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await _setup(t, slapd, sync=False)
            for name, ca in (("tls", str(slapd.dir / "ca.pem")), ("untrusted", "")):
                new = NewProvider(
                    name=name,
                    issuer=slapd.url,
                    client_id=directory.SERVICE_DN,
                    client_secret=directory.SERVICE_PW,
                    actor="admin",
                    protocol="ldap",
                    role_map={SALES: SALES_ROLE},
                    settings={
                        "user_base": directory.PEOPLE,
                        "user_filter": "(uid={username})",
                        "group_base": directory.GROUPS,
                        "start_tls": "1",
                        "tls_ca_file": ca,
                        "sync_interval": "0",
                    },
                )
                await t.tk.services.identity_providers.add(OPERATOR, new)
            trusted = await t.tk.services.directory.test("tls", "ada", PASSWORDS["ada"])
            assert trusted.ok and trusted.password_ok, trusted
            refused = await t.tk.services.directory.test("untrusted", "ada", PASSWORDS["ada"])
            assert not refused.ok and "CONNECT_ERROR" in refused.detail, refused
            synced = await t.tk.services.directory_sync.sync("tls")
            # Without nested groups: ada only (bob is in Sales East, a group inside Sales).
            assert (synced.error, synced.created, synced.members) == (None, 1, 1)
            assert (await _token(t, "ada", PASSWORDS["ada"]))[0] == 200

    inprocess.run(body)


def test_customer_directory_over_the_admin_api_synced_when_due(tmp_path: Path, slapd: directory.Slapd) -> None:
    """B2B buyers kept in a directory: a customer provider added over the admin API, synced by the
    server's schedule (`due`, what its background task calls, judged by the injected clock), its
    customers signing in with their directory password on Medusa's and Magento's customer routes."""

    async def body() -> None:
        async with inprocess.running(tmp_path, directory_sync_tick=0) as t:  # the test calls `due`
            t.freeze()
            await _setup(t, slapd, sync=False)  # its admin provider syncs only on demand (interval 0)
            admin = await t.create_admin("root", email="root@shop.example")
            token = await t.token_for(UserType.ADMIN, admin.id)
            body = {
                "name": "buyers",
                "protocol": "ldap",
                "actor": "customer",
                "issuer": slapd.url,
                "client_id": directory.SERVICE_DN,
                "client_secret": directory.SERVICE_PW,
                "user_base": directory.PEOPLE,
                "user_filter": "(&(objectClass=inetOrgPerson)(mail={username}))",
                "group_base": directory.GROUPS,
                "sync_interval": "300",
            }
            r = await t.client.post("/tillkey/v1/idps", json=body, headers=t.bearer(token))
            assert r.status_code == 201, r.text
            assert r.json()["has_client_secret"] and directory.SERVICE_PW not in r.text
            ran = await t.tk.services.directory_sync.due()
            assert [(o.provider, o.created) for o in ran] == [("buyers", 6)]  # every user of the filter
            assert await t.tk.services.directory_sync.due() == []  # not due again yet
            t.advance(301)
            assert [(o.provider, o.created, o.updated) for o in await t.tk.services.directory_sync.due()] == [
                ("buyers", 0, 0)
            ]
            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "ada@corp.example", "password": PASSWORDS["ada"]}
            )
            assert r.status_code == 200, r.text
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": "cy@corp.example", "password": PASSWORDS["cy"]}
            )
            assert r.status_code == 200, r.text
            r = await t.client.post(
                "/rest/V1/integration/customer/token", json={"username": "cy@corp.example", "password": "wrong"}
            )
            assert r.status_code == 401

    inprocess.run(body)


def test_second_factor_and_lockout_apply_to_directory_accounts(tmp_path: Path, slapd: directory.Slapd) -> None:
    """The directory is only the first factor: an admin's TOTP is still asked (Magento's 2FA
    provider endpoint), and wrong directory passwords lock the account as local ones do (then even
    the right one is refused)."""

    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional", admin_lockout_failures=3) as t:
            t.freeze()
            await _setup(t, slapd)
            ada = await _admin(t, "ada")
            secret, _codes = await t.enable_totp(ada.id)
            status, said = await _token(t, "ada", PASSWORDS["ada"])
            assert status in (400, 401) and "2fa" in str(said).lower(), said
            r = await t.client.post(
                "/rest/V1/tfa/provider/google/authenticate",
                json={"username": "ada", "password": PASSWORDS["ada"], "otp": t.totp_code(secret)},
            )
            assert r.status_code == 200, r.text
            claims = await t.tk.authenticator.read(str(r.json()))
            assert claims.auth_methods == ("pwd", "otp")
            for _ in range(3):
                assert (await _token(t, "cy", "wrong"))[0] == 401
            assert (await _token(t, "cy", PASSWORDS["cy"]))[0] == 401  # locked
            locked = await t.tk.audit.search(AuditQuery(event="account.locked", username="cy"))
            assert locked

    inprocess.run(body)


def test_the_server_syncs_in_the_background(tmp_path: Path, slapd: directory.Slapd) -> None:
    """The server's own task (TILLKEY_DIRECTORY_SYNC_TICK) runs a provider whose interval passed,
    with no command: its members appear without anyone asking."""

    async def body() -> None:
        async with inprocess.running(tmp_path, directory_sync_tick=1) as t:
            await _setup(t, slapd, sync=False, interval="1")
            health = await until(lambda: _synced(t), within=20, what="the background task synced the directory")
            assert (health["created"], health["last_error"]) == (4, None)

    inprocess.run(body)


async def _synced(t: inprocess.InProcess) -> dict[str, Any] | None:
    health = (await t.tk.services.directory.health())["ad"]
    return health if health["last_ok_ms"] else None
