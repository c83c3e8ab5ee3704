"""Signing keys: generated on first start, stored encrypted, published as a JWKS, pinned per key.

Every key has exactly one algorithm, and verification uses only that algorithm: a token whose
header names another (including "none", or HS256 signed with a public key) never verifies.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from tillkey.crypto.secrets import MasterSecret

ASYMMETRIC = frozenset({"ES256", "EdDSA", "RS256"})


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    signing_key: Any  # private key object or HMAC secret bytes
    verify_key: Any  # public key object or HMAC secret bytes
    public_jwk: dict[str, Any] | None
    created_at: int
    retired_at: int | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the database holds it: secret material encrypted under the master secret."""

    kid: str
    alg: str
    secret_enc: bytes
    public_jwk: str | None
    created_at: int
    retired_at: int | None


def generate(alg: str, now: int, master: MasterSecret) -> tuple[SigningKey, StoredKey]:
    kid = secrets.token_hex(8)
    if alg == "HS256":
        raw = secrets.token_bytes(64)
        key = SigningKey(kid, alg, raw, raw, None, now)
        return key, StoredKey(kid, alg, master.encrypt(raw, f"signing-key:{kid}"), None, now, None)
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
    key = _asymmetric(kid, alg, private, now, None)
    stored = StoredKey(kid, alg, master.encrypt(pem, f"signing-key:{kid}"), json.dumps(key.public_jwk), now, None)
    return key, stored


def _asymmetric(kid: str, alg: str, private: Any, created_at: int, retired_at: int | None) -> SigningKey:
    public = private.public_key()
    jwk: dict[str, Any] = get_default_algorithms()[alg].to_jwk(public, as_dict=True)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKey(kid, alg, private, public, jwk, created_at, retired_at)


def load(stored: StoredKey, master: MasterSecret) -> SigningKey:
    raw = master.decrypt(stored.secret_enc, f"signing-key:{stored.kid}")
    if stored.alg == "HS256":
        return SigningKey(stored.kid, stored.alg, raw, raw, None, stored.created_at, stored.retired_at)
    private = serialization.load_pem_private_key(raw, password=None)
    return _asymmetric(stored.kid, stored.alg, private, stored.created_at, stored.retired_at)


class Keyring:
    """Keys by kid. The newest active key of the configured algorithm signs."""

    def __init__(self, keys: list[SigningKey], alg: str) -> None:
        self.by_kid = {k.kid: k for k in keys}
        active = [k for k in keys if k.alg == alg and k.retired_at is None]
        self.current = max(active, key=lambda k: k.created_at) if active else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self.by_kid.values() if k.public_jwk is not None]}
