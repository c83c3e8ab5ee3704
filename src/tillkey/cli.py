"""`tillkey` command line (Typer). Non-interactive, exit 0 on success, one-line errors otherwise;
`--json` prints the created object (with any secret shown only once) as one JSON object."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.accounts.service import Accounts
from tillkey.cli_config import config_app, secret_app
from tillkey.cli_idp import idp_app
from tillkey.configuration import CONFIG_ENV, ConfigError, explain, load_settings, require_data
from tillkey.errors import TillkeyError
from tillkey.principal import UserType
from tillkey.runtime import Tillkey
from tillkey.settings import Settings
from tillkey.tokens import rotation
from tillkey.tokens.keys import JWKS_MAX_AGE, SigningKey

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Tillkey: auth for commerce APIs.")
admin_app = typer.Typer(no_args_is_help=True, help="Admin users.")
customer_app = typer.Typer(no_args_is_help=True, help="Customer accounts.")
role_app = typer.Typer(no_args_is_help=True, help="Roles and the resources they grant.")
demo_app = typer.Typer(no_args_is_help=True, help="Demo data.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
api_key_app = typer.Typer(no_args_is_help=True, help="Medusa-style API keys: secret (sk_) and publishable (pk_).")
client_app = typer.Typer(no_args_is_help=True, help="OAuth 2 / OpenID Connect clients.")
integration_app = typer.Typer(no_args_is_help=True, help="Integrations (ERPs, back offices): OAuth 1.0a consumers.")
for sub, name in [
    (admin_app, "admin"), (customer_app, "customer"), (role_app, "role"), (demo_app, "demo"),
    (db_app, "db"), (keys_app, "keys"), (audit_app, "audit"), (integration_app, "integration"),
    (api_key_app, "api-key"),
    (client_app, "client"),
]:  # fmt: skip
    app.add_typer(sub, name=name)
app.add_typer(config_app, name="config")
app.add_typer(secret_app, name="secret")
app.add_typer(idp_app, name="idp")


def _version(value: bool) -> None:
    if value:
        from tillkey import __version__

        typer.echo(f"tillkey {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=CONFIG_ENV,
            help="TOML settings file (setting names in lower case, no prefix).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Tillkey: auth for commerce APIs."""
    if config is not None:
        # Through the environment, so the server's worker processes read the same file.
        os.environ[CONFIG_ENV] = str(config.expanduser().resolve())


out = Console()
log = logging.getLogger("tillkey")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        help="Visible in shell history and `ps`: prefer the prompt (omit it) or --password-stdin.",
    ),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input.",
    ),
]


def _password(given: str | None, from_stdin: bool, prompt: str = "Password") -> str:
    """The password from --password-stdin, --password, or a hidden, confirmed prompt."""
    if from_stdin:
        if given is not None:
            _fail("give --password or --password-stdin, not both")
        line = sys.stdin.readline()
        if not line:
            _fail("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if given is not None:
        return given
    try:
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))
    except typer.Abort:
        _fail("no password given: type it when asked, or pipe it in with --password-stdin")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def settings_or_exit() -> Settings:
    """The settings, or exit with one `error:` line saying which value is wrong and where it came from."""
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc))


def run(fn: Callable[[Tillkey], Awaitable[T]], *, create: bool = False) -> T:
    """Run one command against the configured database, with the schema brought up to date.
    `create`: the command may start a new deployment (a new data directory and master secret)."""
    settings = settings_or_exit()

    async def main() -> T:
        tk = Tillkey(settings)
        try:
            await tk.start(sync=False)
            return await fn(tk)
        finally:
            await tk.stop()

    try:
        if not create:
            require_data(settings)
        return asyncio.run(main())
    except TillkeyError as exc:
        _fail(exc.message.replace("%", "") if not exc.parameters else _render(exc))
    except Exception as exc:
        line = explain(exc, settings)
        if line is None:
            raise
        _fail(line)


def _render(exc: TillkeyError) -> str:
    msg = exc.message
    if isinstance(exc.parameters, dict):
        for k, v in exc.parameters.items():
            msg = msg.replace(f"%{k}", str(v))
    return msg


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(type(obj).__name__)


