"""Where settings come from, and what an operator is told when they are wrong.

Settings come from (strongest first) the environment, a `.env` file in the current directory, an
optional TOML file (`TILLKEY_CONFIG`, or `tillkey --config`), then the defaults. Every mistake in
them, in the database or in the master secret becomes one line that says what to do
(`ConfigError`, `explain`), never a traceback: operators meet these on their first start.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from tillkey.settings import Settings

CONFIG_ENV = "TILLKEY_CONFIG"
DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
URL_FORMS = "postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite+aiosqlite:///PATH"
# The master secret is used as given (its UTF-8 bytes), never decoded: 32 bytes is the floor of
# HKDF-SHA256 input we accept; `tillkey secret generate` gives 64 characters (48 random bytes).
SECRET_MIN_CHARS = 32
SECRET_MIN_DISTINCT = 10
# Fields whose values are never printed (config show) and never echoed in an error.
SECRET_FIELDS = frozenset({"secret_key", "redis_url", "database_url"})


class ConfigError(ValueError):
    """A configuration problem, worded for the operator as one line."""


# --- sources ----------------------------------------------------------------------------------


def config_file() -> Path | None:
    """The TOML file named by TILLKEY_CONFIG (tillkey --config sets it), if any."""
    named = os.environ.get(CONFIG_ENV, "").strip()
    return Path(named).expanduser() if named else None


def config_file_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource | None:
    path = config_file()
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"the configuration file {path} ({CONFIG_ENV} or --config) does not exist")
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise ConfigError(f"the configuration file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None


def origins(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """Which source gave each field that is not at its default (the weakest first, so the
    strongest overwrites): what `tillkey config show` prints beside each value."""
    found: dict[str, str] = {}
    path = config_file()
    if path is not None and path.is_file():
        for name in TomlConfigSettingsSource(settings_cls, toml_file=path)():
            found[name] = f"config file {path}"
    env_file = Path(".env")
    if env_file.is_file():
        for name in DotEnvSettingsSource(settings_cls, env_file=env_file)():
            found[name] = f".env file {env_file.resolve()}"
    for name in EnvSettingsSource(settings_cls)():
        found[name] = f"environment TILLKEY_{name.upper()}"
    return found


def describe_validation(exc: ValidationError, settings_cls: type[BaseSettings]) -> str:
    """One line naming each bad setting and what is wrong with it, never the value given (it may
    be a secret or a password in a URL)."""
    try:
        where = origins(settings_cls)
    except Exception:  # a source that cannot even be read: the message below still stands
        where = {}
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not field:
            parts.append(msg)
            continue
        origin = where.get(field, f"TILLKEY_{field.upper()}")
        path = ".".join(str(part) for part in err["loc"])  # forward_auth_routes.0.resources
        parts.append(f"{path} ({origin}): {msg}")
    return "invalid settings: " + "; ".join(parts)


# --- checks of single values ------------------------------------------------------------------


def check_database_url(value: str) -> str:
    if not value:
        return value
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL; expected {URL_FORMS}") from None
    if url.drivername not in DRIVERS:
        hint = "postgresql+asyncpg://" if url.get_backend_name() == "postgresql" else URL_FORMS
        raise ValueError(f"the driver {url.drivername!r} is not supported; use {hint}")
    if url.get_backend_name() == "postgresql" and not url.database:
        raise ValueError("the URL names no database; add /DATABASE after the host")
    return value


def check_secret(value: str) -> str:
    if not value:
        return value
    if len(value.encode()) < SECRET_MIN_CHARS:
        raise ValueError(
            f"the master secret must be at least {SECRET_MIN_CHARS} characters of random text; "
            "make one with `tillkey secret generate`"
        )
    if len(set(value)) < SECRET_MIN_DISTINCT:
        raise ValueError("the master secret is not random text; make one with `tillkey secret generate`")
    return value


def redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


# --- the data directory -------------------------------------------------------------------------


def require_data(settings: Settings) -> None:
    """Refuse to start a new deployment by accident. The default data directory is relative to the
    current directory, so a CLI command run elsewhere would otherwise create a second database with
    a second master secret, and see none of the server's admins. `tillkey serve` and `tillkey db
    upgrade` create it; other commands need it to exist, unless TILLKEY_DATA_DIR was set."""
    if "data_dir" in settings.model_fields_set:
        return
    data = settings.data_dir.resolve()
    missing = []
    if not settings.secret_key and not (data / "secret.key").exists():
        missing.append("secret.key")
    if not settings.database_url and not (data / "tillkey.db").exists():
        missing.append("tillkey.db")
    if missing:
        raise ConfigError(
            f"no Tillkey data in {data} (no {' or '.join(missing)}); run this where `tillkey serve` runs, "
            "or set TILLKEY_DATA_DIR (or data_dir in the TILLKEY_CONFIG file) to the server's data directory; "
            "`tillkey db upgrade` creates a new one here"
        )


# --- errors met at start ----------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo.extend([e.__context__, e.__cause__, orig if isinstance(orig, BaseException) else None])


def explain(exc: BaseException, settings: Settings | None = None) -> str | None:
    """One line for a start-up failure caused by configuration, the database or the secret; None
    for anything else (a bug, which keeps its traceback)."""
    from cryptography.exceptions import InvalidTag

    from tillkey.crypto.secrets import SecretError

    where = redacted_url(settings.resolved_database_url) if settings else "the database"
    for e in _chain(exc):
        name = type(e).__name__
        if isinstance(e, ConfigError | SecretError):
            return str(e)
        if name == "InvalidCatalogNameError":
            return (
                f"{_first_line(e)} ({where}): create it (createdb -O USER NAME; see docs/production.md) "
                "or fix TILLKEY_DATABASE_URL"
            )
        if name in ("InvalidAuthorizationSpecificationError", "InvalidPasswordError"):
            return f"{_first_line(e)} ({where}): create the role or fix the user and password in TILLKEY_DATABASE_URL"
        if name == "InsufficientPrivilegeError":
            return f"{_first_line(e)} ({where}): the role needs to own the database (ALTER DATABASE … OWNER TO …)"
        if isinstance(e, InvalidTag):
            return (
                "the master secret does not decrypt the signing keys in the database: it is not the secret "
                "this database was created with. Restore secret.key (or TILLKEY_SECRET_KEY) from your backup"
            )
        if isinstance(e, sqlite3.OperationalError | sqlite3.DatabaseError):
            return f"cannot use the SQLite database ({where}): {_first_line(e)}; check TILLKEY_DATA_DIR and permissions"
        if isinstance(e, OSError) and e.filename:
            return f"cannot create or open {e.filename}: {e.strerror}; check TILLKEY_DATA_DIR and that path's owner"
        if isinstance(e, OSError):
            return f"cannot reach the database ({where}): {e.strerror or _first_line(e)}"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
