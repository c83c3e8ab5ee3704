"""A software WebAuthn authenticator for tests, on Yubico's `fido2` (python-fido2): what a browser
and a platform authenticator answer to navigator.credentials.create() / .get().

`fido2` reads the server's options (PublicKeyCredentialCreationOptions / ...RequestOptions, so
options it could not parse fail here) and builds every byte on the wire: the client data
(CollectedClientData), the authenticator data and its flags (AuthenticatorData, AttestedCredential-
Data), the COSE public key (cose.ES256), the attestation object and the JSON responses
(RegistrationResponse / AuthenticationResponse). It ships no authenticator of its own (its client
speaks CTAP to a device, and refuses a wrong origin itself), so this module holds only what an
authenticator keeps: its P-256 keys (`cryptography`), one sign counter per credential, the user
handles of its discoverable credentials, and its flags. That is also what the refusal tests need
to turn: another origin or RP id, user verification off, a counter that goes back, another
credential, the attestation format, the AAGUID. Test code only: the server verifies with py_webauthn.

soft-webauthn was the other candidate: last released in 2022, pinned to fido2 < 2, never sets the
UV flag, holds one credential and answers bytes rather than the JSON a browser gives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cose
from fido2.utils import sha256, websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttachment,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    RegistrationResponse,
)

FLAG = AuthenticatorData.FLAG


def b64url(data: bytes) -> str:
    return websafe_encode(data)


def unb64url(text: str) -> bytes:
    return websafe_decode(text)


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0

    def public_key(self) -> cose.CoseKey:
        # ES256 by its algorithm id: the typed way in (ES256's own override is unannotated).
        return cose.CoseKey.for_alg(cose.ES256.ALGORITHM).from_cryptography_key(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


class SoftAuthenticator:
    """One authenticator holding any number of credentials (discoverable: it remembers the user handle)."""

    def __init__(
        self, origin: str, *, aaguid: bytes = bytes(16), uv: bool = True, synced: bool = False, counts: bool = True
    ) -> None:
        self.origin = origin
        self.aaguid = aaguid
        self.uv = uv
        self.synced = synced  # backup eligible and backed up (a synced passkey)
        self.counts = counts  # a signature counter; some authenticators keep it at 0
        self.credentials: list[Credential] = []

    def _flags(self, uv: bool | None) -> AuthenticatorData.FLAG:
        flags = FLAG.UP
        if self.uv if uv is None else uv:
            flags |= FLAG.UV
        if self.synced:
            flags |= FLAG.BE | FLAG.BS
        return flags

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        fmt: str = "none",
    ) -> dict[str, Any]:
        """navigator.credentials.create({publicKey: options}) → RegistrationResponseJSON."""
        parsed = PublicKeyCredentialCreationOptions.from_dict(options)
        rp = rp_id or parsed.rp.id or ""
        cred = Credential(os.urandom(32), ec.generate_private_key(ec.SECP256R1()), rp, parsed.user.id)
        client_data = CollectedClientData.create(
            CollectedClientData.TYPE.CREATE, parsed.challenge, origin or self.origin, cross_origin=False
        )
        attested = AttestedCredentialData.create(self.aaguid, cred.id, cred.public_key())
        auth_data = AuthenticatorData.create(sha256(rp.encode()), self._flags(uv) | FLAG.AT, 0, attested)
        statement: dict[str, Any] = {}
        if fmt == "packed":  # self attestation (WebAuthn §8.2): signed by the credential's own key
            statement = {"alg": cose.ES256.ALGORITHM, "sig": cred.sign(auth_data + client_data.hash)}
        self.credentials.append(cred)
        made = RegistrationResponse(
            raw_id=cred.id,
            response=AuthenticatorAttestationResponse(
                client_data=client_data, attestation_object=AttestationObject.create(fmt, auth_data, statement)
            ),
            authenticator_attachment=AuthenticatorAttachment.PLATFORM,
        )
        answer = dict(made)
        # fido2's response type has no transports (getTransports() in a browser): what a platform
        # authenticator reports.
        answer["response"] = {**answer["response"], "transports": ["internal"]}
        return answer

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        credential: Credential | None = None,
        counter: int | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get({publicKey: options}) → AuthenticationResponseJSON, with the
        first credential allowed (or any, for a discoverable request), or `credential`. counter:
        the sign counter to report instead of the next one (a cloned authenticator's)."""
        parsed = PublicKeyCredentialRequestOptions.from_dict(options)
        cred = credential or self._pick(parsed)
        rp = rp_id or cred.rp_id
        if counter is None:
            cred.counter += 1 if self.counts else 0
            counter = cred.counter
        client_data = CollectedClientData.create(
            CollectedClientData.TYPE.GET, parsed.challenge, origin or self.origin, cross_origin=False
        )
        auth_data = AuthenticatorData.create(sha256(rp.encode()), self._flags(uv), counter)
        made = AuthenticationResponse(
            raw_id=cred.id,
            response=AuthenticatorAssertionResponse(
                client_data=client_data,
                authenticator_data=auth_data,
                signature=cred.sign(auth_data + client_data.hash),
                user_handle=cred.user_handle,
            ),
            authenticator_attachment=AuthenticatorAttachment.PLATFORM,
        )
        return dict(made)

    def _pick(self, options: PublicKeyCredentialRequestOptions) -> Credential:
        allowed = {c.id for c in options.allow_credentials or ()}
        for cred in self.credentials:
            if cred.rp_id == options.rp_id and (not allowed or cred.id in allowed):
                return cred
        raise LookupError("no credential of this authenticator is allowed")