def _emit(obj: dict[str, Any], as_json: bool, title: str) -> None:
    obj = {k: v for k, v in obj.items() if k != "password_hash"}
    if as_json:
        sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
        return
    table = Table(title=title, show_header=False)
    for k, v in obj.items():
        table.add_row(k, str(v))
    out.print(table)


# --- serve ------------------------------------------------------------------------------------


@app.command()
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
        "class": "logging.StreamHandler", "formatter": "tillkey", "stream": "ext://sys.stderr"
    }  # fmt: skip
    log_config["loggers"]["tillkey"] = {"handlers": ["tillkey"], "level": settings.log_level, "propagate": False}
    if workers > 1:
        if not settings.database_url:
            log.warning(
                "%d workers on SQLite: they share state through the database file, but scale-out is "
                "TILLKEY_DATABASE_URL=postgresql+asyncpg://... with TILLKEY_REDIS_URL", workers,
            )  # fmt: skip
        elif not settings.redis_url:
            log.warning(
                "%d workers without TILLKEY_REDIS_URL: rate limits are per worker, and changes reach the "
                "other workers within sync_interval instead of at once", workers,
            )  # fmt: skip
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
        "tillkey.app:create_app", factory=True, host=host, port=port, log_level="info",
        proxy_headers=False, server_header=False, workers=workers, log_config=log_config,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )  # fmt: skip


async def _prepare(tk: Tillkey) -> None:
    """Nothing more than `run` does: migrations and the first signing key."""


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (also done by `serve` on start). With the default data
    directory (./data) and none there yet, this is how a new deployment is started from the CLI."""
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.store.db import make_engine, upgrade

    settings = settings_or_exit()
    try:
        MasterSecret.load(settings.secret_key, settings.data_dir)  # a new deployment gets its secret now
        if not settings.database_url:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            asyncio.run(make_engine(settings.resolved_database_url).dispose())  # creates the file, 0600
        upgrade(settings.resolved_database_url)
    except Exception as exc:
        line = explain(exc, settings)
        if line is None:
            raise
        _fail(line)
    typer.echo("database is up to date")


# --- admins -----------------------------------------------------------------------------------


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option(help="Login name (case-insensitive).")],
    email: Annotated[str, typer.Option()],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    role: Annotated[str | None, typer.Option(help="Role name; default Administrators (everything).")] = None,
    first_name: Annotated[str, typer.Option()] = "",
    last_name: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an admin user. The password (at least 8 characters, not a common one) is asked for
    unless given with --password-stdin."""
    password = _password(password, password_stdin)
    admin = run(
        lambda tk: Accounts(tk).create_admin(
            OPERATOR, username=username, email=email, password=password, role=role, firstname=first_name,
            lastname=last_name,
        )
    )  # fmt: skip
    _emit(asdict(admin), as_json, "admin created")


@admin_app.command("list")
def admin_list(as_json: JsonOpt = False) -> None:
    """List admin users."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        async with tk.db.session() as s:
            roles = {r.id: r.name for r in await repo.list_roles(s)}
            return [
                {"id": a.id, "username": a.username, "email": a.email, "active": a.is_active,
                 "role": roles.get(a.role_id or -1)}
                for a in await repo.list_admins(s)
            ]  # fmt: skip

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"admins": rows}) + "\n")
        return
    table = Table("id", "username", "email", "active", "role")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    out.print(table)


def _admin_id(tk: Tillkey, username: str) -> Awaitable[int]:
    from tillkey.store import accounts as repo

    async def go() -> int:
        async with tk.db.session() as s:
            admin = await repo.admin_by_username(s, username)
        if admin is None:
            _fail(f"there is no admin named {username!r}")
        return admin.id

    return go()


@admin_app.command("deactivate")
def admin_deactivate(username: str) -> None:
    """Deactivate an admin; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).set_admin_active(OPERATOR, await _admin_id(tk, username), False)

    run(go)
    typer.echo(f"admin {username} deactivated; their tokens are revoked")


