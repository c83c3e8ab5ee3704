"""The `tillkey` CLI: non-interactive, one-line errors, exit codes, --json output.

The CLI runs in this process (`typer.testing.CliRunner`) on a SQLite file of the module's own: it
works on the database directly and needs no server. Process-level behaviour (the console script,
signals) is covered by the tests that start `tillkey serve`."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import ADMIN_PASSWORD, FAST_HASHING
from tillkey.cli import app


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory (and SQLite database) shared by the module, as the subprocess CLI had."""
    path = tmp_path_factory.mktemp("cli")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("TILLKEY_"):
            del os.environ[name]
    os.environ.update({**FAST_HASHING, "TILLKEY_DATA_DIR": str(path)})
    try:
        yield path
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cli(*args: str, check: bool = True) -> Result:
    res = CliRunner().invoke(app, list(args))
    if check and res.exit_code != 0:
        raise AssertionError(f"tillkey {' '.join(args)} failed ({res.exit_code}): {res.stderr}{res.exception!r}")
    return res


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("short1!", "at least 8 characters"),
        ("password123", "too common"),
        ("aaaaaaaaaaaa", "too common or too simple"),
        ("xx-grace-xx-99", "must not contain the username"),
    ],
)
def test_weak_passwords_are_refused_with_a_clear_message(data_dir: Path, password: str, reason: str) -> None:
    res = cli("admin", "create", "--username", "grace", "--email", "g@example.com", "--password", password, check=False)
    assert res.exit_code == 1
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]


def test_admin_create_json_and_default_role(data_dir: Path) -> None:
    admin = cli_json(
        "admin",
        "create",
        "--username",
        "Heidi",
        "--email",
        "heidi@example.com",
        "--password",
        ADMIN_PASSWORD,
        "--first-name",
        "Heidi",
    )
    assert admin["username"] == "Heidi" and admin["is_active"] is True
    assert "password_hash" not in admin and ADMIN_PASSWORD not in json.dumps(admin)
    listed = cli_json("admin", "list")["admins"]
    assert {"username": "Heidi", "role": "Administrators"}.items() <= next(
        a for a in listed if a["username"] == "Heidi"
    ).items()
    # usernames are unique regardless of case
    dup = cli(
        "admin",
        "create",
        "--username",
        "heidi",
        "--email",
        "x@example.com",
        "--password",
        ADMIN_PASSWORD,
        check=False,
    )
    assert dup.exit_code == 1 and "already exists" in dup.stderr


def test_password_is_stored_as_argon2id(data_dir: Path) -> None:
    cli(
        "customer",
        "create",
        "--email",
        "ivan@example.com",
        "--password",
        "Ivan-pass-2026",
        "--first-name",
        "Ivan",
        "--last-name",
        "I",
    )
    with sqlite3.connect(data_dir / "tillkey.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM customers WHERE email = 'ivan@example.com'").fetchone()
    assert stored.startswith("$argon2id$")
    assert "Ivan-pass-2026" not in stored


def test_roles(data_dir: Path) -> None:
    role = cli_json("role", "create", "Sales", "--resource", "Magento_Sales::sales")
    assert role["resources"] == ["Magento_Sales::sales"] and role["builtin"] is False
    role = cli_json("role", "grant", "Sales", "--resource", "Magento_Customer::customer")
    assert role["resources"] == ["Magento_Customer::customer", "Magento_Sales::sales"]
    roles = {r["name"]: r for r in cli_json("role", "list")["roles"]}
    assert roles["Administrators"]["resources"] == ["Magento_Backend::all"]
    assert roles["Administrators"]["builtin"] is True
    bad = cli("role", "grant", "Sales", "--resource", "Magento_Nope::x", check=False)
    assert bad.exit_code == 1 and "Unknown resource" in bad.stderr
    missing = cli(
        "admin",
        "create",
        "--username",
        "judy",
        "--email",
        "j@example.com",
        "--password",
        ADMIN_PASSWORD,
        "--role",
        "NoSuchRole",
        check=False,
    )
    assert missing.exit_code == 1 and "NoSuchRole" in missing.stderr
    tree = cli("role", "resources").stdout
    assert "Magento_Catalog::products" in tree and "Tillkey::auth_state" in tree


def test_invalid_email_and_missing_names(data_dir: Path) -> None:
    res = cli(
        "customer",
        "create",
        "--email",
        "not-an-email",
        "--password",
        "Good-pass-2026",
        "--first-name",
        "A",
        "--last-name",
        "B",
        check=False,
    )
    assert res.exit_code == 1 and "not a valid email" in res.stderr
    res = cli(
        "customer",
        "create",
        "--email",
        "ok@example.com",
        "--password",
        "Good-pass-2026",
        "--first-name",
        " ",
        "--last-name",
        "B",
        check=False,
    )
    assert res.exit_code == 1 and "first name" in res.stderr


def test_demo_seed_prints_what_it_created_and_is_idempotent(data_dir: Path) -> None:
    created = cli_json("demo", "seed")
    assert len(created["products"]) == 8
    assert [c["email"] for c in created["customers"]] == ["roni_cost@example.com", "john.smith@example.com"]
    assert all(len(c["password"]) >= 16 for c in created["customers"])  # random, shown once
    assert len(created["orders"]) == 2
    again = cli_json("demo", "seed")
    assert again == {"products": [], "customers": [], "orders": []}
    human = cli("demo", "seed").stdout
    assert "already there" in human


def test_missing_required_option_is_an_error(data_dir: Path) -> None:
    res = cli("admin", "create", "--username", "x", check=False)
    assert res.exit_code != 0
