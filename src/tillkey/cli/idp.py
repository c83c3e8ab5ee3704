"""`tillkey idp add|list|show|disable|enable|remove|test|sync`: external identity providers (issue 14)
and LDAP / Active Directory (issue 15).
The CLI acts as the operator (access/delegation.py OPERATOR); client secrets are read from an
environment variable (or given with --client-secret), stored encrypted and never printed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli import idp_saml
from tillkey.configuration import ConfigError, explain, require_data
from tillkey.errors import TillkeyError
from tillkey.runtime import Tillkey
from tillkey.settings import load_settings

commands = typer.Typer(no_args_is_help=True, help="External identity providers (OpenID Connect sign-in).")
out = Console()
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _message(exc: TillkeyError) -> str:
    msg = exc.message
    if isinstance(exc.parameters, dict):
        for k, v in exc.parameters.items():
            msg = msg.replace(f"%{k}", str(v))
    return msg


def _run(fn: Callable[[Tillkey], Awaitable[T]]) -> T:
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))

    async def main() -> T:
        tk = Tillkey(settings)
        try:
            await tk.start(sync=False)
            return await fn(tk)
        finally:
            await tk.stop()

    try:
        require_data(settings)
        return asyncio.run(main())
    except TillkeyError as exc:
        _fail(_message(exc))
    except Exception as exc:
        line = explain(exc, settings)
        if line is None:
            raise
        _fail(line)


def _show(obj: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj) + "\n")
        return
    table = Table(title=title, show_header=False)
    for k, v in obj.items():
        table.add_row(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
    out.print(table)


@commands.command("add")
def idp_add(
    name: Annotated[str, typer.Option(help="Short name: in URLs (/auth/customer/NAME) and the `idp` claim.")],
    actor: Annotated[str, typer.Option(help="Who signs in with it: admin (console) or customer (Medusa).")],
    client_id: Annotated[str, typer.Option(help="Tillkey's client id at the provider (OpenID Connect).")] = "",
    issuer: Annotated[
        str,
        typer.Option(
            help="The provider's issuer URL (discovery at ISSUER/.well-known/...); a preset fills it.",
        ),
    ] = "",
    preset: Annotated[str | None, typer.Option(help="google, entra, apple or github: fills the endpoints.")] = None,
    tenant: Annotated[str | None, typer.Option(help="entra: the directory (tenant) id.")] = None,
    team_id: Annotated[str | None, typer.Option(help="apple: the team id.")] = None,
    key_id: Annotated[str | None, typer.Option(help="apple: the id of the Sign in with Apple key.")] = None,
    private_key_file: Annotated[
        Path | None,
        typer.Option(
            help="apple: the .p8 key file; stored encrypted, the client secret is made from it.",
        ),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="oidc, saml (SAML 2.0: give its metadata) or ldap (LDAP / Active Directory).")
    ] = "oidc",
    metadata_file: Annotated[Path | None, typer.Option(help="saml: the IdP's metadata XML file.")] = None,
    metadata_url: Annotated[str | None, typer.Option(help="saml: the IdP's metadata URL (fetched once).")] = None,
    attribute_email: Annotated[str | None, typer.Option(help="saml: attribute holding the email.")] = None,
    groups_attribute: Annotated[str | None, typer.Option(help="saml: attribute listing the groups.")] = None,
    idp_initiated: Annotated[bool, typer.Option(help="saml: accept unsolicited (IdP-initiated) sign-ins.")] = False,
    client_secret_env: Annotated[str | None, typer.Option(help="Environment variable holding the secret.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="The secret itself (prefer --client-secret-env).")] = None,
    display_name: Annotated[str, typer.Option(help='Shown on buttons: "Sign in with DISPLAY_NAME".')] = "",
    scope: Annotated[str, typer.Option(help="Scopes asked for; must include openid.")] = "openid email profile",
    redirect_uri: Annotated[
        str,
        typer.Option(
            help="Where the provider returns the browser (customers: the storefront's callback page; "
            "admins: defaults to TILLKEY_ISSUER/console/login/idp/NAME/callback).",
        ),
    ] = "",
    groups_claim: Annotated[str | None, typer.Option(help="ID token claim listing the user's groups.")] = None,
    role_map: Annotated[list[str] | None, typer.Option(help="GROUP=ROLE; repeat. The first listed group wins.")] = None,
    default_role: Annotated[str | None, typer.Option(help="Role when no group maps (admins).")] = None,
    provision: Annotated[str, typer.Option(help="jit (create accounts) or existing (linked only).")] = "existing",
    allowed_domain: Annotated[list[str] | None, typer.Option(help="Only emails of this domain; repeat.")] = None,
    trust_email_domains: Annotated[
        bool,
        typer.Option(
            help="Link a first sign-in to the existing account with the same verified email of an allowed domain.",
        ),
    ] = False,
    mfa_from_amr: Annotated[
        bool,
        typer.Option(
            help="Trust the provider's amr (mfa, otp, hwk) as the second factor; else the admin 2FA policy applies.",
        ),
    ] = False,
    userinfo: Annotated[
        bool,
        typer.Option(
            help="Merge the userinfo endpoint's claims into the ID token's (its sub must be the ID token's).",
        ),
    ] = False,
    url: Annotated[str | None, typer.Option(help="ldap: ldaps://HOST[:PORT] or ldap://HOST[:PORT].")] = None,
    start_tls: Annotated[bool, typer.Option(help="ldap: StartTLS on an ldap:// URL.")] = False,
    tls_ca_file: Annotated[
        Path | None, typer.Option(help="ldap: the directory's CA certificates (PEM); else the system's.")
    ] = None,
    bind_dn: Annotated[str | None, typer.Option(help="ldap: the service account that searches.")] = None,
    bind_password_env: Annotated[
        str | None, typer.Option(help="ldap: environment variable holding its password (stored encrypted).")
    ] = None,
    user_base: Annotated[str | None, typer.Option(help="ldap: where users are searched.")] = None,
    user_filter: Annotated[str, typer.Option(help="ldap: with {username}.")] = "(uid={username})",
    group_base: Annotated[str | None, typer.Option(help="ldap: where groups are searched.")] = None,
    group_filter: Annotated[str | None, typer.Option(help="ldap: which entries are groups.")] = None,
    nested_groups: Annotated[bool, typer.Option(help="ldap: members of groups inside mapped groups count.")] = False,
    sync_interval: Annotated[int, typer.Option(help="ldap: seconds between syncs (0: only `idp sync`).")] = 300,
    as_json: JsonOpt = False,
) -> None:
    """Add an identity provider. The client secret (an LDAP bind password) is stored encrypted and
    never shown again."""
    from tillkey.federation.providers import NewProvider, parse_role_map, provider_json

    if protocol == "ldap":
        if bind_password_env is None or not os.environ.get(bind_password_env):
            _fail("an ldap provider needs --bind-password-env naming a set environment variable")
        client_secret_env, issuer, client_id = bind_password_env, url or "", bind_dn or ""
        provision = "jit"  # the sync provisions the directory's members of mapped groups
        ldap_options = {
            "user_base": user_base or "",
            "user_filter": user_filter,
            "group_base": group_base or "",
            "group_filter": group_filter or "",
            "nested_groups": "1" if nested_groups else "",
            "start_tls": "1" if start_tls else "",
            "tls_ca_file": str(tls_ca_file.resolve()) if tls_ca_file else "",
            "sync_interval": str(sync_interval),
        }

    if client_secret_env is not None and client_secret is not None:
        _fail("give --client-secret-env or --client-secret, not both")
    secret = client_secret
    if client_secret_env is not None:
        secret = os.environ.get(client_secret_env)
        if not secret:
            _fail(f"the environment variable {client_secret_env} is empty or not set")
    if private_key_file is not None:
        if secret is not None:
            _fail("give a client secret or --private-key-file (apple), not both")
        try:
            secret = private_key_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {private_key_file}: {exc}")
    settings = {k: v for k, v in {"tenant": tenant, "team_id": team_id, "key_id": key_id}.items() if v is not None}
    given = idp_saml.read(metadata_file, metadata_url) if protocol == "saml" else None
    if protocol == "saml":
        settings |= {"idp_initiated": "on" if idp_initiated else "off", **idp_saml.attributes(attribute_email)}
        groups_claim = groups_claim or groups_attribute
    if protocol == "ldap":
        settings = ldap_options
    try:
        mapped = parse_role_map(role_map or [])
    except TillkeyError as exc:
        _fail(_message(exc))
    new = NewProvider(
        name=name,
        issuer=issuer,
        client_id=client_id,
        actor=actor,
        client_secret=secret,
        protocol=protocol,
        display_name=display_name,
        scope=scope,
        redirect_uri=redirect_uri,
        groups_claim=groups_claim,
        role_map=mapped,
        default_role=default_role,
        provisioning=provision,
        allowed_domains=allowed_domain or [],
        trust_email_domains=trust_email_domains,
        mfa_from_amr=mfa_from_amr,
        userinfo=userinfo,
        preset=preset,
        settings=settings,
    )

    async def go(tk: Tillkey) -> dict[str, Any]:
        if protocol == "saml":
            metadata = await idp_saml.metadata(tk, given, metadata_url)
            return provider_json(await tk.services.saml_providers.add(OPERATOR, new, metadata))
        return provider_json(await tk.services.identity_providers.add(OPERATOR, new))

    _show(_run(go), as_json, "Identity provider added")


@commands.command("update")
def idp_update(
    name: str,
    role_map: Annotated[list[str] | None, typer.Option(help="GROUP=ROLE; repeat. Replaces the whole map.")] = None,
    no_role_map: Annotated[bool, typer.Option("--no-role-map", help="Empty the role map.")] = False,
    default_role: Annotated[str | None, typer.Option(help='Role when no group maps; "" for none.')] = None,
    groups_claim: Annotated[str | None, typer.Option(help='ID token claim listing groups; "" for none.')] = None,
    userinfo: Annotated[
        bool | None,
        typer.Option(
            "--userinfo/--no-userinfo",
            help="Merge the userinfo endpoint's claims (its sub must be the ID token's).",
        ),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Shown on buttons.")] = None,
    idp_initiated: Annotated[
        bool | None, typer.Option("--idp-initiated/--no-idp-initiated", help="saml: accept unsolicited sign-ins.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a provider. A change to its roles (map, order, default, groups claim) signs out every
    admin linked through it at once, on every server: their next sign-in maps their groups anew."""
    from tillkey.federation.providers import Changes, parse_role_map, provider_json

    if role_map and no_role_map:
        _fail("give --role-map or --no-role-map, not both")
    try:
        mapped = {} if no_role_map else parse_role_map(role_map) if role_map else None
    except TillkeyError as exc:
        _fail(_message(exc))
    changes = Changes(
        role_map=mapped,
        default_role=default_role,
        groups_claim=groups_claim,
        userinfo=userinfo,
        display_name=display_name,
        settings=None if idp_initiated is None else {"idp_initiated": "on" if idp_initiated else "off"},
    )

    async def go(tk: Tillkey) -> dict[str, Any]:
        return provider_json(await tk.services.identity_providers.update(OPERATOR, name, changes))

    _show(_run(go), as_json, f"Identity provider {name} updated")