@admin_app.command("activate")
def admin_activate(username: str) -> None:
    """Re-activate an admin."""

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).set_admin_active(OPERATOR, await _admin_id(tk, username), True)

    run(go)
    typer.echo(f"admin {username} activated")


@admin_app.command("delete")
def admin_delete(username: str) -> None:
    """Delete an admin; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).delete_admin(OPERATOR, await _admin_id(tk, username))

    run(go)
    typer.echo(f"admin {username} deleted")


@admin_app.command("revoke-tokens")
def admin_revoke_tokens(username: str) -> None:
    """Sign an admin out everywhere (Magento's "Invalidate token")."""

    async def go(tk: Tillkey) -> None:
        await tk.revoker.revoke_for(UserType.ADMIN, await _admin_id(tk, username))

    run(go)
    typer.echo(f"tokens of admin {username} revoked")


@admin_app.command("unlock")
def admin_unlock(username: str) -> None:
    """Lift an admin's account lock and login throttle."""
    from tillkey.accounts.signin import SignIn

    async def go(tk: Tillkey) -> None:
        await SignIn(tk).unlock(UserType.ADMIN, await _admin_id(tk, username), username)

    run(go)
    typer.echo(f"admin {username} unlocked")


@admin_app.command("assign-role")
def admin_assign_role(username: str, role: str) -> None:
    """Give an admin another role."""
    run(lambda tk: Accounts(tk).assign_role(OPERATOR, username, role))
    typer.echo(f"admin {username} now has role {role}")


@admin_app.command("password")
def admin_password(username: str, password: PasswordOpt = None, password_stdin: PasswordStdinOpt = False) -> None:
    """Set an admin's new password (asked for, or --password-stdin); their tokens and sessions end."""
    password = _password(password, password_stdin, prompt=f"New password for {username}")

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).reset_admin_password(OPERATOR, await _admin_id(tk, username), password)

    run(go)
    typer.echo(f"password of admin {username} changed; their tokens and sessions are ended")


# --- customers --------------------------------------------------------------------------------


@customer_app.command("create")
def customer_create(
    email: Annotated[str, typer.Option()],
    first_name: Annotated[str, typer.Option()],
    last_name: Annotated[str, typer.Option()],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a customer account. The password is asked for unless given with --password-stdin."""
    password = _password(password, password_stdin)
    customer = run(
        lambda tk: Accounts(tk).create_customer(
            email=email, password=password, firstname=first_name, lastname=last_name
        )
    )
    _emit(asdict(customer), as_json, "customer created")


def _customer_id(tk: Tillkey, email: str) -> Awaitable[int]:
    from tillkey.store import accounts as repo

    async def go() -> int:
        async with tk.db.session() as s:
            customer = await repo.customer_by_email(s, email)
        if customer is None:
            _fail(f"there is no customer with email {email!r}")
        return customer.id

    return go()


@customer_app.command("deactivate")
def customer_deactivate(email: str) -> None:
    """Deactivate a customer; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).set_customer_active(await _customer_id(tk, email), False)

    run(go)
    typer.echo(f"customer {email} deactivated; their tokens are revoked")


@customer_app.command("delete")
def customer_delete(email: str) -> None:
    """Delete a customer; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await Accounts(tk).delete_customer(await _customer_id(tk, email))

    run(go)
    typer.echo(f"customer {email} deleted")


@customer_app.command("unlock")
def customer_unlock(email: str) -> None:
    """Lift a customer's account lock and login throttle."""
    from tillkey.accounts.signin import SignIn

    async def go(tk: Tillkey) -> None:
        await SignIn(tk).unlock(UserType.CUSTOMER, await _customer_id(tk, email), email)

    run(go)
    typer.echo(f"customer {email} unlocked")


