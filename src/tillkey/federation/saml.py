"""The SAML 2.0 service provider (SAML Core, Bindings, Profiles §4.1 Web Browser SSO), with
pysaml2 and xmlsec1 for XML signatures and encryption, not hand-written XML crypto.

    begin:  AuthnRequest (HTTP-Redirect) → its ID and RelayState kept (idp_flows, keyed by the
            ID's digest: InResponseTo must name a request this SP sent, in any process)
    finish: SAMLResponse (HTTP-POST) → shape (no comments, no DTD, one assertion, nothing beside)
            → pysaml2: schema, signature by the IdP's metadata key (on the response or the
            assertion), decryption with the SP key → Tillkey's own checks, each named: signed,
            Issuer, Destination, Audience, Recipient, time with bounded skew (the injected clock),
            InResponseTo spent once (IdP-initiated only where the provider allows it), assertion ID
            first seen (replay cache in the database) → an `Assertion`, as OpenID Connect's.

pysaml2 reads the wall clock, so its own time checks are given a slack that never bites; the
checks that count run here on `clock.now()`. Every refusal raises `Refused` (a 401 whose detail
goes to the audit log only).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tillkey.crypto.secrets import constant_time_equals, random_token
from tillkey.federation.oidc import Assertion, Refused
from tillkey.federation.saml_keys import KeyFiles
from tillkey.federation.saml_response import MAX_RESPONSE_BYTES, Checked, decoded, facts, instant, shape
from tillkey.store import idps as repo
from tillkey.store import saml as saml_repo
from tillkey.store.idps import Flow, Provider
from tillkey.store.saml import SamlSide

if TYPE_CHECKING:
    # pysaml2 is imported where a SAML provider is used, not with this module: loading it (its XML
    # schemas) costs a few tenths of a CPU second, paid by every server start and CLI command.
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

    from tillkey.clock import Clock
    from tillkey.credentials.dpop import ReplayCache
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database

SKEW_SECONDS = 120  # clocks of IdP and SP may differ this much, no more
PYSAML2_SLACK = 10 * 365 * 86400  # pysaml2's wall-clock checks: off (ours use the injected clock)
KEY_CONTEXT = "saml-sp-key"
HANDLE_CONTEXT = "saml-response-handle"


def xmlsec1() -> str:
    """The xmlsec1 program pysaml2 runs for every signature and decryption (Debian: xmlsec1)."""
    found = shutil.which("xmlsec1")
    if found is None:
        raise Refused("xmlsec1 is not installed: SAML needs it (Debian: apt-get install xmlsec1)")
    return found


def sp_entity_id(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/saml/{name}/metadata"


def acs_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/saml/{name}/acs"


def request_key(request_id: str) -> str:
    return f"saml-request:{request_id}"


def handle_key(handle: str) -> str:
    return f"saml-handle:{handle}"


class ServiceProvider:
    """One per process (wiring.py); its pysaml2 clients are cached per provider and key pair."""

    def __init__(
        self, *, db: Database, settings: Settings, master: MasterSecret, clock: Clock, replay: ReplayCache
    ) -> None:
        self.db = db
        self.settings = settings
        self.master = master
        self.clock = clock
        self.replay = replay
        self.files = KeyFiles()
        self._clients: dict[tuple[int, int, str], Saml2Client] = {}
        # Signed once per key pair and IdP metadata: the route is public, and signing runs xmlsec1.
        self._metadata_cache: dict[tuple[int, int, str], str] = {}

    @property
    def base(self) -> str:
        return self.settings.issuer

    async def side(self, provider: Provider) -> SamlSide:
        async with self.db.session() as s:
            found = await saml_repo.get(s, provider.id)
        if found is None:
            raise Refused(f"SAML provider {provider.name} has no metadata stored")
        return found

    def config(self, provider: Provider, side: SamlSide) -> SPConfig:
        from saml2 import BINDING_HTTP_POST
        from saml2.config import SPConfig

        current = self.files.pair(side.sp_cert, self.master.decrypt(side.sp_key_enc, KEY_CONTEXT))
        pairs = [current]
        if side.previous_cert and side.previous_key_enc:
            pairs.append(self.files.pair(side.previous_cert, self.master.decrypt(side.previous_key_enc, KEY_CONTEXT)))
        conf = SPConfig()
        conf.load(
            {
                "entityid": sp_entity_id(self.base, provider.name),
                "xmlsec_binary": xmlsec1(),
                "key_file": current[0],
                "cert_file": current[1],
                "encryption_keypairs": [{"key_file": k, "cert_file": c} for k, c in pairs],
                "metadata": {"inline": [side.idp_metadata]},
                "accepted_time_diff": PYSAML2_SLACK,
                "allow_unknown_attributes": True,
                "service": {
                    "sp": {
                        "name": provider.display_name,
                        "endpoints": {
                            "assertion_consumer_service": [(acs_url(self.base, provider.name), BINDING_HTTP_POST)]
                        },
                        # InResponseTo is checked here against the database (every process's requests).
                        "allow_unsolicited": True,
                        "want_response_signed": False,
                        "want_assertions_signed": False,
                        "want_assertions_or_response_signed": True,
                        "authn_requests_signed": False,
                    }
                },
            }
        )
        return conf

    def client(self, provider: Provider, side: SamlSide) -> Saml2Client:
        key = (provider.id, side.rotated_ms, hashlib.sha256(side.idp_metadata.encode()).hexdigest())
        found = self._clients.get(key)
        if found is None:
            from saml2.client import Saml2Client

            try:
                made = Saml2Client(config=self.config(provider, side))
            except Exception as exc:  # pysaml2 refuses metadata or keys with exceptions of every kind
                raise Refused(f"SAML configuration: {type(exc).__name__}: {str(exc)[:200]}") from None
            self._clients = {k: v for k, v in self._clients.items() if k[0] != provider.id}
            found = self._clients[key] = made
        return found

    async def check(self, provider: Provider) -> dict[str, Any]:
        """What `tillkey idp test` shows for a SAML provider: the stored metadata read as a sign-in
        would, and where the browser is sent."""
        from saml2 import BINDING_HTTP_REDIRECT

        side = await self.side(provider)
        client = await asyncio.to_thread(self.client, provider, side)
        sso = client.metadata.single_sign_on_service(provider.issuer, BINDING_HTTP_REDIRECT)
        return {
            "issuer": provider.issuer,
            "sp_entity_id": sp_entity_id(self.base, provider.name),
            "acs": acs_url(self.base, provider.name),
            "sso_url": next((s.get("location") for s in sso), None),
            "signing_certificates": len(client.metadata.certs(provider.issuer, "idpsso", "signing")),
        }

    # --- metadata ---------------------------------------------------------------------------------

    async def metadata(self, provider: Provider) -> str:
        """The SP's metadata, signed with its current key; the previous certificate stays listed
        for encryption until the next rotation, so an IdP that has not refreshed still works."""
        side = await self.side(provider)
        key = (provider.id, side.rotated_ms, provider.display_name)
        found = self._metadata_cache.get(key)
        if found is None:
            found = await asyncio.to_thread(self._metadata, provider, side)
            self._metadata_cache = {k: v for k, v in self._metadata_cache.items() if k[0] != provider.id}
            self._metadata_cache[key] = found
        return found

    def _metadata(self, provider: Provider, side: SamlSide) -> str:
        from saml2.metadata import entity_descriptor, sign_entity_descriptor
        from saml2.sigver import security_context

        conf = self.client(provider, side).config
        try:
            descriptor = entity_descriptor(conf)
            _, signed = sign_entity_descriptor(descriptor, None, security_context(conf))
        except Exception as exc:  # xmlsec1 missing or failing: a clean refusal, not a 500
            raise Refused(f"SP metadata: {type(exc).__name__}: {str(exc)[:200]}") from None
        return str(signed)

    # --- the authentication request ---------------------------------------------------------------

    async def begin(self, provider: Provider, context: Mapping[str, str]) -> str:
        from saml2 import BINDING_HTTP_REDIRECT

        side = await self.side(provider)
        relay_state = random_token(32)
        client = await asyncio.to_thread(self.client, provider, side)
        try:
            request_id, info = await asyncio.to_thread(
                client.prepare_for_authenticate,
                entityid=provider.issuer,
                relay_state=relay_state,
                binding=BINDING_HTTP_REDIRECT,
            )
        except Exception as exc:  # pysaml2 raises bare exceptions for metadata without an SSO service
            raise Refused(f"AuthnRequest: {type(exc).__name__}: {str(exc)[:200]}") from None
        now_ms = int(self.clock.now() * 1000)
        flow = Flow(provider.id, relay_state, b"", dict(context), now_ms + self.settings.federation_flow_ttl * 1000)
        async with self.db.transaction() as s:
            await repo.start_flow(s, self.master.digest(request_key(request_id)), flow, now_ms)
        return str(dict(info["headers"])["Location"])

    # --- a customer's response, parked for the storefront ------------------------------------------

    async def park(self, provider: Provider, form: Mapping[str, str]) -> str:
        """A customer provider's response, kept unread for a minute under a one-time handle: the
        ACS sends the browser to the storefront with `code` (the handle) and `state` (RelayState),
        and the storefront finishes the sign-in through /auth/customer/{name}/callback as it does
        for OpenID Connect, where the response is checked and the token handed out."""
        response = form.get("SAMLResponse") or ""
        if not response or len(response) > MAX_RESPONSE_BYTES:
            raise Refused("ACS post without a SAMLResponse, or too large")
        handle = random_token(32)
        now_ms = int(self.clock.now() * 1000)
        flow = Flow(
            provider.id,
            (form.get("RelayState") or "")[:128],
            self.master.encrypt(response.encode(), HANDLE_CONTEXT),
            {},
            now_ms + 60_000,
        )
        async with self.db.transaction() as s:
            await repo.start_flow(s, self.master.digest(handle_key(handle)), flow, now_ms)
        return handle

    async def _unparked(self, provider: Provider, params: Mapping[str, str]) -> dict[str, str]:
        handle, state = params.get("code") or "", params.get("state") or ""
        if not handle or len(handle) > 512:
            raise Refused("callback without a SAMLResponse or a code")
        now_ms = int(self.clock.now() * 1000)
        async with self.db.transaction() as s:
            flow = await repo.spend_flow(s, self.master.digest(handle_key(handle)), now_ms)
        if flow is None or flow.provider_id != provider.id:
            raise Refused("unknown, spent or expired SAML response handle")
        if not constant_time_equals(flow.nonce, state):
            raise Refused("state is not the RelayState the response came with")
        response = self.master.decrypt(flow.verifier_enc, HANDLE_CONTEXT).decode()
        return {"SAMLResponse": response, "RelayState": flow.nonce}

    # --- the response -------------------------------------------------------------------------------

    async def finish(self, provider: Provider, params: Mapping[str, str]) -> Assertion:
        if "SAMLResponse" not in params:
            params = await self._unparked(provider, params)
        document = decoded(params.get("SAMLResponse") or "")
        shape(document)
        side = await self.side(provider)
        checked = await asyncio.to_thread(self._verified, provider, side, document)
        self._check(provider, checked)
        context = await self._answered(provider, checked, params.get("RelayState") or "")
        await self._first_sight(provider, checked)
        return self._assertion(provider, checked, context)

    def _verified(self, provider: Provider, side: SamlSide, document: bytes) -> Checked:
        from saml2 import BINDING_HTTP_POST

        client = self.client(provider, side)
        encoded = base64.b64encode(document).decode()
        try:
            answer = client.parse_authn_request_response(encoded, BINDING_HTTP_POST, outstanding={})
        except Exception as exc:  # pysaml2 signals every refusal with its own exception classes
            raise Refused(f"SAMLResponse refused: {type(exc).__name__}: {str(exc)[:200]}") from None
        if answer is None or answer.assertion is None:
            raise Refused("SAMLResponse refused: no valid assertion")
        try:
            return facts(answer)
        except (AttributeError, TypeError, ValueError) as exc:  # a shape the schema allows and we do not read
            raise Refused(f"SAMLResponse unreadable: {type(exc).__name__}: {str(exc)[:200]}") from None

    def _check(self, provider: Provider, c: Checked) -> None:
        acs = acs_url(self.base, provider.name)
        audience = sp_entity_id(self.base, provider.name)
        if not (c.response_signed or c.assertion_signed):
            raise Refused("neither the response nor the assertion is signed")
        if c.issuer != provider.issuer:
            raise Refused(f"issuer {c.issuer[:200]!r} is not {provider.issuer!r}")
        # Bindings §3.5.5.2: a signed response over HTTP-POST names where it was sent.
        if c.destination != acs and (c.destination is not None or c.response_signed):
            raise Refused(f"Destination {str(c.destination)[:200]!r} is not this ACS")
        if audience not in c.audiences:
            raise Refused(f"Audience {list(c.audiences)[:3]!r} does not name this SP")
        now = self.clock.now()
        if c.not_before is not None and instant(c.not_before) > now + SKEW_SECONDS:
            raise Refused("assertion not yet valid (NotBefore)")
        if c.not_on_or_after is not None and instant(c.not_on_or_after) <= now - SKEW_SECONDS:
            raise Refused("assertion expired (NotOnOrAfter)")
        # Profiles §4.1.4.2: a bearer confirmation with Recipient (this ACS) and NotOnOrAfter.
        bearer = [b for b in c.confirmations if b[0] == acs]
        if not bearer:
            raise Refused("no bearer SubjectConfirmation whose Recipient is this ACS")
        for _, irt, noa in bearer:
            if noa is None or instant(noa) <= now - SKEW_SECONDS:
                raise Refused("SubjectConfirmationData expired or without NotOnOrAfter")
            if irt != c.in_response_to:
                raise Refused("SubjectConfirmationData InResponseTo is not the response's")

    async def _answered(self, provider: Provider, c: Checked, relay_state: str) -> dict[str, str]:
        """The request this response answers, spent (a second response to it finds nothing); or,
        where the provider allows it, none (IdP-initiated)."""
        if c.in_response_to is None:
            if provider.settings.get("idp_initiated") != "on":
                raise Refused("unsolicited response (IdP-initiated sign-in is off for this provider)")
            return {}
        now_ms = int(self.clock.now() * 1000)
        async with self.db.transaction() as s:
            flow = await repo.spend_flow(s, self.master.digest(request_key(c.in_response_to)), now_ms)
        if flow is None:
            raise Refused("InResponseTo names no request in flight (unknown, answered or expired)")
        if flow.provider_id != provider.id:
            raise Refused(f"response to another provider's request, posted to {provider.name}")
        if not relay_state or not constant_time_equals(flow.nonce, relay_state):
            raise Refused("RelayState missing, not bound to this browser, or not the request's (login CSRF?)")
        return {**flow.context, "relay_state": flow.nonce}

    async def _first_sight(self, provider: Provider, c: Checked) -> None:
        now = self.clock.now()
        ends = [instant(x) for x in (c.not_on_or_after, *(b[2] for b in c.confirmations)) if x is not None]
        expires_ms = int((max(ends, default=now) + SKEW_SECONDS) * 1000)
        # The one replay cache of single-use values (store/replay.py), shared by every process.
        if not await self.replay.first_sight(f"saml-assertion:{c.issuer}\n{c.assertion_id}", expires_ms / 1000):
            raise Refused(f"assertion {c.assertion_id[:80]!r} replayed")

    @staticmethod
    def _assertion(provider: Provider, c: Checked, context: dict[str, str]) -> Assertion:
        from saml2.saml import NAMEID_FORMAT_EMAILADDRESS

        if not c.name_id or len(c.name_id) > 255:
            raise Refused("assertion without a usable NameID")
        email_attribute = provider.settings.get("attribute_email") or ""
        emails = c.attributes.get(email_attribute, ()) if email_attribute else ()
        email = emails[0] if emails else (c.name_id if c.name_id_format == NAMEID_FORMAT_EMAILADDRESS else None)
        groups = c.attributes.get(provider.groups_claim, ()) if provider.groups_claim else ()
        name_attribute = provider.settings.get("attribute_name") or "displayName"
        names = c.attributes.get(name_attribute, ())
        # SAML has no email_verified: the email is the IdP's signed word, as trusted as its NameID.
        return Assertion(provider, c.name_id, email, None, groups, (), names[0] if names else "", context)