@commands.command("list")
def idp_list(as_json: JsonOpt = False) -> None:
    """List identity providers (never their secrets)."""
    from tillkey.federation.providers import provider_json

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        health = await tk.services.directory.health()  # LDAP providers' last sync
        return [
            provider_json(p) | ({"sync": health[p.name]} if p.name in health else {})
            for p in await tk.services.identity_providers.listed()
        ]

    rows = _run(go)
    if as_json:
        sys.stdout.write(json.dumps({"providers": rows}) + "\n")
        return
    table = Table("name", "actor", "issuer", "client_id", "provisioning", "enabled")
    for r in rows:
        table.add_row(r["name"], r["actor"], r["issuer"], r["client_id"], r["provisioning"], str(r["enabled"]))
    out.print(table)


@commands.command("show")
def idp_show(name: str, as_json: JsonOpt = False) -> None:
    """One provider's settings (the secret only as has_client_secret); an LDAP one's last sync."""
    from tillkey.federation.providers import provider_json

    async def go(tk: Tillkey) -> dict[str, Any]:
        health = await tk.services.directory.health()
        found = provider_json(await tk.services.identity_providers.get(name))
        return found | ({"sync": health[name]} if name in health else {})

    _show(_run(go), as_json, f"Identity provider {name}")


def _set_enabled(name: str, enabled: bool, as_json: bool) -> None:
    from tillkey.federation.providers import provider_json

    async def go(tk: Tillkey) -> dict[str, Any]:
        return provider_json(await tk.services.identity_providers.set_enabled(name, enabled))

    _show(_run(go), as_json, f"Identity provider {name} {'enabled' if enabled else 'disabled'}")


