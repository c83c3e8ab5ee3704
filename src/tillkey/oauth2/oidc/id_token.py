"""ID tokens (OpenID Connect Core §2, §3.1.3.6): iss, sub, aud, exp, iat, auth_time, nonce, amr,
azp and at_hash, signed with the current signing key (published in the JWKS)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt

from tillkey.oauth2.access_tokens import subject
from tillkey.runtime import Tillkey

# §3.1.3.6: at_hash uses the hash of the JOSE algorithm; Ed25519 signs with SHA-512.
_HASH = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "HS256": hashlib.sha256, "EdDSA": hashlib.sha512}


def at_hash(access_token: str, alg: str) -> str:
    """Base64url of the left half of the hash of the access token's ASCII octets."""
    digest = _HASH[alg](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def issue(
    tk: Tillkey, *, user_type: int, user_id: int, client_id: str, auth_time: int, amr: tuple[str, ...],
    nonce: str | None, access_token: str | None, extra: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    now = tk.clock.now_int()
    key = tk.keyring.signer(now)
    if key is None:
        raise RuntimeError("no active signing key")
    claims: dict[str, Any] = {
        "iss": tk.settings.issuer, "sub": subject(user_type, user_id), "aud": client_id, "azp": client_id,
        "iat": now, "exp": now + tk.settings.id_token_ttl, "auth_time": auth_time, "amr": list(amr),
    }  # fmt: skip
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, key.alg)
    for name, value in (extra or {}).items():
        claims.setdefault(name, value)
    # typ JWT (not at+jwt), and no uid/utypid: an ID token is never accepted as an access token.
    return jwt.encode(claims, key.signing_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})
