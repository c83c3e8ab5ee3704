"""The SAML parts of `tillkey idp` (issue 15): the IdP metadata for `idp add --protocol saml` and
`idp saml-metadata NAME`, and `idp saml-cert rotate|show NAME` for the SP's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tillkey.errors import InvalidRequest

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

certs = typer.Typer(no_args_is_help=True, help="The SAML service provider's certificate of a provider.")


def attributes(email: str | None) -> dict[str, str]:
    return {"attribute_email": email} if email else {}


def read(file: Path | None, url: str | None) -> str | None:
    """The metadata file's text (None: fetch the URL when the runtime is up)."""
    if (file is None) == (url is None):
        typer.echo("error: a SAML provider needs --metadata-file or --metadata-url (one of them)", err=True)
        raise typer.Exit(1)
    if file is None:
        return None
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(1) from None


async def metadata(tk: Tillkey, text: str | None, url: str | None) -> str:
    if text is None:
        if url is None:
            raise InvalidRequest("A SAML provider needs --metadata-file or --metadata-url.")
        return await tk.services.saml_providers.fetch(url)
    return text


def refresh_metadata(
    name: str,
    metadata_file: Annotated[Path | None, typer.Option(help="The IdP's metadata XML file.")] = None,
    metadata_url: Annotated[str | None, typer.Option(help="The IdP's metadata URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Load a SAML provider's metadata again (the IdP rotated its signing key); same entity ID only."""
    from tillkey.cli.idp import _run, _show
    from tillkey.federation.providers import provider_json

    given = read(metadata_file, metadata_url)

    async def go(tk: Tillkey) -> dict[str, Any]:
        text = await metadata(tk, given, metadata_url)
        return provider_json(await tk.services.saml_providers.set_metadata(name, text))

    _show(_run(go), as_json, f"Identity provider {name}: metadata loaded")


@certs.command("rotate")
def rotate(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """A new SP key pair. The previous certificate stays in the metadata (and its key decrypts)
    until the next rotation: give the IdP the new metadata before rotating again."""
    from tillkey.cli.idp import _run, _show

    async def go(tk: Tillkey) -> dict[str, str]:
        return await tk.services.saml_providers.rotate(name)

    _show(_run(go), as_json, f"Identity provider {name}: SP certificate rotated")


@certs.command("show")
def show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """The SHA-256 fingerprints of the SP's current and previous certificates."""
    from tillkey.cli.idp import _run, _show

    async def go(tk: Tillkey) -> dict[str, Any]:
        return {"name": name, **await tk.services.saml_providers.certificates(name)}

    _show(_run(go), as_json, f"Identity provider {name}: SP certificates")