@customer_app.command("revoke-tokens")
def customer_revoke_tokens(email: str) -> None:
    """Sign a customer out everywhere (Magento's "Force sign-in"), registration tokens of the
    email's Medusa identities included (even before the customer exists)."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> None:
        async with tk.db.session() as s:
            customer = await repo.customer_by_email(s, email)
        customer_id = None if customer is None else customer.id
        hit = await Accounts(tk).revoke_tokens(UserType.CUSTOMER, customer_id, email=email)
        if customer is None and not hit:
            _fail(f"there is no customer with email {email!r}")

    run(go)
    typer.echo(f"tokens of customer {email} revoked")


# --- admin two-factor auth (TOTP) -------------------------------------------------------------

tfa_app = typer.Typer(no_args_is_help=True, help="Admin two-factor auth (TOTP): enroll, activate, status, reset.")
admin_app.add_typer(tfa_app, name="2fa")


@tfa_app.command("enroll")
def tfa_enroll(username: str, as_json: JsonOpt = False) -> None:
    """Give an admin a new TOTP secret; prints the otpauth URI and a QR code to scan with an
    authenticator app. It stays inactive until `tillkey admin 2fa activate` with a first code."""
    from tillkey.security.totp import Enrolment, Totp, qr_text

    async def go(tk: Tillkey) -> Enrolment:
        return await Totp(tk).enroll(await _admin_id(tk, username))

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


@tfa_app.command("activate")
def tfa_activate(
    username: str,
    code: Annotated[str, typer.Option("--code", help="A current 6-digit code from the authenticator app.")],
    as_json: JsonOpt = False,
) -> None:
    """Activate an enrolled admin's TOTP with a first code; prints the recovery codes, once."""
    from tillkey.security.totp import Totp

    async def go(tk: Tillkey) -> list[str]:
        return await Totp(tk).activate(await _admin_id(tk, username), code)

    codes = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"username": username, "recovery_codes": codes}) + "\n")
        return
    typer.echo(f"two-factor auth is active for admin {username}. Recovery codes (each works once; shown only now):")
    for c in codes:
        typer.echo(f"  {c}")


@tfa_app.command("status")
def tfa_status(username: str, as_json: JsonOpt = False) -> None:
    """Whether an admin has enrolled and activated TOTP, and how many recovery codes are left."""
    from tillkey.security.totp import TfaStatus, Totp

    async def go(tk: Tillkey) -> TfaStatus:
        return await Totp(tk).status(await _admin_id(tk, username))

    status = {"username": username, **asdict(run(go))}
    if as_json:
        sys.stdout.write(json.dumps(status) + "\n")
        return
    _emit(status, False, "two-factor auth")


@tfa_app.command("reset")
def tfa_reset(username: str) -> None:
    """Forget an admin's TOTP secret and recovery codes (they enroll again) and revoke their tokens."""
    from tillkey.security.totp import Totp

    async def go(tk: Tillkey) -> bool:
        return await Totp(tk).reset(OPERATOR, await _admin_id(tk, username))

    had = run(go)
    typer.echo(f"two-factor auth of admin {username} {'reset' if had else 'was not set up'}; their tokens are revoked")


# --- roles ------------------------------------------------------------------------------------


@role_app.command("create")
def role_create(
    name: str,
    resource: Annotated[list[str] | None, typer.Option("--resource", "-r", help="Resource id; repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a role granting the given resources (a node grants its subtree)."""
    role = run(lambda tk: Accounts(tk).create_role(OPERATOR, name, resource or []))
    _emit(asdict(role), as_json, "role created")


@role_app.command("grant")
def role_grant(
    name: str,
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="Resource id; repeatable.")],
    as_json: JsonOpt = False,
) -> None:
    """Grant resources to a role. Takes effect for its admins within a second, without re-login."""
    role = run(lambda tk: Accounts(tk).grant(OPERATOR, name, resource))
    _emit(asdict(role), as_json, "role updated")


@role_app.command("revoke")
def role_revoke(
    name: str,
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="Resource id; repeatable.")],
    as_json: JsonOpt = False,
) -> None:
    """Take resources away from a role."""
    role = run(lambda tk: Accounts(tk).grant(OPERATOR, name, resource, revoke=True))
    _emit(asdict(role), as_json, "role updated")


