"""A software WebAuthn authenticator for tests: what a browser and a platform authenticator answer
to navigator.credentials.create() / .get(), built by hand from the spec (WebAuthn Level 3 §6.1
authenticator data, §6.5 attestation object, §5.8.1 client data), with a P-256 key from
`cryptography` and CBOR from `cbor2`. Test code only: the server verifies with py_webauthn.

Every knob a test needs to forge a wrong answer is a keyword: origin, rp_id, user verification,
the counter, another credential, the attestation format, the AAGUID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

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

    def _flags(self, uv: bool | None, attested: bool = False) -> int:
        flags = UP | (UV if (self.uv if uv is None else uv) else 0)
        flags |= (BE | BS) if self.synced else 0
        return flags | (AT if attested else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

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
        rp = rp_id or options["rp"]["id"]
        cred = Credential(os.urandom(32), ec.generate_private_key(ec.SECP256R1()), rp, unb64url(options["user"]["id"]))
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = self.aaguid + struct.pack(">H", len(cred.id)) + cred.id + cred.cose_public_key()
        auth_data = hashlib.sha256(rp.encode()).digest() + bytes([self._flags(uv, True)]) + struct.pack(">I", 0)
        auth_data += attested
        statement: dict[str, Any] = {}
        if fmt == "packed":  # self attestation (§8.2): signed by the credential's own key
            statement = {"alg": -7, "sig": cred.sign(auth_data + hashlib.sha256(client_data).digest())}
        attestation = cbor2.dumps({"fmt": fmt, "attStmt": statement, "authData": auth_data})
        self.credentials.append(cred)
        return {
            "id": b64url(cred.id),
            "rawId": b64url(cred.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

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
        first credential allowed (or any, for a discoverable request), or `credential`."""
        cred = credential or self._pick(options)
        rp = rp_id or cred.rp_id
        if counter is None:
            cred.counter += 1 if self.counts else 0
            counter = cred.counter
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = hashlib.sha256(rp.encode()).digest() + bytes([self._flags(uv)]) + struct.pack(">I", counter)
        signature = cred.sign(auth_data + hashlib.sha256(client_data).digest())
        return {
            "id": b64url(cred.id),
            "rawId": b64url(cred.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(cred.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def _pick(self, options: dict[str, Any]) -> Credential:
        allowed = {unb64url(c["id"]) for c in options.get("allowCredentials") or ()}
        for cred in self.credentials:
            if cred.rp_id == options.get("rpId") and (not allowed or cred.id in allowed):
                return cred
        raise LookupError("no credential of this authenticator is allowed")