@commands.command("disable")
def idp_disable(name: str, as_json: JsonOpt = False) -> None:
    """Stop sign-ins through a provider at once (its linked identities are kept)."""
    _set_enabled(name, False, as_json)


@commands.command("enable")
def idp_enable(name: str, as_json: JsonOpt = False) -> None:
    """Allow sign-ins through a disabled provider again."""
    _set_enabled(name, True, as_json)


@commands.command("test")
def idp_test(
    name: str,
    username: Annotated[str | None, typer.Option(help="ldap: find this user.")] = None,
    password_env: Annotated[str | None, typer.Option(help="ldap: and bind with this variable's password.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch the provider's discovery document and keys as a sign-in would (through the SSRF guard);
    for LDAP, bind as the service account, read the groups and optionally sign a user in (nothing
    is provisioned)."""
    from tillkey.federation.oidc import Refused

    async def go(tk: Tillkey) -> dict[str, Any]:
        provider = await tk.services.identity_providers.get(name)
        if provider.protocol == "ldap":
            password = os.environ.get(password_env) if password_env else None
            tested = await tk.services.directory.test(name, username, password)
            found = tested.person
            return {"name": name, "ok": tested.ok, "detail": tested.detail} | (
                {"user_dn": found.dn, "email": found.email} if found else {}
            )
        try:
            if provider.protocol == "saml":
                return {"name": name, "ok": True, **await tk.services.saml_sp.check(provider)}
            return {"name": name, "ok": True, **await tk.services.relying_party.check(provider)}
        except Refused as exc:
            return {"name": name, "ok": False, "reason": exc.detail}

    result = _run(go)
    _show(result, as_json, f"Identity provider {name}")
    if not result["ok"]:
        raise typer.Exit(1)


@commands.command("sync")
def idp_sync(name: str, as_json: JsonOpt = False) -> None:
    """Sync an LDAP provider now: members of mapped groups provisioned or updated, the rest
    deactivated (tokens revoked, sessions ended). A run already going elsewhere wins."""

    async def go(tk: Tillkey) -> dict[str, Any]:
        return (await tk.services.directory_sync.sync(name)).as_json()

    result = _run(go)
    _show(result, as_json, f"Directory {name} synced" if result["ran"] else f"Directory {name} not synced")
    if result["error"]:
        raise typer.Exit(1)


@commands.command("remove")
def idp_remove(name: str, as_json: JsonOpt = False) -> None:
    """Remove a provider and the identities linked from it (the accounts stay)."""

    async def go(tk: Tillkey) -> int:
        return await tk.services.identity_providers.remove(name)

    unlinked = _run(go)
    _show({"name": name, "removed": True, "unlinked_identities": unlinked}, as_json, "Identity provider removed")


commands.add_typer(idp_saml.certs, name="saml-cert")
commands.command("saml-metadata")(idp_saml.refresh_metadata)
