"""`tillkey secret generate`: a new master secret."""

from __future__ import annotations

import secrets

import typer

commands = typer.Typer(no_args_is_help=True, help="The master secret.")


@commands.command("generate")
def secret_generate() -> None:
    """Print a new master secret (48 random bytes, URL-safe base64: 64 characters) for
    TILLKEY_SECRET_KEY. Changing the secret of an existing deployment makes its encrypted data
    unreadable: this is for new deployments."""
    typer.echo(secrets.token_urlsafe(48))
