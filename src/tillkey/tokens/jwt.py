"""Reading JWT access tokens (PyJWT): Magento's claims (uid, utypid, iat, exp) plus jti and iss.
Minting lives in tokens/issuer.py, the one issuer."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from tillkey.tokens.contracts import SURFACE_CLAIM, InvalidToken, TokenClaims
from tillkey.tokens.keys import Keyring

_REQUIRED = ["uid", "utypid", "iat", "jti"]
# Clock skew tolerated on iat/nbf between Tillkey hosts and verifiers (seconds).
LEEWAY = 60


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
                # iat and nbf are checked below against the same injected clock, not PyJWT's own.
                # Audience: Tillkey is the resource server of the tokens it reads; an OAuth access
                # token names its client's audience (RFC 9068 §3) for other resource servers.
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise _permanent(f"jwt rejected: {exc}") from None
        self._not_before(claims)
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
                surface=None if claims.get(SURFACE_CLAIM) is None else str(claims[SURFACE_CLAIM]),
                auth_time=None if claims.get("auth_time") is None else _int(claims["auth_time"]),
                cnf=_cnf(claims.get("cnf")),
            )
        except (TypeError, ValueError) as exc:
            raise _permanent(f"bad claim: {exc}") from None

    def _not_before(self, claims: dict[str, object]) -> None:
        """Refuse iat and nbf further in the future than the leeway (RFC 7519 §4.1.5-6); such a token
        may become valid later, so it is not remembered as bad."""
        now = self._now()
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            try:
                when = _int(value)
            except TypeError as exc:
                raise _permanent(f"bad claim {name}: {exc}") from None
            if when > now + LEEWAY:
                raise InvalidToken(detail=f"jwt not yet valid ({name} ahead of the clock)")


def _permanent(detail: str) -> InvalidToken:
    err = InvalidToken(detail=detail)
    err.permanent = True
    return err


def _cnf(v: object) -> dict[str, str] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not v or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise TypeError("cnf is not an object of strings")
    return dict(v)


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return int(v)
