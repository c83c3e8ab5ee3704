"""`tillkey client ...`: OAuth 2 / OpenID Connect clients."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import run
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="OAuth 2 / OpenID Connect clients.")


@commands.command("create")
def client_create(
    name: Annotated[str, typer.Option(help="Shown to users on the consent page.")],
    client_type: Annotated[str, typer.Option("--type", help="confidential (has a secret) or public (SPA, app).")],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Exact redirect URI; repeat for several.")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            help="authorization_code, client_credentials or refresh_token; repeat (default: the first and the last).",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="Resource id (see `tillkey role resources`), self, admin_self, or openid/profile/email; repeat.",
        ),
    ] = None,
    first_party: Annotated[bool, typer.Option(help="Trusted: no consent page.")] = False,
    resource_server: Annotated[
        bool,
        typer.Option(
            help="May introspect tokens issued to other clients and to users (RFC 7662); confidential only.",
        ),
    ] = False,
    require_pkce: Annotated[
        bool,
        typer.Option(
            help="Require PKCE even when TILLKEY_OAUTH2_REQUIRE_PKCE is off (always on for public clients).",
        ),
    ] = True,
    dpop_bound: Annotated[
        bool,
        typer.Option(help="Every access token must be DPoP-bound (RFC 9449): token requests need a DPoP proof."),
    ] = False,
    auth_method: Annotated[
        str | None,
        typer.Option(
            help="client_secret_basic (a secret, the default for confidential clients), private_key_jwt "
            "(RFC 7523: a JWT signed with a key of --jwks-file or --jwks-uri; no secret), tls_client_auth "
            "(RFC 8705: a client certificate with --tls-subject-dn or a --tls-san-*, through a TLS proxy), "
            "self_signed_tls_client_auth (a certificate whose key is in --jwks-file) or none (public).",
        ),
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="private_key_jwt: a JSON file with the client's public keys (a JWKS).")
    ] = None,
    jwks_uri: Annotated[
        str | None, typer.Option(help="private_key_jwt: an https URL serving the client's JWKS.")
    ] = None,
    tls_subject_dn: Annotated[
        str | None, typer.Option(help="tls_client_auth: the certificate's subject DN (RFC 4514, e.g. CN=a,O=b).")
    ] = None,
    tls_san_dns: Annotated[str | None, typer.Option(help="tls_client_auth: a DNS name in the certificate.")] = None,
    tls_san_uri: Annotated[str | None, typer.Option(help="tls_client_auth: a URI in the certificate.")] = None,
    tls_san_email: Annotated[str | None, typer.Option(help="tls_client_auth: an email in the certificate.")] = None,
    cert_bound: Annotated[
        bool,
        typer.Option(
            "--cert-bound",
            help="Access tokens bound to the client certificate it presents (RFC 8705 §3), through a TLS proxy.",
        ),
    ] = False,
    require_par: Annotated[
        bool,
        typer.Option(
            "--require-par",
            help="Authorization requests only through a pushed authorization request (RFC 9126).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a client. A confidential client's secret is printed once and never stored in clear."""
    from tillkey.surfaces.oauth2 import client_json

    given = {"subject_dn": tls_subject_dn, "san_dns": tls_san_dns, "san_uri": tls_san_uri, "san_email": tls_san_email}
    names = [(k, v) for k, v in given.items() if v is not None]
    if len(names) > 1:
        raise typer.BadParameter("give one of --tls-subject-dn, --tls-san-dns, --tls-san-uri, --tls-san-email")
    jwks = None
    if jwks_file is not None:
        try:
            jwks = jwks_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(
                f"cannot read {jwks_file}: {type(exc).__name__}", param_hint="--jwks-file"
            ) from None

    async def go(tk: Tillkey) -> dict[str, Any]:
        done = await tk.services.clients.create(
            OPERATOR,
            name=name,
            client_type=client_type,
            redirect_uris=redirect_uri or [],
            grant_types=grant or [],
            scopes=scope or [],
            first_party=first_party,
            require_pkce=require_pkce,
            resource_server=resource_server,
            dpop_bound_access_tokens=dpop_bound,
            auth_method=auth_method,
            jwks=jwks,
            jwks_uri=jwks_uri,
            require_pushed_authorization_requests=require_par,
            tls_client_certificate_bound_access_tokens=cert_bound,
            tls_client_auth=names[0] if names else None,
        )
        return client_json(done.client, done.secret)

    emit(run(go), as_json, "OAuth client registered (the secret is shown only now)")


@commands.command("list")
def client_list(as_json: JsonOpt = False) -> None:
    """List registered clients (never their secrets)."""
    from tillkey.surfaces.oauth2 import client_json

    async def go(tk: Tillkey) -> list[dict[str, Any]]:
        return [client_json(c) for c in await tk.services.clients.registered()]

    rows = run(go)
    if as_json:
        sys.stdout.write(json.dumps({"clients": rows}) + "\n")
        return
    table = Table("client_id", "name", "type", "auth method", "binding", "grant_types", "scopes")
    for r in rows:
        table.add_row(
            r["client_id"],
            r["name"],
            r["type"],
            r["token_endpoint_auth_method"],
            r["binding"],
            " ".join(r["grant_types"]),
            " ".join(r["scopes"]),
        )
    out.print(table)


@commands.command("delete")
def client_delete(client_id: str) -> None:
    """Delete a client: its refresh tokens are revoked and its access tokens stop working."""

    async def go(tk: Tillkey) -> None:
        await tk.services.clients.delete(client_id)

    run(go)
    typer.echo(f"client {client_id} deleted; its tokens are revoked")
