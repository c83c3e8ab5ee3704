"""Signing keys: generated on first start, stored encrypted, published as a JWKS, pinned per key.

Every key has exactly one algorithm, and verification uses only that algorithm: a token whose
header names another (including "none", or HS256 signed with a public key) never verifies.

A key's life (rotation.py moves keys along it): published (in the JWKS) from `created_at`; signs
from `signs_from` (later than created_at when rotated with publish-ahead, so verifiers that cache
the JWKS learn it before the first token it signs); stops signing at `retired_at`; verifies until
`verify_until`, after which it leaves the JWKS and every token it signed is refused.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from tillkey.crypto.secrets import MasterSecret

ASYMMETRIC = frozenset({"ES256", "EdDSA", "RS256"})
JWKS_MAX_AGE = 300  # seconds verifiers may cache the JWKS (Cache-Control on /.well-known/jwks.json)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    signing_key: Any  # private key object or HMAC secret bytes
    verify_key: Any  # public key object or HMAC secret bytes
    public_jwk: dict[str, Any] | None
    created_at: int
    retired_at: int | None = None
    signs_from: int | None = None  # None: from created_at
    verify_until: int | None = None  # None: for as long as it exists

    def verifies_at(self, now: float) -> bool:
        return self.verify_until is None or now < self.verify_until

    def signs_at(self, now: float) -> bool:
        start = self.created_at if self.signs_from is None else self.signs_from
        return start <= now and (self.retired_at is None or now < self.retired_at) and self.verifies_at(now)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the database holds it: secret material encrypted under the master secret."""

    kid: str
    alg: str
    secret_enc: bytes
    public_jwk: str | None
    created_at: int
    retired_at: int | None
    signs_from: int | None = None
    verify_until: int | None = None


def generate(alg: str, now: int, master: MasterSecret, signs_from: int | None = None) -> tuple[SigningKey, StoredKey]:
    kid = secrets.token_hex(8)
    if alg == "HS256":
        raw = secrets.token_bytes(64)
        key = SigningKey(kid, alg, raw, raw, None, now, signs_from=signs_from)
        return key, StoredKey(kid, alg, master.encrypt(raw, f"signing-key:{kid}"), None, now, None, signs_from)
    private: Any
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = dataclasses.replace(_asymmetric(kid, alg, private, now), signs_from=signs_from)
    stored = StoredKey(
        kid, alg, master.encrypt(pem, f"signing-key:{kid}"), json.dumps(key.public_jwk), now, None, signs_from
    )
    return key, stored


def _asymmetric(kid: str, alg: str, private: Any, created_at: int) -> SigningKey:
    public = private.public_key()
    jwk: dict[str, Any] = get_default_algorithms()[alg].to_jwk(public, as_dict=True)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKey(kid, alg, private, public, jwk, created_at)


def load(stored: StoredKey, master: MasterSecret) -> SigningKey:
    raw = master.decrypt(stored.secret_enc, f"signing-key:{stored.kid}")
    if stored.alg == "HS256":
        key = SigningKey(stored.kid, stored.alg, raw, raw, None, stored.created_at)
    else:
        key = _asymmetric(
            stored.kid, stored.alg, serialization.load_pem_private_key(raw, password=None), stored.created_at
        )
    return dataclasses.replace(
        key, retired_at=stored.retired_at, signs_from=stored.signs_from, verify_until=stored.verify_until
    )


class Keyring:
    """Keys by kid. Of the keys of the configured algorithm that may sign now, the newest signs."""

    def __init__(self, keys: list[SigningKey], alg: str) -> None:
        self.by_kid = {k.kid: k for k in keys}
        self._alg = alg

    def signer(self, now: float) -> SigningKey | None:
        able = [k for k in self.by_kid.values() if k.alg == self._alg and k.signs_at(now)]
        return max(able, key=lambda k: (k.signs_from or k.created_at, k.created_at)) if able else None

    def verifier(self, kid: str, now: float) -> SigningKey | None:
        key = self.by_kid.get(kid)
        return key if key is not None and key.verifies_at(now) else None

    def jwks(self, now: float) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self.by_kid.values() if k.public_jwk is not None and k.verifies_at(now)]}
