"""RFC 7636 Proof Key for Code Exchange, S256 only (OAuth 2.1 §4.1.1, RFC 9700 §2.1.1: `plain`
offers no protection when the authorization request leaks, so it is refused)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

S256 = "S256"
# §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# §4.2: BASE64URL(SHA256(verifier)) is always 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def challenge_s256(verifier: str) -> str:
    """§4.2: code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def verify(verifier: str, challenge: str) -> bool:
    """§4.6, compared in constant time."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(challenge_s256(verifier), challenge)
