"""A DPoP client for tests: its key and the proofs it signs (RFC 9449 §4)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tillkey.credentials.dpop import access_token_hash

URL = "https://auth.example.com/oauth2/token"
NOW = 1_800_000_000.0


class Holder:
    """A client's DPoP key and proofs signed with it."""

    def __init__(self, kind: str = "EC") -> None:
        self.key: Any
        if kind == "EC":
            self.key, self.alg = ec.generate_private_key(ec.SECP256R1()), "ES256"
            self.public = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        elif kind == "OKP":
            self.key, self.alg = ed25519.Ed25519PrivateKey.generate(), "EdDSA"
            self.public = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key, self.alg = rsa.generate_private_key(65537, 2048), "PS256"
            self.public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))

    def proof(
        self,
        htm: str = "POST",
        htu: str = URL,
        *,
        iat: float = NOW,
        token: str | None = None,
        header: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": htm, "htu": htu, "iat": int(iat)}
        if token is not None:
            body["ath"] = access_token_hash(token)
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        headers = {"typ": "dpop+jwt", "jwk": self.public, **(header or {})}
        return jwt.encode(body, self.key, algorithm=self.alg, headers=headers)
