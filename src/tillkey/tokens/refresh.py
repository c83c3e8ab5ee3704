"""Refresh tokens: opaque `tk_rt_` + 256 random bits, stored as a keyed digest, rotated on every
use and grouped in families (one family per login). RFC 9700 §4.14.2 and OAuth 2.1 §4.3.1.

- Rotation: using a refresh token spends it (a conditional UPDATE, so of two simultaneous uses one
  wins) and mints its successor in the same family; the family row is locked while it is written.
- Reuse: presenting a spent token means two parties hold the chain (a stolen token). The whole
  family is revoked, the access tokens issued from it are denied by jti (tokens/revocation.py,
  spread through the change feed), and the event is audited (token.refresh_reused).
- Limits: each token dies `refresh_token_idle_ttl` after it was issued unless used; the family
  dies `refresh_token_absolute_ttl` after the login, and never later than the sign-in's absolute
  lifetime (TILLKEY_ADMIN_SIGNIN_MAX_AGE / TILLKEY_CUSTOMER_SIGNIN_MAX_AGE, from `auth_time`),
  however often it rotates; the access token minted on a rotation dies with the family.
- Revocation: a family whose user was revoked (logout everywhere, deactivation, password reset)
  after its sign-in cannot be spent.

This is the one rotation, `RefreshTokens.rotate`: the OAuth 2 refresh_token grant (client_id set)
and the Magento-style refresh cookie (client_id None, accounts/headless.py) both call it, and only
say which scope the new access token asks for and how to mint it; a family never crosses from one
client to another.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from tillkey import audit
from tillkey.access import delegation
from tillkey.access.grants import GrantsState
from tillkey.clock import Clock
from tillkey.contracts import Audit, RefreshStore, Revocations
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import InvalidRequest
from tillkey.principal import Principal
from tillkey.settings import Settings
from tillkey.store.oauth2 import RefreshToken
from tillkey.tokens.contracts import TokenClaims
from tillkey.tokens.revocation import RevocationState

PREFIX = "tk_rt_"
MAX_LENGTH = 128


class InvalidRefreshToken(InvalidRequest):
    """Unknown, expired, revoked, spent or another client's refresh token (RFC 6749 §5.2)."""

    oauth_error = "invalid_grant"
    default_message = "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    record: RefreshToken


class MintedAccess(Protocol):
    """What a rotation needs to know of the access token minted beside the successor."""

    @property
    def jti(self) -> str | None: ...

    @property
    def expires_at(self) -> int | None: ...


A = TypeVar("A", bound=MintedAccess)


@dataclass(frozen=True, slots=True)
class Rotation(Generic[A]):
    spent: RefreshToken
    scope: tuple[str, ...] | None
    access: A
    issued: Issued


