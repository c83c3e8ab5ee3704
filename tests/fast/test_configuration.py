"""Configuration as an operator meets it: one `error:` line for every mistake, the CLI and the
server agreeing on where the data is, the TOML file and .env, `config show|check`, `secret generate`.

The CLI runs in this process (typer's CliRunner); the environment is what the runner passes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import FAST_HASHING, need_postgres
from tillkey.cli import app

STRONG_SECRET = "Jq3v9-Xk2LwZr8TnB4sYp6HdF1cMe7GuA5oViKxN0tQyRjWb"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TILLKEY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TILLKEY_CONFIG", "")  # restored after the test, as --config sets it
    for name, value in FAST_HASHING.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=input)


def one_error_line(res: Result) -> str:
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def data_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"TILLKEY_DATA_DIR": str(tmp_path / "data"), **more}


# --- one line per mistake ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "not a database URL"),
        ("postgresql://app:hunter2@127.0.0.1/tillkey", "use postgresql+asyncpg://"),
        ("mysql+aiomysql://app:hunter2@db/tillkey", "is not supported"),
        ("postgresql+asyncpg://app:hunter2@127.0.0.1", "names no database"),
    ],
)
def test_an_unusable_database_url_is_one_line_without_its_password(tmp_path: Path, url: str, says: str) -> None:
    for command in (["admin", "list"], ["db", "upgrade"], ["serve"]):
        line = one_error_line(cli(*command, env=data_env(tmp_path, TILLKEY_DATABASE_URL=url)))
        assert says in line and "TILLKEY_DATABASE_URL" in line
        assert "hunter2" not in line


def test_a_missing_postgres_database_or_role_says_what_to_create(tmp_path: Path) -> None:
    need_postgres()
    missing_db = "postgresql+asyncpg://postgres:hunter2@127.0.0.1:5432/tillkey_no_such_db"
    for command in (["admin", "list"], ["serve"]):
        line = one_error_line(cli(*command, env=data_env(tmp_path, TILLKEY_DATABASE_URL=missing_db)))
        assert 'database "tillkey_no_such_db" does not exist' in line and "createdb" in line
        assert "hunter2" not in line
    missing_role = "postgresql+asyncpg://tillkey_no_such_role@127.0.0.1:5432/postgres"
    line = one_error_line(cli("admin", "list", env=data_env(tmp_path, TILLKEY_DATABASE_URL=missing_role)))
    assert 'role "tillkey_no_such_role" does not exist' in line


def test_nothing_listens_on_the_database_port(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:9/tillkey"
    line = one_error_line(cli("admin", "list", env=data_env(tmp_path, TILLKEY_DATABASE_URL=url)))
    assert line.startswith("error: cannot reach the database (postgresql+asyncpg://postgres@127.0.0.1:9/tillkey)")


@pytest.mark.parametrize(
    ("secret", "says"),
    [("too-short", "at least 32 characters"), ("ab" * 20, "not random text")],
)
def test_a_weak_secret_key_is_refused(tmp_path: Path, secret: str, says: str) -> None:
    for command in (["admin", "list"], ["serve"], ["config", "show"]):
        line = one_error_line(cli(*command, env=data_env(tmp_path, TILLKEY_SECRET_KEY=secret)))
        assert says in line and "tillkey secret generate" in line and secret not in line


def test_a_generated_secret_is_accepted(tmp_path: Path) -> None:
    secret = cli("secret", "generate").output.strip()
    assert len(secret) == 64 and secret != cli("secret", "generate").output.strip()
    res = cli("admin", "list", "--json", env=data_env(tmp_path, TILLKEY_SECRET_KEY=secret))
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "data" / "secret.key").exists()  # the configured secret is used, none generated


def test_the_wrong_secret_for_a_database_says_restore_it(tmp_path: Path) -> None:
    assert cli("admin", "list", env=data_env(tmp_path)).exit_code == 0  # signing keys encrypted with secret.key
    line = one_error_line(cli("admin", "list", env=data_env(tmp_path, TILLKEY_SECRET_KEY=STRONG_SECRET)))
    assert "not the secret this database was created with" in line
    (tmp_path / "data" / "secret.key").write_text("damaged")
    line = one_error_line(cli("admin", "list", env=data_env(tmp_path)))
    assert "secret.key is shorter than 32 bytes" in line


def test_invalid_values_name_the_setting_and_where_it_came_from(tmp_path: Path) -> None:
    line = one_error_line(cli("admin", "list", env=data_env(tmp_path, TILLKEY_ADMIN_TOKEN_TTL="-5")))
    assert "admin_token_ttl (environment TILLKEY_ADMIN_TOKEN_TTL)" in line and "greater than 0" in line
    (tmp_path / "tillkey.toml").write_text('token_format = "paper"\n')
    line = one_error_line(cli("--config", "tillkey.toml", "admin", "list", env=data_env(tmp_path)))
    assert f"token_format (config file {tmp_path / 'tillkey.toml'})" in line
    (tmp_path / "broken.toml").write_text("issuer = \n")
    assert "is not valid TOML" in one_error_line(cli("--config", "broken.toml", "config", "show"))
    assert "does not exist" in one_error_line(cli("--config", "nowhere.toml", "config", "show"))


def test_an_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_error_line(cli("admin", "list", env={"TILLKEY_DATA_DIR": str(blocker / "data")}))
    assert "check TILLKEY_DATA_DIR" in line


# --- where the data is --------------------------------------------------------------------------


def test_the_cli_elsewhere_refuses_to_start_a_second_deployment(tmp_path: Path) -> None:
    line = one_error_line(cli("admin", "list"))
    assert f"no Tillkey data in {tmp_path / 'data'}" in line and "TILLKEY_DATA_DIR" in line
    assert not (tmp_path / "data").exists()  # nothing was created, no second master secret
    assert cli("db", "upgrade").exit_code == 0  # asked for explicitly: a new deployment here
    assert cli("admin", "list").exit_code == 0


def test_new_files_are_private(tmp_path: Path) -> None:
    assert cli("admin", "list", env=data_env(tmp_path)).exit_code == 0
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("secret.key", "tillkey.db"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


# --- sources, show, check -------------------------------------------------------------------------


def test_config_show_names_each_source_and_hides_secrets(tmp_path: Path) -> None:
    (tmp_path / "tillkey.toml").write_text('issuer = "https://auth.example.com"\nadmin_token_ttl = 600\n')
    (tmp_path / ".env").write_text("TILLKEY_ADMIN_TOKEN_TTL=900\nTILLKEY_LOG_LEVEL=WARNING\n")
    env = {
        "TILLKEY_CONFIG": "tillkey.toml",
        "TILLKEY_LOG_LEVEL": "ERROR",
        "TILLKEY_SECRET_KEY": STRONG_SECRET,
        "TILLKEY_DATABASE_URL": "postgresql+asyncpg://app:hunter2@db.internal/tillkey",
    }
    res = cli("config", "show", "--json", env=env)
    assert res.exit_code == 0, res.output
    assert STRONG_SECRET not in res.output and "hunter2" not in res.output
    rows = {r["name"]: r for r in json.loads(res.output)["settings"]}
    toml = f"config file {tmp_path / 'tillkey.toml'}"
    assert rows["issuer"] == {"name": "issuer", "value": "https://auth.example.com", "source": toml}
    assert rows["admin_token_ttl"]["value"] == 900 and rows["admin_token_ttl"]["source"].startswith(".env file")
    assert rows["log_level"] == {"name": "log_level", "value": "ERROR", "source": "environment TILLKEY_LOG_LEVEL"}
    assert rows["secret_key"]["value"] == "(set, hidden)"
    assert rows["database_url"]["value"] == "postgresql+asyncpg://app:***@db.internal/tillkey"
    assert rows["customer_token_ttl"] == {"name": "customer_token_ttl", "value": 3600, "source": "default"}


def test_config_check_fails_on_a_laptop_setup_and_passes_a_production_one(tmp_path: Path) -> None:
    res = cli("config", "check", "--workers", "4", "--json", env=data_env(tmp_path, TILLKEY_ADMIN_2FA="off"))
    assert res.exit_code == 1
    problems = {f["topic"] for f in json.loads(res.output)["findings"] if f["level"] == "problem"}
    assert problems == {"issuer", "2fa", "database"}
    production = data_env(
        tmp_path,
        TILLKEY_ISSUER="https://auth.example.com",
        TILLKEY_TRUSTED_PROXIES="10.0.0.5",
        TILLKEY_SECRET_KEY=STRONG_SECRET,
        TILLKEY_DATABASE_URL="postgresql+asyncpg://app@db/tillkey",
        TILLKEY_REDIS_URL="redis://redis:6379/0",
        TILLKEY_ADMIN_2FA="required",
    )
    res = cli("config", "check", "--workers", "4", env=production)
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("no problems found")
    res = cli("config", "check", env={**production, "TILLKEY_METRICS_NETWORKS": "0.0.0.0/0"})
    assert res.exit_code == 1 and "/metrics is open without a credential to 0.0.0.0/0" in res.output


def test_config_check_finds_a_readable_database_file(tmp_path: Path) -> None:
    assert cli("db", "upgrade", env=data_env(tmp_path)).exit_code == 0
    (tmp_path / "data" / "tillkey.db").chmod(0o644)
    res = cli("config", "check", env=data_env(tmp_path))
    assert res.exit_code == 1 and "tillkey.db is mode 0o644: chmod 600 it" in res.output


def test_version() -> None:
    from tillkey import __version__

    res = cli("--version")
    assert res.exit_code == 0 and res.output == f"tillkey {__version__}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [(("admin", "create"), "Error: Missing option '--username'."), (("admin", "nosuch"), "Error: No such command")],
)
def test_a_usage_error_is_plain_text_with_one_error_line(args: tuple[str, ...], says: str) -> None:
    res = cli(*args)
    assert res.exit_code == 2
    assert says in res.output and "--help' for help." in res.output
    assert not any(box in res.output for box in "╭╰│"), res.output  # no rich panel around it
