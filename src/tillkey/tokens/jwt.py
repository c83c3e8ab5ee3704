"""JWT access tokens (PyJWT): Magento's claims (uid, utypid, iat, exp) plus jti and iss."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from tillkey.tokens.contracts import InvalidToken, TokenClaims
from tillkey.tokens.keys import Keyring

_REQUIRED = ["uid", "utypid", "iat", "jti"]
# Claims only the issuer itself sets: extra claims can never forge identity, time or issuer.
RESERVED = frozenset({"uid", "utypid", "iat", "exp", "nbf", "jti", "iss", "amr", "aud", "sub"})
# Clock skew tolerated on iat/nbf between Tillkey hosts and verifiers (seconds).
LEEWAY = 60


class JwtIssuer:
    def __init__(self, keyring: Callable[[], Keyring], issuer: str, now: Callable[[], int]) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._now = now

    async def issue(
        self, user_type: int, user_id: int, ttl: int | None, auth_methods: tuple[str, ...] = ("pwd",),
        extra: Mapping[str, Any] | None = None,
    ) -> str:  # fmt: skip
        """`extra`: further claims (Medusa's actor_id, actor_type, …); they never replace ours."""
        iat = self._now()
        key = self._keyring().signer(iat)
        if key is None:
            raise RuntimeError("no active signing key")
        # Magento's claim order first (uid, utypid, iat, exp), then ours.
        payload: dict[str, Any] = {"uid": user_id, "utypid": user_type, "iat": iat}
        if ttl is not None:
            payload["exp"] = iat + ttl
        payload.update({"jti": secrets.token_hex(16), "iss": self._issuer, "amr": list(auth_methods)})
        if extra:
            payload.update({k: v for k, v in extra.items() if k not in payload and k not in RESERVED})
        return jwt.encode(payload, key.signing_key, algorithm=key.alg, headers={"kid": key.kid})


class JwtReader:
    """Verifies the signature with the key the `kid` names, pinned to that key's algorithm."""

    def __init__(self, keyring: Callable[[], Keyring], issuer: str, now: Callable[[], float] = time.time) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._now = now

    async def read(self, token: str) -> TokenClaims:
        return self.read_sync(token)

    def read_sync(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _permanent(f"malformed jwt: {exc}") from None
        if header.get("typ") not in (None, "JWT", "at+jwt"):
            # Only access tokens: an ID token or logout token signed by the same key is not one.
            raise _permanent(f"not an access token (typ {header.get('typ')!r})")
        kid = header.get("kid")
        keyring = self._keyring()
        key = keyring.by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken(detail="unknown kid")
        if not key.verifies_at(self._now()):
            raise _permanent("signing key retired")
        try:
            claims = jwt.decode(
                token,
                key.verify_key,
                algorithms=[key.alg],
                issuer=self._issuer,
                leeway=LEEWAY,
                # Expiry is the validator's job (one clock, and integration tokens have no exp);
                # PyJWT still refuses iat and nbf further in the future than the leeway.
                # Audience: Tillkey is the resource server of the tokens it reads; an OAuth access
                # token names its client's audience (RFC 9068 §3) for other resource servers.
                options={"require": _REQUIRED, "verify_exp": False, "verify_aud": False},
            )
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken(detail=f"jwt not yet valid: {exc}") from None
        except jwt.PyJWTError as exc:
            raise _permanent(f"jwt rejected: {exc}") from None
        try:
            exp = claims.get("exp")
            amr = claims.get("amr") or ["pwd"]
            return TokenClaims(
                user_type=_int(claims["utypid"]),
                user_id=_int(claims["uid"]),
                issued_at=_int(claims["iat"]),
                expires_at=None if exp is None else _int(exp),
                jti=str(claims["jti"]),
                kind="jwt",
                auth_methods=tuple(str(m) for m in amr),
                kid=key.kid,
                scope=None if claims.get("scope") is None else tuple(str(claims["scope"]).split()),
                client_id=None if claims.get("client_id") is None else str(claims["client_id"]),
            )
        except (TypeError, ValueError) as exc:
            raise _permanent(f"bad claim: {exc}") from None


def _permanent(detail: str) -> InvalidToken:
    err = InvalidToken(detail=detail)
    err.permanent = True
    return err


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return int(v)