@role_app.command("rename")
def role_rename(name: str, new_name: str, as_json: JsonOpt = False) -> None:
    """Rename a role; its admins and grants stay."""
    role = run(lambda tk: Accounts(tk).rename_role(OPERATOR, name, new_name))
    _emit(asdict(role), as_json, "role renamed")


@role_app.command("delete")
def role_delete(name: str) -> None:
    """Delete a role; refused while any admin has it (`tillkey admin assign-role` them first)."""
    run(lambda tk: Accounts(tk).delete_role(OPERATOR, name))
    typer.echo(f"role {name} deleted")


@role_app.command("list")
def role_list(as_json: JsonOpt = False) -> None:
    """List roles and their granted resources."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> list[Any]:
        async with tk.db.session() as s:
            return list(await repo.list_roles(s))

    roles = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"roles": [asdict(r) for r in roles]}) + "\n")
        return
    table = Table("id", "name", "builtin", "resources")
    for r in roles:
        table.add_row(str(r.id), r.name, str(r.builtin), "\n".join(r.resources))
    out.print(table)


@role_app.command("resources")
def role_resources() -> None:
    """Show the resource tree that roles grant from."""
    from tillkey.access.tree import ResourceTree

    for depth, node in ResourceTree.load().walk():
        out.print(f"{'  ' * depth}{node.id}  [dim]{node.title}[/dim]", highlight=False)


# --- keys and demo ----------------------------------------------------------------------------


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List signing keys and where each is in its life (never their secret material)."""

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        now = tk.clock.now_int()
        signer = tk.keyring.signer(now)
        return [
            {"kid": k.kid, "alg": k.alg, "state": _key_state(k, now, signer is k, tk.settings.jwt_alg),
             "created_at": k.created_at, "signs_from": k.signs_from or k.created_at, "retired_at": k.retired_at,
             "verify_until": k.verify_until}
            for k in tk.keyring.by_kid.values()
        ]  # fmt: skip

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"keys": rows}) + "\n")
        return
    table = Table(*rows[0].keys()) if rows else Table("kid")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    out.print(table)


def _key_state(key: SigningKey, now: int, signing: bool, alg: str) -> str:
    if not key.verifies_at(now):
        return "retired"
    if signing:
        return "signing"
    if key.retired_at is None or key.retired_at > now:
        return "pending" if key.alg == alg else "other-alg"
    return "verifying"


