"""SAML providers as data: added from the IdP's metadata (a file, or a URL fetched through the
SSRF guard), the metadata refreshed, the SP certificate rotated. The provider itself is an
ordinary provider record (providers.py: name, actor, role map, linking rules); this module keeps
what only SAML has beside it (store/saml.py)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.errors import InvalidRequest
from tillkey.federation.providers import NewProvider
from tillkey.federation.saml import KEY_CONTEXT, acs_url, sp_entity_id
from tillkey.federation.saml_keys import fingerprint, new_pair
from tillkey.security.outbound import GuardedTransport, Undeliverable
from tillkey.store import saml as saml_repo
from tillkey.store.idps import Provider
from tillkey.store.saml import SamlSide

if TYPE_CHECKING:
    from tillkey.clock import Clock
    from tillkey.contracts import Audit
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.federation.providers import IdentityProviders
    from tillkey.principal import Principal
    from tillkey.settings import Settings
    from tillkey.store.db import Database

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
MAX_METADATA_BYTES = 1024 * 1024


def idp_entity_id(metadata: str) -> str:
    """The entity ID of the one IdP the metadata describes; refused unless it has an SSO service
    over HTTP-Redirect and a signing certificate (an IdP that signs nothing cannot be trusted)."""
    try:
        root = ElementTree.fromstring(metadata.encode())
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidRequest(f"The SAML metadata is not XML that can be read safely: {exc}") from None
    entities = [root] if root.tag == f"{MD}EntityDescriptor" else list(root.iter(f"{MD}EntityDescriptor"))
    idps = [e for e in entities if e.find(f"{MD}IDPSSODescriptor") is not None]
    if len(idps) != 1:
        raise InvalidRequest("The SAML metadata must describe exactly one identity provider.")
    idp = idps[0]
    descriptor = idp.find(f"{MD}IDPSSODescriptor")
    assert descriptor is not None
    if not any(s.get("Binding") == REDIRECT for s in descriptor.iter(f"{MD}SingleSignOnService")):
        raise InvalidRequest("The identity provider has no SingleSignOnService with the HTTP-Redirect binding.")
    keys = [k for k in descriptor.iter(f"{MD}KeyDescriptor") if k.get("use") in (None, "signing")]
    if not keys:
        raise InvalidRequest("The identity provider's metadata has no signing certificate.")
    return str(idp.get("entityID") or "")


class SamlProviders:
    def __init__(
        self,
        *,
        db: Database,
        audit: Audit,
        settings: Settings,
        master: MasterSecret,
        clock: Clock,
        providers: IdentityProviders,
    ) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.master = master
        self.clock = clock
        self.providers = providers

    async def fetch(self, url: str) -> str:
        """The IdP's metadata from its URL, through the SSRF guard."""
        transport = GuardedTransport(allow_private=self.settings.federation_allow_private_endpoints, seconds=10.0)
        try:
            async with httpx.AsyncClient(transport=transport, timeout=10.0, trust_env=False) as client:
                answer = await client.get(url)
        except (httpx.HTTPError, Undeliverable) as exc:
            raise InvalidRequest(f"The SAML metadata could not be fetched: {type(exc).__name__}: {exc}") from None
        if answer.status_code != 200 or len(answer.content) > MAX_METADATA_BYTES:
            raise InvalidRequest(f"The SAML metadata could not be fetched: HTTP {answer.status_code}.")
        return answer.text

    def _pair(self, name: str) -> tuple[str, bytes]:
        cert, key = new_pair(f"Tillkey SAML SP {name}", self.clock.now())
        return cert, self.master.encrypt(key, KEY_CONTEXT)

    async def add(self, acting: Principal, new: NewProvider, metadata: str) -> Provider:
        if shutil.which("xmlsec1") is None:
            raise InvalidRequest("SAML needs the xmlsec1 program on this host (Debian: apt-get install xmlsec1).")
        if len(metadata.encode()) > MAX_METADATA_BYTES:
            raise InvalidRequest("The SAML metadata is too large.")
        entity = idp_entity_id(metadata)
        base = self.settings.issuer
        redirect = new.redirect_uri or (acs_url(base, new.name) if new.actor == "admin" else "")
        new = replace(
            new,
            protocol="saml",
            issuer=entity,
            client_id=sp_entity_id(base, new.name),
            scope="",
            redirect_uri=redirect,
            client_secret=None,
        )
        cert, key_enc = self._pair(new.name)
        now_ms = int(self.clock.now() * 1000)

        async def beside(s: AsyncSession, added: Provider) -> None:
            await saml_repo.put(s, SamlSide(added.id, metadata, cert, key_enc, None, None, now_ms))

        return await self.providers.add(acting, new, beside)

    async def _saml(self, name: str) -> tuple[Provider, SamlSide]:
        provider = await self.providers.get(name)
        async with self.db.session() as s:
            side = await saml_repo.get(s, provider.id)
        if provider.protocol != "saml" or side is None:
            raise InvalidRequest("This identity provider does not use SAML.")
        return provider, side

    async def set_metadata(self, name: str, metadata: str) -> Provider:
        """New IdP metadata (its keys rotated); the entity ID must stay the one linked identities
        came from."""
        provider, side = await self._saml(name)
        if idp_entity_id(metadata) != provider.issuer:
            raise InvalidRequest("The new metadata names another entity ID: add it as another provider.")
        async with self.db.transaction() as s:
            await saml_repo.put(s, replace(side, idp_metadata=metadata))
            await self._audit(s, name, "saml-metadata")
        return provider

    async def rotate(self, name: str) -> dict[str, str]:
        """A new SP key pair; the current one becomes the previous, still published for encryption
        and still able to decrypt, until the next rotation."""
        _, side = await self._saml(name)
        cert, key_enc = self._pair(name)
        rotated = replace(
            side,
            sp_cert=cert,
            sp_key_enc=key_enc,
            previous_cert=side.sp_cert,
            previous_key_enc=side.sp_key_enc,
            rotated_ms=int(self.clock.now() * 1000),
        )
        async with self.db.transaction() as s:
            await saml_repo.put(s, rotated)
            await self._audit(s, name, "saml-cert-rotated", fingerprint=fingerprint(cert))
        return {"name": name, "current": fingerprint(cert), "previous": fingerprint(side.sp_cert)}

    async def certificates(self, name: str) -> dict[str, str | None]:
        _, side = await self._saml(name)
        previous = fingerprint(side.previous_cert) if side.previous_cert else None
        return {"current": fingerprint(side.sp_cert), "previous": previous}

    async def _audit(self, s: AsyncSession, name: str, change: str, **details: object) -> None:
        await self.audit.record_in(s, audit.IDP_CHANGED, details={"provider": name, "change": change, **details})
