"""OAuth 2 access tokens: a JWT in the RFC 9068 profile (`typ: at+jwt`), or an opaque `tk_at_`
token (TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT), minted by the one issuer (tokens/issuer.py). Both carry
Tillkey's own claims (uid, utypid), so the one reader and the one hot path (tokens/service.py)
accept them beside every other token; the scope and client claims then narrow the caller
(access/grants.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tillkey.settings import TokenFormat
from tillkey.tokens.issuer import subject

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

__all__ = ["AccessToken", "issue", "subject"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int
    scope: tuple[str, ...]


async def issue(
    tk: Tillkey, *, user_type: int, user_id: int, client_id: str, scope: tuple[str, ...],
    auth_time: int | None = None, amr: tuple[str, ...] = (), not_after: int | None = None,
) -> AccessToken:  # fmt: skip
    """`not_after`: no expiry past this (the refresh family's absolute end)."""
    # The in-memory revoke-before (current within the sync interval): issuance costs no extra query.
    await tk.issuer.wait_past(tk.revocations.revoke_before.get((user_type, user_id)))
    minted = await tk.issuer.access_token(
        user_type=user_type, user_id=user_id, client_id=client_id, scope=scope,
        ttl=tk.settings.oauth2_access_token_ttl, opaque=tk.settings.oauth2_access_token_format == TokenFormat.OPAQUE,
        auth_time=auth_time, amr=amr, not_after=not_after,
    )  # fmt: skip
    assert minted.expires_at is not None
    return AccessToken(minted.token, minted.jti, minted.issued_at, minted.expires_at, scope)