@keys_app.command("rotate")
def keys_rotate(
    publish_ahead: Annotated[int, typer.Option(
        min=0, help="Seconds the new key is published before it signs (verifiers caching the JWKS learn it first).",
    )] = JWKS_MAX_AGE,
    grace: Annotated[int | None, typer.Option(
        min=0, help="Seconds replaced keys keep verifying once the new key signs (default: longest token TTL + 60).",
    )] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Add a signing key; the current one stops signing when it starts, and verifies until its tokens expire."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        done = await rotation.rotate(tk, publish_ahead=publish_ahead, grace=grace)
        return {"kid": done.kid, "alg": done.alg, "signs_from": done.signs_from, "replaced": done.replaced,
                "replaced_verify_until": done.replaced_verify_until}  # fmt: skip

    _emit(run(go), as_json, "Signing key rotated")


@keys_app.command("retire")
def keys_retire(kid: Annotated[str, typer.Argument(help="The key to end now.")], as_json: JsonOpt = False) -> None:
    """End a key now (suspected leak): every token it signed is refused; a new key signs if needed."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        return {"kid": kid, "retired": True, "replacement": await rotation.retire(tk, kid)}

    _emit(run(go), as_json, "Signing key retired")


# --- OAuth 2 clients ----------------------------------------------------------------------------


@client_app.command("create")
def client_create(
    name: Annotated[str, typer.Option(help="Shown to users on the consent page.")],
    client_type: Annotated[str, typer.Option("--type", help="confidential (has a secret) or public (SPA, app).")],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Exact redirect URI; repeat for several.")] = None,
    grant: Annotated[list[str] | None, typer.Option(
        help="authorization_code, client_credentials or refresh_token; repeat (default: the first and the last).",
    )] = None,
    scope: Annotated[list[str] | None, typer.Option(
        help="Resource id (see `tillkey role resources`), self, admin_self, or openid/profile/email; repeat.",
    )] = None,
    first_party: Annotated[bool, typer.Option(help="Trusted: no consent page.")] = False,
    resource_server: Annotated[bool, typer.Option(
        help="May introspect tokens issued to other clients and to users (RFC 7662); confidential only.",
    )] = False,
    require_pkce: Annotated[bool, typer.Option(
        help="Require PKCE even when TILLKEY_OAUTH2_REQUIRE_PKCE is off (always on for public clients).",
    )] = True,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Register a client. A confidential client's secret is printed once and never stored in clear."""
    from tillkey.oauth2.clients import Clients
    from tillkey.surfaces.oauth2 import client_json

    async def go(tk: Tillkey) -> dict[str, Any]:
        done = await Clients(tk).create(
            OPERATOR, name=name, client_type=client_type, redirect_uris=redirect_uri or [], grant_types=grant or [],
            scopes=scope or [], first_party=first_party, require_pkce=require_pkce, resource_server=resource_server,
        )  # fmt: skip
        return client_json(done.client, done.secret)

    _emit(run(go), as_json, "OAuth client registered (the secret is shown only now)")


@client_app.command("list")
def client_list(as_json: JsonOpt = False) -> None:
    """List registered clients (never their secrets)."""
    from tillkey.oauth2.clients import Clients
    from tillkey.surfaces.oauth2 import client_json

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        return [client_json(c) for c in await Clients(tk).registered()]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"clients": rows}) + "\n")
        return
    table = Table("client_id", "name", "type", "grant_types", "scopes")
    for r in rows:
        table.add_row(r["client_id"], r["name"], r["type"], " ".join(r["grant_types"]), " ".join(r["scopes"]))
    out.print(table)


@client_app.command("delete")
def client_delete(client_id: str) -> None:
    """Delete a client: its refresh tokens are revoked and its access tokens stop working."""
    from tillkey.oauth2.clients import Clients

    async def go(tk: Tillkey) -> None:
        await Clients(tk).delete(client_id)

    run(go)
    typer.echo(f"client {client_id} deleted; its tokens are revoked")


