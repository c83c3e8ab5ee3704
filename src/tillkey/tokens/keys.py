"""Signing keys as verifiers hold them: the keyring, published as a JWKS, algorithm pinned per key.

Every key has exactly one algorithm, and verification uses only that algorithm: a token whose
header names another (including "none", or HS256 signed with a public key) never verifies.

A key's life (rotation.py moves keys along it): published (in the JWKS) from `created_at`; signs
from `signs_from` (later than created_at when rotated with publish-ahead, so verifiers that cache
the JWKS learn it before the first token it signs); stops signing at `retired_at`; verifies until
`verify_until`, after which it leaves the JWKS and every token it signed is refused.
Generating keys and sealing them for the database is key_material.py's (the cold path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
