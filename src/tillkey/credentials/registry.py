"""One registry of credential kinds. Each kind reads its own part of a request (a header, a cookie)
and produces the same Principal; access control never learns which kind was used.

A kind answers None when its credential is absent, so the next kind may look. A credential that is
present but bad raises Unauthenticated: the caller is then a guest that presented something, and
the route's access check decides between 401 and going ahead anonymously (Magento's behaviour).
An Unauthenticated with `tell_client` set (OAuth 1.0a signature and nonce errors, which Magento
reports as such) reaches the client instead.

Kinds (runtime.py): OAuth 1.0a signed calls and integration tokens as Bearer (credentials/oauth1.py),
then Tillkey's own JWT and opaque bearer tokens (BearerTokens below).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from starlette.requests import Request
from starlette.types import Scope

from tillkey.access.grants import GrantsState
from tillkey.credentials.bearer import access_token
from tillkey.credentials.binding import Binding, authenticate
from tillkey.credentials.freshness import CatchUp
from tillkey.errors import REFUSAL_REASONS, Unauthenticated
from tillkey.principal import GUEST, Principal, UserType
from tillkey.tokens.service import Authenticator

log = logging.getLogger("tillkey.access")


class CredentialKind(Protocol):
    name: str

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        """The caller, None when this kind's credential is absent; raises Unauthenticated when bad.
        `authorization`: the Authorization header ("" if none), read once for every kind."""
        ...


class BearerTokens:
    """`Authorization: Bearer <token>` or `DPoP <token>`: Tillkey's JWT and opaque tokens
    (tokens/service.py); a bound token's presentation is checked by credentials/binding.py."""

    name = "bearer"

    def __init__(
        self,
        authenticator: Authenticator,
        grants: GrantsState | None = None,
        catch_up: CatchUp | None = None,
        binding: Binding | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._grants = grants
        self._catch_up = catch_up
        self._binding = binding

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        presented = access_token(authorization)
        if presented is None:
            return None
        scheme, token = presented
        principal, _ = await authenticate(self._authenticator, self._binding, request, scheme, token)
        if self._catch_up is not None and self._stale(principal) and await self._catch_up.refresh(token):
            # A valid token whose admin or OAuth client this process does not know yet (created a
            # moment ago by the CLI or another process): the principal again, from the new grants.
            principal, _ = await self._authenticator.authenticate_claims(token)
            if self._stale(principal):
                self._catch_up.unknown(token)
        return principal

    def _stale(self, principal: Principal) -> bool:
        """A valid token's principal that memory may be behind on: an unknown OAuth client's token
        (a guest without identity) or an admin without an active grant."""
        if principal is GUEST:
            return True
        return (
            self._grants is not None
            and principal.user_type == UserType.ADMIN
            and not self._grants.admin_active(principal.user_id)
        )


def _authorization(scope: Scope) -> str:
    # Straight from the ASGI scope: this runs on every protected request, and Starlette's Headers
    # object would be built for it alone.
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


class Credentials:
    """The kinds, tried in order. Counts outcomes as plain integers for the metrics, read only when
    scraped (observability/metrics.py): the hot path pays an addition, nothing more."""

    def __init__(self, kinds: Sequence[CredentialKind]) -> None:
        self.kinds: list[CredentialKind] = []
        self.accepted: dict[str, int] = {}  # kind name -> callers it identified
        self.refused: dict[tuple[str, str], int] = {}  # (kind name, reason) -> credentials it refused
        self.anonymous = 0  # requests that presented no credential at all
        for kind in kinds:
            self.add(kind)

    def add(self, kind: CredentialKind) -> None:
        self.kinds.append(kind)
        self.accepted.setdefault(kind.name, 0)

    def _refusal(self, kind: CredentialKind, exc: Unauthenticated) -> None:
        reason = exc.reason if exc.reason in REFUSAL_REASONS else "invalid"
        key = (kind.name, reason)
        self.refused[key] = self.refused.get(key, 0) + 1

    async def authenticate(self, request: Request) -> tuple[Principal, bool]:
        """(Principal, whether a credential was presented)."""
        authorization = _authorization(request.scope)
        for kind in self.kinds:
            try:
                found = await kind.authenticate(request, authorization)
            except Unauthenticated as exc:
                self._refusal(kind, exc)
                if exc.tell_client:
                    raise
                log.debug("%s credential rejected: %s", kind.name, exc.detail)
                return GUEST, True
            if found is not None:
                self.accepted[kind.name] += 1
                return found, True
        self.anonymous += 1
        return GUEST, False
