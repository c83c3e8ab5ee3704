"""The headless-storefront session (SPAs, PWAs): a short-lived access token kept in memory, and a
refresh token in an HttpOnly cookie that `POST /rest/V1/integration/token/refresh` trades for a new
access token and a new cookie. Backed by the refresh-token families of tokens/refresh.py (client
None: these families belong to the Magento-style token endpoints, never to an OAuth client)."""

from __future__ import annotations

from dataclasses import dataclass

from tillkey.accounts.service import Accounts
from tillkey.clock import Clock
from tillkey.credentials.dpop import InvalidDPoPProof
from tillkey.principal import UserType
from tillkey.store.oauth2 import RefreshToken
from tillkey.tokens.refresh import RefreshTokens
from tillkey.tokens.service import Authenticator


@dataclass(frozen=True, slots=True)
class Session:
    access_token: str
    refresh_token: str
    refresh_max_age: int  # seconds the cookie should live: the token's idle or absolute end


@dataclass(frozen=True, slots=True)
class _Access:
    token: str
    jti: str | None
    expires_at: int | None


class Headless:
    """Built once (wiring.py): `tk.services.headless`."""

    def __init__(
        self, *, authenticator: Authenticator, refresh_tokens: RefreshTokens, accounts: Accounts, clock: Clock
    ) -> None:
        self.authenticator = authenticator
        self.refresh_tokens = refresh_tokens
        self.accounts = accounts
        self.clock = clock

    async def begin(self, user_type: UserType, user_id: int, access_token: str, amr: tuple[str, ...]) -> Session:
        """After a password login: the first refresh token of a new family, beside `access_token`
        (a DPoP-bound access token binds the family to the same key)."""
        claims = await self.authenticator.read(access_token)
        signed_in = claims.auth_time or claims.issued_at
        issued = await self.refresh_tokens.start(
            client_id=None,
            user_type=int(user_type),
            user_id=user_id,
            scope=None,
            auth_time=signed_in,
            amr=amr,
            access_jti=claims.jti,
            access_expires_at=claims.expires_at,
            cnf_jkt=None if claims.cnf is None else claims.cnf.get("jkt"),
        )
        return Session(access_token, issued.token, issued.record.expires_at - self.clock.now_int())

    async def refresh(self, refresh_token: str, *, jkt: str | None = None) -> Session:
        """Rotate (tokens/refresh.py, the one rotation): a new access token and a new refresh token;
        the presented one is spent. A DPoP-bound family needs a proof of its key (`jkt`), checked
        before the token is spent, and its new access token is bound again."""
        found = await self.refresh_tokens.lookup(refresh_token)
        if found is not None and found.cnf_jkt is not None and found.cnf_jkt != jkt:
            raise InvalidDPoPProof(detail="refresh cookie bound to another DPoP key")

        async def mint(spent: RefreshToken, _scope: tuple[str, ...] | None) -> _Access:
            # The access token dies with the family: never past the sign-in's absolute lifetime; and
            # it keeps the sign-in's time, so a refresh never satisfies step-up's max_age.
            access = await self.accounts.issue_token(
                UserType(spent.user_type),
                spent.user_id,
                spent.amr,
                not_after=spent.family_expires_at,
                auth_time=spent.auth_time,
                jkt=spent.cnf_jkt,
            )
            claims = await self.authenticator.read(access)
            return _Access(access, claims.jti, claims.expires_at)

        done = await self.refresh_tokens.rotate(
            refresh_token, client_id=None, scope=lambda spent: spent.scope, mint=mint
        )
        return Session(done.access.token, done.issued.token, done.issued.record.expires_at - self.clock.now_int())
