"""ID tokens (OpenID Connect Core §2, §3.1.3.6): iss, sub, aud, exp, iat, auth_time, nonce, amr,
azp and at_hash, minted by the one issuer (tokens/issuer.py) with the current signing key
(published in the JWKS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tillkey.tokens.issuer import at_hash

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey

__all__ = ["at_hash", "issue"]


def issue(
    tk: Tillkey, *, user_type: int, user_id: int, client_id: str, auth_time: int, amr: tuple[str, ...],
    nonce: str | None, access_token: str | None, extra: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    return tk.issuer.id_token(
        user_type=user_type, user_id=user_id, client_id=client_id, ttl=tk.settings.id_token_ttl,
        auth_time=auth_time, amr=amr, nonce=nonce, access_token=access_token, extra=extra,
    )  # fmt: skip
