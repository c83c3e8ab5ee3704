"""Signing keys at rest: generated on first start and at rotation, stored encrypted under the master
secret (store/auth.py `StoredKey`), loaded back into the keyring (keys.py) at start and reconcile."""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from tillkey.crypto.secrets import MasterSecret
from tillkey.store.auth import StoredKey
from tillkey.tokens.keys import SigningKey


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
