"""Account commands an operator runs: passwords never on the command line (prompt or stdin), the
operator's password reset, role rename and delete. The CLI runs in this process (CliRunner)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests import inprocess
from tests.conftest import FAST_HASHING
from tillkey.access.delegation import OPERATOR
from tillkey.cli import app

PASSWORD = "Operator-set-2026"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TILLKEY_"):
            monkeypatch.delenv(name)
    for name, value in {**FAST_HASHING, "TILLKEY_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    return res.output


def create_admin(name: str, role: str | None = None) -> None:
    more = ["--role", role] if role else []
    ok(
        cli(
            "admin",
            "create",
            "--username",
            name,
            "--email",
            f"{name}@example.com",
            "--password-stdin",
            *more,
            input=PASSWORD + "\n",
        )
    )


def can_log_in(tmp_path: Path, username: str, password: str) -> bool:
    async def body() -> bool:
        settings = {**inprocess.FAST_SETTINGS, "data_dir": tmp_path}
        async with inprocess.running(tmp_path, **settings) as t:
            body = {"username": username, "password": password}
            r = await t.client.post("/rest/V1/integration/admin/token", json=body)
            return r.status_code == 200

    return inprocess.run(body)


def test_the_password_is_prompted_for_hidden_and_confirmed(tmp_path: Path) -> None:
    res = cli(
        "admin",
        "create",
        "--username",
        "ann",
        "--email",
        "ann@example.com",
        "--json",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    ok(res)
    assert PASSWORD not in res.output  # hidden: not echoed
    assert "Repeat for confirmation" in res.output
    created = json.loads(res.output.strip().splitlines()[-1])
    assert created["username"] == "ann"
    # a mismatch is asked again; running out of input is one error line, nothing created
    res = cli("admin", "create", "--username", "bob", "--email", "bob@example.com", input=f"{PASSWORD}\nother\n")
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1].startswith("error: no password given")
    assert "bob" not in ok(cli("admin", "list"))


def test_password_stdin_on_every_command_that_takes_one(tmp_path: Path) -> None:
    create_admin("carl")
    ok(
        cli(
            "customer",
            "create",
            "--email",
            "c@example.com",
            "--first-name",
            "C",
            "--last-name",
            "D",
            "--password-stdin",
            input=PASSWORD + "\n",
        )
    )
    ok(cli("admin", "password", "carl", "--password-stdin", input="Brand-new-pass-77\n"))
    assert can_log_in(tmp_path, "carl", "Brand-new-pass-77")
    empty = cli("admin", "password", "carl", "--password-stdin", input="")
    assert empty.exit_code == 1 and "standard input is empty" in empty.output
    both = cli("admin", "password", "carl", "--password", "x", "--password-stdin", input="y\n")
    assert both.exit_code == 1 and "not both" in both.output


def test_the_operator_resets_a_password_and_the_old_one_and_its_tokens_die(tmp_path: Path) -> None:
    create_admin("dora")

    async def token() -> str:
        async with inprocess.running(tmp_path, **{**inprocess.FAST_SETTINGS, "data_dir": tmp_path}) as t:
            return await t.admin_token("dora", PASSWORD)

    old_token = inprocess.run(token)
    weak = cli("admin", "password", "dora", "--password-stdin", input="dora-dora\n")
    assert weak.exit_code == 1 and "error:" in weak.output  # the password policy applies to resets too
    ok(cli("admin", "password", "dora", input="Reset-by-operator-1\nReset-by-operator-1\n"))
    assert not can_log_in(tmp_path, "dora", PASSWORD)
    assert can_log_in(tmp_path, "dora", "Reset-by-operator-1")

    async def old_token_works() -> int:
        async with inprocess.running(tmp_path, **{**inprocess.FAST_SETTINGS, "data_dir": tmp_path}) as t:
            r = await t.client.get("/rest/V1/store/websites", headers=t.bearer(old_token))
            return r.status_code

    assert inprocess.run(old_token_works) == 401
    missing = cli("admin", "password", "nobody", "--password-stdin", input=PASSWORD + "\n")
    assert missing.exit_code == 1 and "no admin named 'nobody'" in missing.output
    assert "password reset" in ok(cli("audit", "search", "--event", "account.changed", "--json"))


def test_roles_are_renamed_and_deleted_only_when_nobody_has_them() -> None:
    made = ok(cli("role", "create", "Catalog", "-r", "Magento_Catalog::catalog", "-r", "Magento_Sales::sales"))
    assert "Magento_Catalog::catalog, Magento_Sales::sales" in made and "('" not in made  # not a Python tuple
    ok(cli("role", "revoke", "Catalog", "-r", "Magento_Sales::sales"))
    create_admin("erin", role="Catalog")
    renamed = json.loads(ok(cli("role", "rename", "Catalog", "Merchandising", "--json")))
    assert renamed["name"] == "Merchandising" and renamed["resources"] == ["Magento_Catalog::catalog"]
    assert json.loads(ok(cli("admin", "list", "--json")))["admins"][0]["role"] == "Merchandising"

    held = cli("role", "delete", "Merchandising")
    assert held.exit_code == 1 and "assigned to 1 admin(s) (erin)" in held.output
    ok(cli("admin", "assign-role", "erin", "Administrators"))
    ok(cli("role", "delete", "Merchandising"))
    names = [r["name"] for r in json.loads(ok(cli("role", "list", "--json")))["roles"]]
    assert names == ["Administrators"]

    for command in (["role", "delete", "Administrators"], ["role", "rename", "Administrators", "Admins"]):
        res = cli(*command)
        assert res.exit_code == 1 and "built-in role" in res.output
    assert "There is no role named 'Nope'" in cli("role", "delete", "Nope").output
    ok(cli("role", "create", "Sales"))
    assert "already exists" in cli("role", "rename", "Sales", "Administrators").output


def test_deleting_a_role_reaches_a_running_server(tmp_path: Path) -> None:
    """The admin's grant never came from a deleted role: delete is refused while assigned, so the
    running server's view can't go stale; a rename changes nothing anyone may do."""

    async def body() -> None:
        settings = {**inprocess.FAST_SETTINGS, "data_dir": tmp_path}
        async with inprocess.running(tmp_path, **settings) as t:
            await t.accounts.create_role(OPERATOR, "Viewers", ["Magento_Catalog::products"])
            await t.accounts.create_admin(
                OPERATOR, username="fay", email="fay@example.com", password=PASSWORD, role="Viewers"
            )
            token = await t.admin_token("fay", PASSWORD)
            await t.accounts.rename_role(OPERATOR, "Viewers", "Readers")
            r = await t.client.get("/rest/V1/products", headers=t.bearer(token))
            assert r.status_code == 200
            with pytest.raises(Exception, match="assigned to 1 admin"):
                await t.accounts.delete_role(OPERATOR, "Readers")

    inprocess.run(body)
