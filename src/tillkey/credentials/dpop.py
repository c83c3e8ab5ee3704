"""DPoP proofs (RFC 9449): the one place a `DPoP` header is verified.

A proof is a JWT the client signs with its own key for one request: `typ: dpop+jwt`, an asymmetric
`alg` from the allow-list below, the public key in the `jwk` header (never a private part), and the
claims `jti` (unique), `htm` (the request's method), `htu` (its URL without query and fragment),
`iat` (within the window on the injected clock), `ath` (the hash of the access token it is sent
with, on a resource request) and `nonce` (when the deployment asks for server nonces).

The verified proof yields the key's RFC 7638 thumbprint (`jkt`): the token endpoint binds tokens to
it (`cnf.jkt`), and credentials/binding.py checks a presented token's binding against it.

Replays are refused through a `ReplayCache` the caller provides: the server's store/replay.py (a
database table every process shares), the library guard's `MemoryReplayCache` (tillkey/guard.py,
one per process). This module imports no storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import jwt

from tillkey.errors import InvalidRequest

# Asymmetric algorithms only: never `none`, never HS* (a shared secret proves no possession).
ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_ALLOWED = frozenset(ALGORITHMS)
TYP = "dpop+jwt"
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
# How old a proof may be (seconds, by its iat) and how far ahead of our clock.
WINDOW = 60
FUTURE_SKEW = 5
# Private members of EC, RSA and OKP keys, and the secret of a symmetric one.
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the required members of each key type, the only ones the thumbprint hashes.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDPoPProof(InvalidRequest):
    """RFC 9449 §5, §7.1: the proof is missing, malformed, or does not fit this request."""

    oauth_error = "invalid_dpop_proof"
    default_message = "The DPoP proof is invalid."


class UseDPoPNonce(InvalidRequest):
    """RFC 9449 §8: the server wants a nonce in the proof; the fresh one is in the `DPoP-Nonce` header."""

    oauth_error = "use_dpop_nonce"
    default_message = "A DPoP nonce is required."


class ReplayCache(Protocol):
    async def first_sight(self, key: str, expires_at: float) -> bool:
        """Remember `key` until `expires_at` (epoch seconds); False when it was already seen."""
        ...


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the proof's key
    jti: str
    iat: int
    alg: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the key's required members as canonical JSON (sorted, no whitespace)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise InvalidDPoPProof(detail="jwk: unsupported key type or missing members")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str) -> str:
    """`ath` (RFC 9449 §4.2): base64url of the SHA-256 of the token's ASCII octets."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def _pct_normalise(part: str) -> str:
    """RFC 3986 §6.2.2: percent-escapes in upper case, unreserved characters decoded."""
    out: list[str] = []
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "%" and _is_hex(part[i + 1 : i + 3]):
            decoded = chr(int(part[i + 1 : i + 3], 16))
            if decoded.isascii() and (decoded.isalnum() or decoded in "-._~"):
                out.append(decoded)
            else:
                out.append("%" + part[i + 1 : i + 3].upper())
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def normalise_htu(url: str) -> str:
    """RFC 9449 §4.3: the URL without query and fragment, compared after syntax-based (RFC 3986
    §6.2.2) and scheme-based (§6.2.3) normalisation: case of scheme and host, default port, empty
    path as `/`, percent-encoding. Raises ValueError for what is no absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        raise ValueError("not an absolute http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a bad port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _pct_normalise(parts.path) or "/"
    return urlunsplit((scheme, netloc, path, "", ""))


def public_url(issuer: str, path: str) -> str:
    """The URL a client addressed, as `htu` names it: the issuer's origin (the public one, whatever
    host and scheme the proxy in front forwarded to us) and the request's path."""
    parts = urlsplit(issuer)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Nonces:
    """Stateless server nonces (RFC 9449 §8): an HMAC of the current time slot, so every process
    with the same secret issues and accepts the same ones without shared state. A nonce is good for
    its slot and the next one."""

    def __init__(self, secret: bytes, now: Callable[[], float], *, slot: int = 300) -> None:
        self._secret = secret
        self._now = now
        self._slot = slot

    def _for(self, slot: int) -> str:
        return b64url(hmac.new(self._secret, f"dpop-nonce:{slot}".encode(), hashlib.sha256).digest()[:24])

    def current(self) -> str:
        return self._for(int(self._now() // self._slot))

    def valid(self, nonce: str) -> bool:
        slot = int(self._now() // self._slot)
        return any(hmac.compare_digest(nonce.encode(), self._for(s).encode()) for s in (slot, slot - 1))


class DPoPVerifier:
    def __init__(
        self,
        replay: ReplayCache,
        now: Callable[[], float],
        *,
        nonces: Nonces | None = None,
        window: int = WINDOW,
    ) -> None:
        """`nonces`: when given, every proof must carry a current server nonce."""
        self._replay = replay
        self._now = now
        self.nonces = nonces
        self._window = window
        # Plain tallies for the metrics and the bench.
        self.verified = 0
        self.refused = 0

    async def verify(
        self, proof: str | None, method: str, url: str | tuple[str, ...], *, access_token: str | None = None
    ) -> Proof:
        """The checked proof of this request. Raises InvalidDPoPProof, or UseDPoPNonce (with the
        fresh nonce in its `DPoP-Nonce` header) when a nonce is required and absent or stale."""
        try:
            checked = self._check(proof, method, (url,) if isinstance(url, str) else url, access_token)
            if not await self._replay.first_sight(f"dpop:{checked.jkt}:{checked.jti}", self._forget_at(checked.iat)):
                raise InvalidDPoPProof(detail="proof replayed (jti seen)")
        except InvalidRequest:
            self.refused += 1
            raise
        self.verified += 1
        return checked

    def _forget_at(self, iat: int) -> float:
        # Accepted while iat >= now - window: remembered at least that long (and past the skew).
        return max(float(iat), self._now()) + self._window + FUTURE_SKEW

    def _check(self, proof: str | None, method: str, urls: tuple[str, ...], access_token: str | None) -> Proof:
        if not proof or len(proof) > MAX_PROOF_LENGTH:
            raise InvalidDPoPProof(detail="no proof, or too long")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError as exc:
            raise InvalidDPoPProof(detail=f"malformed proof: {exc}") from None
        if header.get("typ") != TYP:
            raise InvalidDPoPProof(detail=f"typ {header.get('typ')!r}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _ALLOWED:
            raise InvalidDPoPProof(detail=f"alg {alg!r} not allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDPoPProof(detail="no jwk in the header")
        if _PRIVATE & jwk.keys():
            raise InvalidDPoPProof(detail="jwk carries private key material")
        jkt = thumbprint(jwk)
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                proof,
                key,
                algorithms=[alg],
                options={
                    "require": ["jti", "htm", "htu", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidDPoPProof(detail=f"proof rejected: {type(exc).__name__}: {exc}") from None
        jti, htm, htu, iat = claims["jti"], claims["htm"], claims["htu"], claims["iat"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise InvalidDPoPProof(detail="bad jti")
        if not isinstance(htm, str) or htm != method.upper():
            raise InvalidDPoPProof(detail="htm does not match the request method")
        try:
            # `urls`: the request's URL under each origin of this server (Binding.urls_of).
            if not isinstance(htu, str) or normalise_htu(htu) not in {normalise_htu(u) for u in urls}:
                raise InvalidDPoPProof(detail="htu does not match the request URL")
        except ValueError:
            raise InvalidDPoPProof(detail="htu is no absolute http(s) URL") from None
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise InvalidDPoPProof(detail="bad iat")
        now = self._now()
        if iat > now + FUTURE_SKEW or iat < now - self._window:
            raise InvalidDPoPProof(detail="iat outside the window")
        ath = claims.get("ath")
        if access_token is not None:
            if not isinstance(ath, str) or not hmac.compare_digest(
                ath.encode(), access_token_hash(access_token).encode()
            ):
                raise InvalidDPoPProof(detail="ath missing or not the hash of the access token")
        if self.nonces is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not self.nonces.valid(nonce):
                raise UseDPoPNonce(
                    "Authorization server requires nonce in DPoP proof",
                    detail="nonce missing or stale",
                    headers={"DPoP-Nonce": self.nonces.current()},
                )
        return Proof(jkt=jkt, jti=jti, iat=int(iat), alg=alg)
