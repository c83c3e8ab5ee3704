"""`tillkey idp` (issue 14): providers as data, managed from the CLI; the client secret stored
encrypted and never printed; role maps within the delegation rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from tests import inprocess
from tillkey.access.delegation import DelegationRefused
from tillkey.errors import InvalidRequest
from tillkey.federation.providers import NewProvider
from tillkey.store import idps as repo
from tillkey.store.models import IdentityProviderRow

SECRET = "cli-secret-never-printed-0123456789"


def test_idp_add_list_show_disable_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS", "true")
    monkeypatch.setenv("CORP_SECRET", SECRET)

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await t.create_role(["Magento_Catalog::products"], name="catalog")
            added = await inprocess.cli(
                "idp",
                "add",
                "--name",
                "corp",
                "--protocol",
                "oidc",
                "--issuer",
                "http://127.0.0.1:9/op",
                "--client-id",
                "tillkey",
                "--client-secret-env",
                "CORP_SECRET",
                "--actor",
                "admin",
                "--scope",
                "openid email profile groups",
                "--groups-claim",
                "groups",
                "--role-map",
                "shop-staff=catalog",
                "--provision",
                "jit",
                "--allowed-domain",
                "corp.example",
                "--json",
            )
            assert SECRET not in added.stdout
            shown = await inprocess.cli_json("idp", "show", "corp")
            assert shown["has_client_secret"] is True and shown["role_map"] == {"shop-staff": "catalog"}
            assert shown["redirect_uri"].endswith("/console/login/idp/corp/callback")
            async with t.tk.db.session() as s:
                stored = await repo.by_name(s, "corp")
            assert stored is not None and stored.client_secret_enc is not None
            assert SECRET.encode() not in stored.client_secret_enc  # encrypted at rest
            assert t.tk.services.identity_providers.client_secret(stored) == SECRET
            listed = await inprocess.cli_json("idp", "list")
            assert [p["name"] for p in listed["providers"]] == ["corp"] and SECRET not in str(listed)
            # Nothing answers at the issuer: `idp test` says so, exit 1.
            tested = await inprocess.cli("idp", "test", "corp", "--json", check=False)
            assert tested.exit_code == 1 and '"ok": false' in tested.stdout
            assert (await inprocess.cli_json("idp", "disable", "corp"))["enabled"] is False
            removed = await inprocess.cli_json("idp", "remove", "corp")
            assert removed["removed"] is True
            assert (await inprocess.cli_json("idp", "list"))["providers"] == []
            # Unknown roles and bad input: one clear line, exit 1.
            bad = await inprocess.cli(
                "idp",
                "add",
                "--name",
                "x",
                "--issuer",
                "http://127.0.0.1:9",
                "--client-id",
                "c",
                "--actor",
                "admin",
                "--role-map",
                "g=nosuchrole",
                check=False,
            )
            assert bad.exit_code == 1 and "nosuchrole" in bad.stderr

    inprocess.run(body)


def test_a_role_map_is_delegation(tmp_path: Path) -> None:
    """Whoever saves a provider hands its roles to whoever the provider vouches for: only roles
    within their own grant."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await t.create_role(["Magento_Backend::all"], name="everything")
            small = await t.create_admin("small", resources=["Magento_Catalog::products"])
            acting = t.tk.grants.admin(small.id)
            new = NewProvider(
                name="corp", issuer="http://127.0.0.1:9", client_id="c", actor="admin", role_map={"g": "everything"}
            )
            with pytest.raises(DelegationRefused):
                await t.tk.services.identity_providers.add(acting, new)
            with pytest.raises(InvalidRequest):  # the issuer's address is checked (SSRF guard) …
                await t.tk.services.identity_providers.add(
                    acting,
                    NewProvider(
                        name="ok",
                        issuer="ftp://x",
                        client_id="c",
                        actor="admin",
                    ),
                )

    inprocess.run(body)


def test_private_issuers_are_refused_unless_allowed(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            from tillkey.access.delegation import OPERATOR

            for issuer in ("http://127.0.0.1:9", "https://169.254.169.254/", "https://localhost/"):
                with pytest.raises(InvalidRequest):
                    await t.tk.services.identity_providers.add(
                        OPERATOR,
                        NewProvider(
                            name="corp",
                            issuer=issuer,
                            client_id="c",
                            actor="customer",
                            redirect_uri="https://shop.example/cb",
                        ),
                    )

    inprocess.run(body)


def test_idp_update_keeps_the_operators_order_and_reads_older_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first listed group wins, so the map keeps its order (a JSON object sorted by key lost
    it); rows written before options existed still read; bad updates are one clear line."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("TILLKEY_FEDERATION_ALLOW_PRIVATE_ENDPOINTS", "true")

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            for role in ("zeta", "alpha"):
                await t.create_role(["Magento_Catalog::products"], name=role)
            await inprocess.cli(
                "idp",
                "add",
                "--name",
                "corp",
                "--issuer",
                "http://127.0.0.1:9/op",
                "--client-id",
                "c",
                "--actor",
                "admin",
                "--role-map",
                "z-group=zeta",
                "--role-map",
                "a-group=alpha",
            )
            shown = await inprocess.cli_json("idp", "show", "corp")
            assert list(shown["role_map"].items()) == [("z-group", "zeta"), ("a-group", "alpha")]
            assert shown["userinfo"] is False
            updated = await inprocess.cli_json(
                "idp",
                "update",
                "corp",
                "--role-map",
                "a-group=alpha",
                "--role-map",
                "z-group=zeta",
                "--default-role",
                "zeta",
                "--userinfo",
            )
            assert list(updated["role_map"]) == ["a-group", "z-group"] and updated["default_role"] == "zeta"
            assert updated["userinfo"] is True
            cleared = await inprocess.cli_json("idp", "update", "corp", "--no-role-map", "--default-role", "")
            assert cleared["role_map"] == {} and cleared["default_role"] is None and cleared["userinfo"] is True
            bad = await inprocess.cli("idp", "update", "corp", "--default-role", "nosuchrole", check=False)
            assert bad.exit_code == 1 and "nosuchrole" in bad.stderr
            assert (await inprocess.cli("idp", "update", "nope", "--userinfo", check=False)).exit_code == 1
            # A row as migration 0014's code wrote it: a plain {"group": "role"} object.
            async with t.tk.db.transaction() as s:
                await s.execute(update(IdentityProviderRow).values(role_map=json.dumps({"map": "zeta", "b": "alpha"})))
            async with t.tk.db.session() as s:
                old = await repo.by_name(s, "corp")
            assert old is not None and old.role_map == {"map": "zeta", "b": "alpha"} and old.userinfo is False

    inprocess.run(body)
