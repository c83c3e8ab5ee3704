"""`tillkey integration ...`: Magento integrations (OAuth 1.0a consumers)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tillkey.access.delegation import OPERATOR
from tillkey.cli.options import JsonOpt
from tillkey.cli.output import emit, out
from tillkey.cli.runner import run

commands = typer.Typer(no_args_is_help=True, help="Integrations (ERPs, back offices): OAuth 1.0a consumers.")

CertFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert-file",
        help="Bind to this client certificate (PEM): every call and token exchange must then come "
        "through the mTLS proxy with it (RFC 8705).",
    ),
]


def _read_pem(path: Path | None) -> str | None:
    """The file's text; whether it is a certificate the service decides (one rule for CLI and API)."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read {path} as a PEM certificate: {type(exc).__name__}", param_hint="--cert-file"
        ) from None


def _show(found: dict[str, Any], as_json: bool, title: str) -> None:
    emit(found if as_json else {**found, "certificate": found["certificate"] or "(none)"}, as_json, title)


@commands.command("create")
def integration_create(
    name: Annotated[str, typer.Option("--name", help="Unique name of the integration.")],
    resource: Annotated[list[str] | None, typer.Option("--resource", "-r", help="Resource id; repeatable.")] = None,
    all_resources: Annotated[bool, typer.Option("--all", help="Grant every resource.")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option(help="Where activation posts the OAuth handshake; none: manual activation.")
    ] = None,
    identity_link_url: Annotated[str | None, typer.Option(help="The integration's login page for the admin.")] = None,
    email: Annotated[str, typer.Option()] = "",
    cert_file: CertFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an integration: consumer key and secret (shown once) and its grant of resources."""

    pem = _read_pem(cert_file)
    created = run(
        lambda tk: tk.services.integrations.create(
            OPERATOR,
            name=name,
            resources=resource or [],
            all_resources=all_resources,
            email=email,
            endpoint_url=endpoint_url,
            identity_link_url=identity_link_url,
            certificate_pem=pem,
        )
    )
    emit(asdict(created), as_json, "integration created (the consumer secret is not shown again)")


@commands.command("list")
def integration_list(as_json: JsonOpt = False) -> None:
    """List integrations (no secrets)."""

    rows = run(lambda tk: tk.services.integrations.list())
    if as_json:
        sys.stdout.write(json.dumps({"integrations": rows}) + "\n")
        return
    table = Table("id", "name", "status", "consumer key", "access token", "endpoint", "certificate", "resources")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["status"],
            r["consumer_key"],
            "yes" if r["has_access_token"] else "no",
            r["endpoint_url"] or "(manual)",
            r["certificate"] or "(none)",
            "\n".join(r["resources"]),
        )
    out.print(table)


@commands.command("show")
def integration_show(name: str, as_json: JsonOpt = False) -> None:
    """One integration (no secrets): status, grant, and the certificate it is bound to (x5t#S256)."""

    _show(run(lambda tk: tk.services.integrations.get(name)), as_json, f"Integration {name}")


@commands.command("update")
def integration_update(
    name: str,
    cert_file: CertFileOpt = None,
    no_cert: Annotated[
        bool, typer.Option("--no-cert", help="Unbind: calls are accepted without a client certificate.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bind an integration to a client certificate (--cert-file PEM) or unbind it (--no-cert). Its
    tokens stay valid; every server applies the change within the sync interval."""

    if (cert_file is None) == (not no_cert):
        raise typer.BadParameter("give --cert-file PEM or --no-cert")
    pem = _read_pem(cert_file)
    found = run(lambda tk: tk.services.integrations.bind_certificate(name, pem, acting=OPERATOR))
    _show(found, as_json, f"Integration {name} updated")


@commands.command("activate")
def integration_activate(name: str, as_json: JsonOpt = False) -> None:
    """Activate or re-authorize. Manual: prints the access token and secret (shown once; older
    tokens are revoked). With an endpoint: posts the handshake to it, to finish within 300 s."""

    done = run(lambda tk: tk.services.integrations.activate(OPERATOR, name))
    emit({k: v for k, v in asdict(done).items() if v is not None}, as_json, "integration activation")


@commands.command("deactivate")
def integration_deactivate(name: str) -> None:
    """Refuse the integration's calls until it is activated again."""

    run(lambda tk: tk.services.integrations.deactivate(name))
    typer.echo(f"integration {name} deactivated")


@commands.command("revoke")
def integration_revoke(name: str) -> None:
    """Revoke the integration's access token; `activate` issues a new one."""

    count = run(lambda tk: tk.services.integrations.revoke(name))
    typer.echo(f"integration {name}: {count} token(s) revoked")


@commands.command("delete")
def integration_delete(name: str) -> None:
    """Delete an integration and its tokens."""

    run(lambda tk: tk.services.integrations.delete(name))
    typer.echo(f"integration {name} deleted")