@demo_app.command("seed")
def demo_seed(
    customer_password: Annotated[
        str | None, typer.Option(help="Password for the demo customers; random (and printed) if omitted.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a small catalog, stock, two customers with orders; print what was created."""
    from tillkey.storeapi.seed import seed

    created = run(lambda tk: seed(tk, customer_password))
    if as_json:
        sys.stdout.write(json.dumps(created) + "\n")
        return
    if not any(created.values()):
        out.print("demo data is already there; nothing to add")
        return
    table = Table("sku", "name", "price", "qty", title="products")
    for p in created["products"]:
        table.add_row(p["sku"], p["name"], str(p["price"]), str(p["qty"]))
    out.print(table)
    table = Table("id", "email", "password (shown once)", title="customers")
    for c in created["customers"]:
        table.add_row(str(c["id"]), c["email"], c["password"])
    out.print(table)
    table = Table("entity_id", "increment_id", "customer", "grand_total", title="orders")
    for o in created["orders"]:
        table.add_row(str(o["entity_id"]), o["increment_id"], o["customer"], str(o["grand_total"]))
    out.print(table)


# --- audit log --------------------------------------------------------------------------------


def _audit_print(records: list[Any], as_json: bool) -> None:
    from rich import box
    from rich.text import Text

    from tillkey.security.audit import FAILURE, iso_time, to_json

    if as_json:
        for r in records:
            sys.stdout.write(json.dumps(to_json(r)) + "\n")
        return
    # Stacked cells keep the table readable in 80 columns; --json is the format for machines.
    table = Table("seq", "time (UTC)", "event", "who", box=box.SIMPLE_HEAD, show_lines=True, pad_edge=False)
    table.add_column("details", overflow="fold", ratio=1)
    for r in records:
        actor = UserType(r.actor_type).name.lower() if r.actor_type in (1, 2, 3, 4) else "cli/unknown"
        if r.actor_id is not None:
            actor += f":{r.actor_id}"
        when = iso_time(r.created_ms)[:19].replace("T", "\n")
        # Text, not markup: usernames and user agents come from clients and must not style the terminal.
        event = Text(r.event + "\n") + Text(r.outcome, style="red" if r.outcome == FAILURE else "green")
        who = Text("\n".join(x for x in (actor, r.username, r.ip) if x))
        details = to_json(r)["details"]
        if isinstance(details, dict):
            details = "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in details.items())
        table.add_row(str(r.seq), when, event, who, Text(str(details or "")))
    out.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 naming the first altered or missing record."""
    report = run(lambda tk: tk.audit.check())
    if report.first_break is not None:
        _fail(f"audit chain broken at seq {report.first_break.seq}: {report.first_break.reason}")
    typer.echo(f"audit chain intact: {report.count} records")


@audit_app.command("tail")
def audit_tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=500, help="How many records.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The latest records, oldest first."""
    from tillkey.store.audit import AuditQuery

    records = run(lambda tk: tk.audit.search(AuditQuery(limit=lines)))
    _audit_print(records[::-1], as_json)


@audit_app.command("search")
def audit_search(
    event: Annotated[str | None, typer.Option(help="Event name, or a family such as 'login.*'.")] = None,
    username: Annotated[str | None, typer.Option(help="Login name involved (case-insensitive).")] = None,
    outcome: Annotated[str | None, typer.Option(help="success or failure.")] = None,
    actor_type: Annotated[int | None, typer.Option(help="1 integration, 2 admin, 3 customer, 4 guest.")] = None,
    actor_id: Annotated[int | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="Unix seconds or ISO 8601 (UTC unless an offset is given).")] = None,
    until: Annotated[str | None, typer.Option(help="Unix seconds or ISO 8601, inclusive.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many records (1 to 500).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many matching records.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Matching records, newest first."""
    from tillkey.security.audit_query import make_query

    try:
        query = make_query(
            event=event, username=username, outcome=outcome, actor_type=actor_type, actor_id=actor_id,
            since=since, until=until, limit=limit, offset=offset,
        )  # fmt: skip
    except ValueError as exc:
        _fail(str(exc))
    _audit_print(run(lambda tk: tk.audit.search(query)), as_json)


# --- integrations -----------------------------------------------------------------------------


@integration_app.command("create")
def integration_create(
    name: Annotated[str, typer.Option("--name", help="Unique name of the integration.")],
    resource: Annotated[list[str] | None, typer.Option("--resource", "-r", help="Resource id; repeatable.")] = None,
    all_resources: Annotated[bool, typer.Option("--all", help="Grant every resource.")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option(help="Where activation posts the OAuth handshake; none: manual activation.")
    ] = None,
    identity_link_url: Annotated[str | None, typer.Option(help="The integration's login page for the admin.")] = None,
    email: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an integration: consumer key and secret (shown once) and its grant of resources."""
    from tillkey.accounts.integrations import Integrations

    created = run(
        lambda tk: Integrations(tk).create(
            OPERATOR, name=name, resources=resource or [], all_resources=all_resources, email=email,
            endpoint_url=endpoint_url, identity_link_url=identity_link_url,
        )
    )  # fmt: skip
    _emit(asdict(created), as_json, "integration created (the consumer secret is not shown again)")


@integration_app.command("list")
def integration_list(as_json: JsonOpt = False) -> None:
    """List integrations (no secrets)."""
    from tillkey.accounts.integrations import Integrations

    rows = run(lambda tk: Integrations(tk).list())
    if as_json:
        sys.stdout.write(json.dumps({"integrations": rows}) + "\n")
        return
    table = Table("id", "name", "status", "consumer key", "access token", "endpoint", "resources")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], r["status"], r["consumer_key"], "yes" if r["has_access_token"] else "no",
            r["endpoint_url"] or "(manual)", "\n".join(r["resources"]),
        )  # fmt: skip
    out.print(table)


@integration_app.command("activate")
def integration_activate(name: str, as_json: JsonOpt = False) -> None:
    """Activate or re-authorize. Manual: prints the access token and secret (shown once; older
    tokens are revoked). With an endpoint: posts the handshake to it, to finish within 300 s."""
    from tillkey.accounts.integrations import Integrations

    done = run(lambda tk: Integrations(tk).activate(OPERATOR, name))
    _emit({k: v for k, v in asdict(done).items() if v is not None}, as_json, "integration activation")


@integration_app.command("deactivate")
def integration_deactivate(name: str) -> None:
    """Refuse the integration's calls until it is activated again."""
    from tillkey.accounts.integrations import Integrations

    run(lambda tk: Integrations(tk).deactivate(name))
    typer.echo(f"integration {name} deactivated")


@integration_app.command("revoke")
def integration_revoke(name: str) -> None:
    """Revoke the integration's access token; `activate` issues a new one."""
    from tillkey.accounts.integrations import Integrations

    count = run(lambda tk: Integrations(tk).revoke(name))
    typer.echo(f"integration {name}: {count} token(s) revoked")


@integration_app.command("delete")
def integration_delete(name: str) -> None:
    """Delete an integration and its tokens."""
    from tillkey.accounts.integrations import Integrations

    run(lambda tk: Integrations(tk).delete(name))
    typer.echo(f"integration {name} deleted")


# --- API keys ---------------------------------------------------------------------------------


def _key_row(key: Any) -> dict[str, Any]:
    from tillkey.surfaces.api_keys import key_json

    return key_json(key)


@api_key_app.command("create")
def api_key_create(
    title: Annotated[str, typer.Option("--title", help="What the key is for.")],
    key_type: Annotated[str, typer.Option("--type", help="secret (a server's credential) or publishable.")],
    admin: Annotated[
        str | None, typer.Option("--for", help="Secret keys: the admin the key acts for (never exceeds their grant).")
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="Secret keys: resource id; repeatable (default all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; a secret key is printed once and only its digest is stored."""
    from tillkey.accounts.api_keys import ApiKeys

    async def go(tk: Tillkey) -> dict[str, Any]:
        creator = await _admin_id(tk, admin) if admin else None
        created = await ApiKeys(tk).create(OPERATOR, title=title, type=key_type, for_admin=creator, resources=resource)
        row = _key_row(created.key)
        row["token"] = created.token
        return row

    _emit(run(go), as_json, "API key created (a secret key is not shown again)")


@api_key_app.command("list")
def api_key_list(as_json: JsonOpt = False) -> None:
    """List API keys, secret ones redacted."""
    from tillkey.accounts.api_keys import ApiKeys

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        keys, _count = await ApiKeys(tk).listing(type=None, q=None, limit=1000, offset=0)
        return [_key_row(k) for k in keys]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"api_keys": rows}) + "\n")
        return
    table = Table("id", "type", "title", "redacted", "created_by", "last_used_at", "revoked_at")
    for r in rows:
        table.add_row(*(str(r[c] or "") for c in ("id", "type", "title", "redacted", "created_by", "last_used_at",
                                                  "revoked_at")))  # fmt: skip
    out.print(table)


@api_key_app.command("revoke")
def api_key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (apk_N).")],
    revoke_in: Annotated[float, typer.Option("--in", min=0, help="Seconds until it stops; default now.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key, now or later; every server refuses it within the sync interval."""
    from tillkey.accounts.api_keys import ApiKeys
    from tillkey.surfaces.medusa_wire import KEY_PREFIX, prefixed_id

    number = prefixed_id(KEY_PREFIX, key_id)
    if number is None:
        _fail(f"no API key {key_id!r}")
    revoked = run(lambda tk: ApiKeys(tk).revoke(number, revoke_in=revoke_in, by=None))
    _emit(_key_row(revoked), as_json, "API key revoked")


def main() -> None:
    app()
