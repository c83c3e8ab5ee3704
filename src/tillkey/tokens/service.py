"""The hot path: bearer token -> Principal, with a bounded cache of verified tokens.

A cached token skips the signature check (or the opaque lookup), but expiry and revocation
are checked on every call, against in-memory state: no database I/O in steady state.
"""

from __future__ import annotations

from collections import OrderedDict

from tillkey.access.grants import GrantsState
from tillkey.principal import Principal
from tillkey.tokens.contracts import InvalidToken, TokenClaims, TokenReader, TokenValidator
from tillkey.tokens.opaque import PREFIX as OPAQUE_PREFIX

MAX_TOKEN_LENGTH = 8192


class Authenticator:
    def __init__(
        self,
        jwt_reader: TokenReader,
        opaque_reader: TokenReader | None,
        validator: TokenValidator,
        grants: GrantsState,
        cache_size: int,
    ) -> None:
        self._jwt = jwt_reader
        self._opaque = opaque_reader
        self._validator = validator
        self._grants = grants
        self._cache_size = cache_size
        # token -> (claims, principal, grants version the principal was built from)
        self._cache: OrderedDict[str, tuple[TokenClaims, Principal, int]] = OrderedDict()
        # Tokens whose signature or format failed: they can never become valid, so a flood of one
        # forged token costs a dict lookup, not a signature verification, per request.
        self._rejected: OrderedDict[str, None] = OrderedDict()
        self._rejected_size = min(cache_size, 10_000)
        # Plain counters, read by the metrics collector when scraped (observability/metrics.py).
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    async def read(self, token: str) -> TokenClaims:
        """Integrity only (signature or lookup), through the cache. Raises InvalidToken."""
        hit = self._cache.get(token)
        if hit is not None:
            return hit[0]
        return (await self._load(token))[0]

    async def _load(self, token: str) -> tuple[TokenClaims, Principal, int]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken(detail="token too long")
        if token in self._rejected:
            raise InvalidToken(detail="known bad token")
        if token.startswith(OPAQUE_PREFIX):
            if self._opaque is None:
                raise InvalidToken(detail="opaque tokens are not accepted here")
            claims = await self._opaque.read(token)
        else:
            try:
                claims = await self._jwt.read(token)
            except InvalidToken as exc:
                if self._rejected_size and exc.permanent:
                    self._rejected[token] = None
                    if len(self._rejected) > self._rejected_size:
                        self._rejected.popitem(last=False)
                raise
        entry = (claims, self._grants.principal(claims), self._grants.version)
        if self._cache_size:
            self._cache[token] = entry
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    async def authenticate(self, token: str) -> Principal:
        """The caller of a token presented as a bearer token. A sender-constrained one (`cnf`) is
        refused: only credentials/binding.py, with its holder's proof, accepts it."""
        principal, claims = await self.authenticate_claims(token)
        if claims.cnf is not None:
            raise InvalidToken(detail="sender-constrained token presented as a bearer token")
        return principal

    async def authenticate_claims(self, token: str) -> tuple[Principal, TokenClaims]:
        """The caller and the token's claims (its binding, `cnf`, for credentials/binding.py)."""
        entry = self._cache.get(token)
        if entry is None:
            self.cache_misses += 1
            entry = await self._load(token)
        else:
            self.cache_hits += 1
            self._cache.move_to_end(token)
        claims, principal, version = entry
        self._validator.validate(claims)
        if version != self._grants.version:
            principal = self._grants.principal(claims)
            self._cache[token] = (claims, principal, self._grants.version)
        return principal, claims