class RefreshTokens:
    """Built once (wiring.py): `tk.services.refresh_tokens`."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        store: RefreshStore,
        master: MasterSecret,
        audit: Audit,
        revoker: Revocations,
        revocations: RevocationState,
        grants: GrantsState,
        issued: Counter[tuple[str, str]],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.master = master
        self.audit = audit
        self.revoker = revoker
        self.revocations = revocations
        self.grants = grants
        self.issued = issued  # the tally of tokens minted (observability/metrics.py)

    def _digest(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or len(token) > MAX_LENGTH:
            return None
        return self.master.digest(token)

    async def start(
        self,
        *,
        client_id: str | None,
        user_type: int,
        user_id: int,
        scope: tuple[str, ...] | None,
        auth_time: int,
        amr: tuple[str, ...],
        access_jti: str | None,
        access_expires_at: int | None,
        cnf_jkt: str | None = None,
    ) -> Issued:
        """First token of a new family (a login, or an authorization code exchanged). `cnf_jkt`:
        the family is bound to this DPoP key (a public client's, RFC 9449 §5)."""
        now = self.clock.now_int()
        family_expires = now + self.settings.refresh_token_absolute_ttl
        max_age = self.settings.signin_max_age_for(user_type)
        if max_age is not None:
            family_expires = min(family_expires, auth_time + max_age)
        if family_expires <= now:
            raise InvalidRefreshToken(detail="sign-in past its absolute lifetime")
        record = RefreshToken(
            family_id=secrets.token_hex(16),
            client_id=client_id,
            user_type=user_type,
            user_id=user_id,
            scope=scope,
            auth_time=auth_time,
            amr=amr,
            issued_at=now,
            expires_at=min(now + self.settings.refresh_token_idle_ttl, family_expires),
            family_expires_at=family_expires,
            access_jti=access_jti,
            access_expires_at=access_expires_at,
            cnf_jkt=cnf_jkt,
        )
        token = PREFIX + secrets.token_urlsafe(32)
        limit = self.settings.refresh_families_per_client_user
        crowded = await self.store.start(self.master.digest(token), record, now=now, keep=limit)
        for old in crowded:  # the oldest families past the bound (issue 21)
            # Only the refresh tokens end: they are the state that grows. The access tokens are
            # stateless and die on their own soon; ending them would cap concurrent logins, which
            # Magento's token endpoints never do (an ERP's jobs each sign in).
            reason = f"more than {limit} refresh families of this client and user"
            await self.revoke_family(old, reason=reason, deny_access=False)
        self.issued["refresh", "opaque"] += 1
        return Issued(token, record)

    async def spend(self, token: str, *, client_id: str | None) -> RefreshToken:
        """Spend `token` for a rotation; the caller issues an access token (expiring no later than
        the family, `family_expires_at`), then `successor()`. Raises InvalidRefreshToken; a spent
        token revokes its family first."""
        now = self.clock.now_int()
        digest = self._digest(token)
        if digest is None:
            raise InvalidRefreshToken(detail="not a refresh token")
        rec, first_use = await self.store.consume(digest, now, client_id=client_id)
        if rec is None:
            raise InvalidRefreshToken(detail="unknown refresh token")
        if rec.client_id != client_id:
            # Bound to the client it was issued to (RFC 6749 §6); not spent by a stranger.
            raise InvalidRefreshToken(detail="refresh token of another client")
        if not first_use:
            if rec.revoked_at is None:
                await self.revoke_family(rec, reason="reuse")
            raise InvalidRefreshToken(detail="spent or revoked refresh token presented")
        if rec.expires_at <= now or rec.family_expires_at <= now:
            raise InvalidRefreshToken(detail="refresh token expired")
        before = self.revocations.revoke_before.get((rec.user_type, rec.user_id))
        if before is not None and rec.auth_time <= before:
            # The user's tokens were revoked (logout everywhere, deactivation) after this sign-in.
            raise InvalidRefreshToken(detail="user revoked since the sign-in")
        return rec

    async def rotate(
        self,
        token: str,
        *,
        client_id: str | None,
        scope: Callable[[RefreshToken], tuple[str, ...] | None],
        mint: Callable[[RefreshToken, tuple[str, ...] | None], Awaitable[A]],
    ) -> Rotation[A]:
        """The one rotation, in order: spend the presented token (reuse revokes the family), the
        delegation rule for the scope asked for, the access token (minted by the caller, never
        past `spent.family_expires_at`), then the successor in the same family."""
        spent = await self.spend(token, client_id=client_id)
        wanted = scope(spent)
        self.require_within_family(spent, wanted)
        access = await mint(spent, wanted)
        issued = await self.successor(spent, access_jti=access.jti, access_expires_at=access.expires_at)
        return Rotation(spent, wanted, access, issued)

    def require_within_family(self, spent: RefreshToken, scope: tuple[str, ...] | None) -> None:
        """The delegation rule for a rotation: what the new access token may hold (`scope`) is
        within what the family was granted, for the same user and client."""
        now = self.clock.now_int()

        def holder(granted: tuple[str, ...] | None) -> Principal:
            claims = TokenClaims(
                spent.user_type, spent.user_id, now, None, "", "opaque", scope=granted, client_id=spent.client_id
            )
            return self.grants.principal(claims)

        delegation.require_renewal_within(holder(spent.scope), holder(scope), what="refresh rotation")

    async def successor(self, spent: RefreshToken, *, access_jti: str | None, access_expires_at: int | None) -> Issued:
        """The next token of the family. Fails if the family was revoked meanwhile."""
        now = self.clock.now_int()
        idle_end = now + self.settings.refresh_token_idle_ttl
        record = replace(
            spent,
            issued_at=now,
            expires_at=min(idle_end, spent.family_expires_at),
            used_at=None,
            revoked_at=None,
            access_jti=access_jti,
            access_expires_at=access_expires_at,
        )
        token = PREFIX + secrets.token_urlsafe(32)
        if not await self.store.successor(self.master.digest(token), record, now=now):
            raise InvalidRefreshToken(detail="family revoked during rotation")
        self.issued["refresh", "opaque"] += 1
        return Issued(token, record)

    async def lookup(self, token: str) -> RefreshToken | None:
        digest = self._digest(token)
        if digest is None:
            return None
        return await self.store.get(digest)

    async def of_family(self, family_id: str) -> RefreshToken | None:
        """A token of the family (any one: they share user, client and scope)."""
        return await self.store.of_family(family_id)

    async def revoke_family(self, rec: RefreshToken, *, reason: str, deny_access: bool = True) -> None:
        """Revoke the family and (`deny_access`) its access tokens; reuse is a security event,
        logged as one."""
        now = self.clock.now_int()
        issued = await self.store.revoke_family(rec.family_id, now)
        if not deny_access:
            issued = []
        await self.revoker.revoke_ids(issued)
        event = audit.REFRESH_REUSED if reason == "reuse" else audit.TOKEN_REVOKED
        await self.audit.record(
            event,
            outcome=audit.FAILURE if reason == "reuse" else audit.SUCCESS,
            actor_type=rec.user_type,
            actor_id=rec.user_id,
            details={
                "family": rec.family_id,
                "client_id": rec.client_id,
                "reason": reason,
                "access_revoked": len(issued),
                "scope": "family",
            },
        )
