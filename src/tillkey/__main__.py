"""The `tillkey` command (and `python -m tillkey`).

A base install (`pip install tillkey`) holds only the library guard; the command needs the server
extra. Without it, say so in one line instead of a traceback about a missing module.
"""

from __future__ import annotations

import sys

# Top-level modules of the `server` extra (pyproject.toml) that the CLI imports.
SERVER_MODULES = frozenset(
    "aiosqlite alembic argon2 confusable_homoglyphs fastapi jinja2 limits precis_i18n prometheus_client pydantic "
    "pydantic_settings pyotp qrcode redis rich sqlalchemy swagger_ui_bundle typer uvicorn".split()
)
MISSING_SERVER = "error: the tillkey command needs the server: pip install 'tillkey[server]' (missing module {name!r})"


def main() -> None:
    try:
        # Imported here, not at the top: this module must load on a guard-only install to report it.
        from tillkey.cli import main as cli_main
    except ModuleNotFoundError as exc:
        name = (exc.name or "").partition(".")[0]
        if name not in SERVER_MODULES:
            raise
        sys.exit(MISSING_SERVER.format(name=name))
    cli_main()


if __name__ == "__main__":
    main()
