"""`private_key_jwt` client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9): the client
signs a short-lived JWT with a key of its registered JWKS.

    header: alg on the allow-list (asymmetric only: never `none`, never HS* keyed with a public
            key), pinned to the key's kty (and curve, and the key's own `alg` when it names one)
    claims: iss = sub = client_id; aud names the token endpoint or the issuer; exp required, at
            most client_assertion_max_lifetime seconds ahead; iat / nbf not in the future (SKEW); jti single use
            across every process (the database: store/replay.py, the replay cache DPoP uses too)

The keys: inline JWKS JSON, or a jwks_uri fetched through the SSRF guard (security/outbound.py:
https, no private addresses unless allowed, checked again after DNS resolution), at most
MAX_JWKS_BYTES, within TIMEOUT_SECONDS, kept client_jwks_ttl seconds and refetched once on an
unknown kid (at most once per federation_jwks_min_refresh seconds). Every failure raises
`Rejected` with a private reason; the caller answers the one invalid_client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from tillkey.clock import Clock
from tillkey.security.outbound import GuardedTransport, RefusedURL, Undeliverable, check_url, literal_address
from tillkey.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# alg -> (kty, crv or None)
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
SKEW = 30  # seconds of clock difference tolerated for iat / nbf / exp
MAX_JWKS_BYTES = 64 * 1024
MAX_KEYS = 20
TIMEOUT_SECONDS = 5.0


class Rejected(Exception):
    """The assertion or the keys are not acceptable; `str()` is the private reason."""


class UnknownKey(Rejected):
    """No registered key fits the assertion's alg and kid (a fetched JWKS may be worth refetching)."""


def parse_jwks(text: str) -> list[dict[str, Any]]:
    """The signing keys of a JWKS document, or Rejected (registration shows the reason)."""
    if len(text.encode("utf-8")) > MAX_JWKS_BYTES:
        raise Rejected(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    try:
        doc = json.loads(text)
    except ValueError:
        raise Rejected("the JWKS is not JSON") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS:
        raise Rejected(f'the JWKS must be an object with 1 to {MAX_KEYS} "keys"')
    out: list[dict[str, Any]] = []
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise Rejected("every JWKS key must be an RSA, EC or OKP public key")
        if any(private in key for private in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise Rejected("the JWKS holds private key material; register the public keys only")
        if key.get("use", "sig") == "sig":
            out.append(key)
    return out


def check_jwks_uri(uri: str, *, allow_private: bool) -> str:
    """A jwks_uri fit to register: https (http only on loopback, when private addresses are
    allowed), not pointing at a private address unless allowed."""
    try:
        check_url(uri, allow_private=allow_private, what="jwks_uri")
    except RefusedURL as exc:
        raise Rejected(str(exc).replace("TILLKEY_INTEGRATION_", "TILLKEY_CLIENT_JWKS_")) from None
    url = httpx.URL(uri)
    if url.scheme != "https":
        addr = literal_address(url.host)
        loopback = url.host == "localhost" or (addr is not None and addr.is_loopback)
        if not (allow_private and loopback):
            raise Rejected("The jwks_uri must use https (http only on loopback, when private addresses are allowed).")
    return uri


@dataclass(slots=True)
class _Fetched:
    keys: list[dict[str, Any]]
    fetched: float


class ClientKeys:
    """One per process (wiring.py): its cache of fetched client JWKS lives as long."""

    def __init__(self, *, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._cache: dict[str, _Fetched] = {}

    async def _fetch(self, uri: str) -> list[dict[str, Any]]:
        allow_private = self.settings.client_jwks_allow_private_endpoints
        check_jwks_uri(uri, allow_private=allow_private)
        transport = GuardedTransport(allow_private=allow_private, seconds=TIMEOUT_SECONDS)
        body = b""
        try:
            async with (
                httpx.AsyncClient(
                    transport=transport, timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
                ) as client,
                client.stream("GET", uri, headers={"Accept": "application/json"}) as answer,
            ):
                if answer.status_code != 200:
                    raise Rejected(f"jwks_uri: HTTP {answer.status_code}")
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise Rejected(f"jwks_uri: larger than {MAX_JWKS_BYTES} bytes")
        except (httpx.HTTPError, Undeliverable) as exc:
            raise Rejected(f"jwks_uri: {type(exc).__name__}: {exc}") from None
        try:
            return parse_jwks(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise Rejected("jwks_uri: not UTF-8") from None

    async def keys(self, uri: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The keys at `uri`, cached; `fresh`: refetch (an unknown kid), unless just fetched."""
        now = self.clock.now()
        cached = self._cache.get(uri)
        stale = cached is None or cached.fetched + self.settings.client_jwks_ttl <= now
        if fresh and cached is not None and cached.fetched + self.settings.federation_jwks_min_refresh <= now:
            stale = True
        if stale:
            if len(self._cache) > 10_000:
                self._cache.clear()
            cached = _Fetched(await self._fetch(uri), now)
            self._cache[uri] = cached
        assert cached is not None
        return cached.keys


def _candidates(keys: list[dict[str, Any]], alg: str, kid: str | None) -> list[dict[str, Any]]:
    kty, crv = ALGORITHMS[alg]
    out = []
    for key in keys:
        if kid is not None and key.get("kid") != kid:
            continue
        if key.get("kty") != kty or (crv is not None and key.get("crv") != crv):
            continue
        if kty == "OKP" and key.get("crv") not in ("Ed25519", "Ed448"):
            continue
        if key.get("alg") not in (None, alg):
            continue
        out.append(key)
    return out


@dataclass(frozen=True, slots=True)
class Verified:
    jti: str
    expires_at: int


def header_of(assertion: str) -> tuple[str, str | None]:
    """(alg, kid) of an assertion, alg on the allow-list, or Rejected."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise Rejected(f"malformed assertion: {exc}") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise Rejected(f"algorithm {str(alg)[:20]!r} not allowed")
    if kid is not None and not isinstance(kid, str):
        raise Rejected("kid is not a string")
    return alg, kid


def unverified_subject(assertion: str) -> str:
    """The client the assertion claims to come from (`sub`), before any check: which keys to use."""
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Rejected(f"malformed assertion: {exc}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise Rejected("no sub")
    return sub


def verify(
    assertion: str,
    keys: list[dict[str, Any]],
    *,
    client_id: str,
    audiences: tuple[str, ...],
    now: int,
    max_lifetime: int,
) -> Verified:
    """Check the signature with the client's keys and the claims (module docstring); the caller
    records the jti."""
    alg, kid = header_of(assertion)
    candidates = _candidates(keys, alg, kid)
    if not candidates:
        raise UnknownKey(f"no registered key for alg {alg} kid {str(kid)[:64]!r}")
    claims: dict[str, Any] | None = None
    for key in candidates[:MAX_KEYS]:
        try:
            public = jwt.PyJWK(key, algorithm=alg).key
            # Time claims are checked below on the injected clock.
            claims = jwt.decode(
                assertion,
                public,
                algorithms=[alg],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        raise Rejected("signature does not verify with any registered key")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise Rejected("iss and sub must both be the client_id")
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise Rejected("aud names neither the token endpoint nor the issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise Rejected("exp is required (an integer)")
    if exp <= now - SKEW:
        raise Rejected("expired")
    if exp > now + max_lifetime + SKEW:
        raise Rejected(f"exp is more than {max_lifetime} s ahead")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value > now + SKEW:
            raise Rejected(f"{name} is in the future")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and exp - iat > max_lifetime + SKEW:
        raise Rejected(f"lifetime longer than {max_lifetime} s")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise Rejected("jti is required")
    return Verified(jti, exp + SKEW)
