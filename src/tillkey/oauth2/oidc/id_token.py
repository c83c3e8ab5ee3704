"""ID tokens (OpenID Connect Core §2, §3.1.3.6): iss, sub, aud, exp, iat, auth_time, nonce, amr,
azp and at_hash, minted by the one issuer (tokens/issuer.py) with the current signing key
(published in the JWKS), when OAuth2.respond (oauth2/service.py) answers an `openid` grant."""

from __future__ import annotations

from tillkey.tokens.issuer import at_hash

__all__ = ["at_hash"]
