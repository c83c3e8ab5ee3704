"""`tillkey admin 2fa ...`: an admin's TOTP second factor."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer

from tillkey.access.delegation import OPERATOR
from tillkey.cli.admin import admin_id
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit
from tillkey.cli.runner import run
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="Admin two-factor auth (TOTP): enroll, activate, status, reset.")


@commands.command("enroll")
def tfa_enroll(username: str, as_json: JsonOpt = False) -> None:
    """Give an admin a new TOTP secret; prints the otpauth URI and a QR code to scan with an
    authenticator app. It stays inactive until `tillkey admin 2fa activate` with a first code."""
    from tillkey.accounts.totp import Enrolment, qr_text

    async def go(tk: Tillkey) -> Enrolment:
        return await tk.services.totp.enroll(await admin_id(tk, username))

    enrolment = run(go)
    qr = qr_text(enrolment.uri)
    if as_json:
        sys.stdout.write(
            json.dumps({"username": username, "secret": enrolment.secret, "otpauth_uri": enrolment.uri, "qr_text": qr})
            + "\n"
        )
        return
    sys.stdout.write(qr)
    typer.echo(f"otpauth URI: {enrolment.uri}")
    typer.echo(f"secret (to type in by hand): {enrolment.secret}")
    typer.echo(f"next: tillkey admin 2fa activate {username} --code <the 6 digits the app shows>")


@commands.command("activate")
def tfa_activate(
    username: str,
    code: Annotated[str, typer.Option("--code", help="A current 6-digit code from the authenticator app.")],
    as_json: JsonOpt = False,
) -> None:
    """Activate an enrolled admin's TOTP with a first code; prints the recovery codes, once."""

    async def go(tk: Tillkey) -> list[str]:
        return await tk.services.totp.activate(await admin_id(tk, username), code)

    codes = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"username": username, "recovery_codes": codes}) + "\n")
        return
    typer.echo(f"two-factor auth is active for admin {username}. Recovery codes (each works once; shown only now):")
    for c in codes:
        typer.echo(f"  {c}")


@commands.command("status")
def tfa_status(username: str, as_json: JsonOpt = False) -> None:
    """Whether an admin has enrolled and activated TOTP, and how many recovery codes are left."""
    from tillkey.accounts.totp import TfaStatus

    async def go(tk: Tillkey) -> TfaStatus:
        return await tk.services.totp.status(await admin_id(tk, username))

    status = {"username": username, **asdict(run(go))}
    if as_json:
        sys.stdout.write(json.dumps(status) + "\n")
        return
    emit(status, False, "two-factor auth")


@commands.command("reset")
def tfa_reset(username: str) -> None:
    """Forget an admin's TOTP secret and recovery codes (they enroll again) and revoke their tokens."""

    async def go(tk: Tillkey) -> bool:
        return await tk.services.totp.reset(OPERATOR, await admin_id(tk, username))

    had = run(go)
    typer.echo(f"two-factor auth of admin {username} {'reset' if had else 'was not set up'}; their tokens are revoked")
