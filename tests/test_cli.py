"""The `tillkey` CLI: non-interactive, one-line errors, exit codes, --json output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import Database

    # The CLI needs no running server: it works on the database directly.
    return Server(tmp_path_factory.mktemp("cli"), Database(""))


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
def test_weak_passwords_are_refused_with_a_clear_message(srv: Server, password: str, reason: str) -> None:
    res = srv.cli("admin", "create", "--username", "grace", "--email", "g@example.com", "--password", password,
                  check=False)  # fmt: skip
    assert res.returncode == 1
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]


def test_admin_create_json_and_default_role(srv: Server) -> None:
    admin = srv.cli_json("admin", "create", "--username", "Heidi", "--email", "heidi@example.com",
                         "--password", ADMIN_PASSWORD, "--first-name", "Heidi")  # fmt: skip
    assert admin["username"] == "Heidi" and admin["is_active"] is True
    assert "password_hash" not in admin and ADMIN_PASSWORD not in json.dumps(admin)
    listed = srv.cli_json("admin", "list")["admins"]
    assert {"username": "Heidi", "role": "Administrators"}.items() <= next(
        a for a in listed if a["username"] == "Heidi"
    ).items()
    # usernames are unique regardless of case
    dup = srv.cli("admin", "create", "--username", "heidi", "--email", "x@example.com", "--password", ADMIN_PASSWORD,
                  check=False)  # fmt: skip
    assert dup.returncode == 1 and "already exists" in dup.stderr


def test_password_is_stored_as_argon2id(srv: Server) -> None:
    import sqlite3

    srv.cli("customer", "create", "--email", "ivan@example.com", "--password", "Ivan-pass-2026",
            "--first-name", "Ivan", "--last-name", "I")  # fmt: skip
    with sqlite3.connect(srv.data_dir / "tillkey.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM customers WHERE email = 'ivan@example.com'").fetchone()
    assert stored.startswith("$argon2id$")
    assert "Ivan-pass-2026" not in stored


def test_roles(srv: Server) -> None:
    role = srv.cli_json("role", "create", "Sales", "--resource", "Magento_Sales::sales")
    assert role["resources"] == ["Magento_Sales::sales"] and role["builtin"] is False
    role = srv.cli_json("role", "grant", "Sales", "--resource", "Magento_Customer::customer")
    assert role["resources"] == ["Magento_Customer::customer", "Magento_Sales::sales"]
    roles = {r["name"]: r for r in srv.cli_json("role", "list")["roles"]}
    assert roles["Administrators"]["resources"] == ["Magento_Backend::all"]
    assert roles["Administrators"]["builtin"] is True
    bad = srv.cli("role", "grant", "Sales", "--resource", "Magento_Nope::x", check=False)
    assert bad.returncode == 1 and "Unknown resource" in bad.stderr
    missing = srv.cli("admin", "create", "--username", "judy", "--email", "j@example.com", "--password",
                      ADMIN_PASSWORD, "--role", "NoSuchRole", check=False)  # fmt: skip
    assert missing.returncode == 1 and "NoSuchRole" in missing.stderr
    tree = srv.cli("role", "resources").stdout
    assert "Magento_Catalog::products" in tree and "Tillkey::auth_state" in tree


def test_invalid_email_and_missing_names(srv: Server) -> None:
    res = srv.cli("customer", "create", "--email", "not-an-email", "--password", "Good-pass-2026",
                  "--first-name", "A", "--last-name", "B", check=False)  # fmt: skip
    assert res.returncode == 1 and "not a valid email" in res.stderr
    res = srv.cli("customer", "create", "--email", "ok@example.com", "--password", "Good-pass-2026",
                  "--first-name", " ", "--last-name", "B", check=False)  # fmt: skip
    assert res.returncode == 1 and "first name" in res.stderr


def test_demo_seed_prints_what_it_created_and_is_idempotent(srv: Server) -> None:
    created = srv.cli_json("demo", "seed")
    assert len(created["products"]) == 8
    assert [c["email"] for c in created["customers"]] == ["roni_cost@example.com", "john.smith@example.com"]
    assert all(len(c["password"]) >= 16 for c in created["customers"])  # random, shown once
    assert len(created["orders"]) == 2
    again = srv.cli_json("demo", "seed")
    assert again == {"products": [], "customers": [], "orders": []}
    human = srv.cli("demo", "seed").stdout
    assert "already there" in human


def test_missing_required_option_is_an_error(srv: Server) -> None:
    res = srv.cli("admin", "create", "--username", "x", check=False)
    assert res.returncode != 0
