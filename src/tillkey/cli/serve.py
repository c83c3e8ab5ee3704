"""`tillkey serve`: run the server (migrations and the first signing key before uvicorn starts)."""

from __future__ import annotations

import copy
import logging
import sys
from typing import Annotated

import typer

from tillkey.cli.runner import run
from tillkey.configuration import ConfigError
from tillkey.runtime import Tillkey
from tillkey.settings import load_settings

log = logging.getLogger("tillkey")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes sharing the port.")] = 1,
) -> None:
    """Run the Tillkey server (migrates the schema and creates signing keys on first start).

    SIGTERM stops it gracefully: no new connections, requests in flight finish (for up to
    TILLKEY_SHUTDOWN_TIMEOUT seconds), queued audit records and last-use times are written, exit 0."""
    import signal

    import uvicorn

    from tillkey.access import route_table
    from tillkey.access.tree import ResourceTree

    try:
        settings = load_settings()
        # Checked here too, so a bad route table is one clear line, not a traceback from the app factory.
        route_table.build(settings.forward_auth_routes, settings.forward_auth_routes_file, ResourceTree.load())
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    # uvicorn's logging config, plus Tillkey's loggers: applied in every worker process too (they
    # are spawned, so the basicConfig above does not reach them).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["formatters"]["tillkey"] = {"format": LOG_FORMAT}
    log_config["handlers"]["tillkey"] = {
        "class": "logging.StreamHandler",
        "formatter": "tillkey",
        "stream": "ext://sys.stderr",
    }
    log_config["loggers"]["tillkey"] = {"handlers": ["tillkey"], "level": settings.log_level, "propagate": False}
    if workers > 1:
        if not settings.database_url:
            log.warning(
                "%d workers on SQLite: they share state through the database file, but scale-out is "
                "TILLKEY_DATABASE_URL=postgresql+asyncpg://... with TILLKEY_REDIS_URL",
                workers,
            )
        elif not settings.redis_url:
            log.warning(
                "%d workers without TILLKEY_REDIS_URL: rate limits are per worker, and changes reach the "
                "other workers within sync_interval instead of at once",
                workers,
            )
    # Migrate and make the first signing key before uvicorn starts (once, before several workers
    # would race to do it): a wrong database URL, a missing database or role, or a master secret that
    # does not match the database is then one `error:` line and exit 1, not a traceback per worker.
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl SQLiteImpl" on every start
    run(_prepare, create=True)
    if not settings.database_url:
        log.info("data directory: %s", settings.data_dir.resolve())
    # uvicorn drains on SIGTERM, then raises the signal again against the handler found before it
    # started; with the default one the process would die of it (status 143), which supervisors
    # report as a failure. A graceful stop is a success: exit 0 (also before uvicorn is listening).
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    uvicorn.run(
        "tillkey.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        server_header=False,
        workers=workers,
        log_config=log_config,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


async def _prepare(tk: Tillkey) -> None:
    """Nothing more than `run` does: migrations and the first signing key."""
