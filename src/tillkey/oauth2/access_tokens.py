"""OAuth 2 access tokens: a JWT in the RFC 9068 profile (`typ: at+jwt`), or an opaque `tk_at_`
token (TILLKEY_OAUTH2_ACCESS_TOKEN_FORMAT). Both carry Tillkey's own claims (uid, utypid), so the
one reader and the one hot path (tokens/service.py) accept them beside every other token; the
scope and client claims then narrow the caller (access/grants.py)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from tillkey.crypto.secrets import random_token
from tillkey.principal import UserType
from tillkey.runtime import Tillkey
from tillkey.settings import TokenFormat
from tillkey.store import auth as auth_repo
from tillkey.tokens.opaque import PREFIX as OPAQUE_PREFIX

SUBJECT_PREFIX = {UserType.ADMIN: "admin", UserType.CUSTOMER: "customer", UserType.OAUTH_CLIENT: "client"}


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int
    scope: tuple[str, ...]


def subject(user_type: int, user_id: int) -> str:
    """OIDC `sub`: stable, unique per issuer, never reassigned (ids are not reused)."""
    return f"{SUBJECT_PREFIX.get(UserType(user_type), str(user_type))}:{user_id}"


async def wait_past_revocation(tk: Tillkey, user_type: int, user_id: int) -> None:
    """A token whose iat equals the user's revoke_before second would be born dead (the
    `iat <= revoke_before` rule, whole seconds): wait for the clock to pass that second. Reads
    the in-memory state (current within the sync interval), so issuance costs no extra query."""
    before = tk.revocations.revoke_before.get((user_type, user_id))
    while before is not None and tk.clock.now_int() <= before:  # noqa: ASYNC110 - waiting on time itself
        await asyncio.sleep(max(0.005, before + 1 - tk.clock.now()))


async def issue(
    tk: Tillkey, *, user_type: int, user_id: int, client_id: str, scope: tuple[str, ...],
    auth_time: int | None = None, amr: tuple[str, ...] = (),
) -> AccessToken:  # fmt: skip
    await wait_past_revocation(tk, user_type, user_id)
    ttl = tk.settings.oauth2_access_token_ttl
    iat = tk.clock.now_int()
    jti = secrets.token_hex(16)
    methods = amr or (("client",) if user_type == UserType.OAUTH_CLIENT else ("pwd",))
    if tk.settings.oauth2_access_token_format == TokenFormat.OPAQUE:
        token = OPAQUE_PREFIX + random_token(32)
        record = auth_repo.OpaqueToken(jti, user_type, user_id, iat, iat + ttl, methods, scope, client_id)
        async with tk.db.transaction() as s:
            await auth_repo.add_opaque_token(s, tk.master.digest(token), record)
        tk.issued["oauth2_access", "opaque"] += 1
        return AccessToken(token, jti, iat, iat + ttl, scope)
    key = tk.keyring.signer(iat)
    if key is None:
        raise RuntimeError("no active signing key")
    claims: dict[str, Any] = {
        # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, auth_time, amr).
        "iss": tk.settings.issuer, "sub": subject(user_type, user_id), "aud": tk.settings.issuer,
        "client_id": client_id, "iat": iat, "exp": iat + ttl, "jti": jti, "scope": " ".join(scope),
        "amr": list(methods),
        # Tillkey's own claims, read by the hot path like every other token's.
        "uid": user_id, "utypid": user_type,
    }  # fmt: skip
    if auth_time is not None:
        claims["auth_time"] = auth_time
    token = jwt.encode(claims, key.signing_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"})
    tk.issued["oauth2_access", "jwt"] += 1
    return AccessToken(token, jti, iat, iat + ttl, scope)
