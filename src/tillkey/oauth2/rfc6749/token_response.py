"""The successful token response (RFC 6749 §5.1), shared by the grants: an access token, and, as
the grant allows, a refresh token (a new family, or the successor of a spent one) and an ID token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tillkey import audit
from tillkey.oauth2 import access_tokens
from tillkey.oauth2.access_tokens import AccessToken
from tillkey.oauth2.oidc import id_token
from tillkey.oauth2.scopes import OPENID
from tillkey.store.oauth2 import Client
from tillkey.tokens.refresh import Rotation

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey


@dataclass(frozen=True, slots=True)
class Grant:
    """What a grant decided: who, for which client, which scopes, since when logged in."""

    client: Client
    user_type: int
    user_id: int
    scope: tuple[str, ...]
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    body: dict[str, Any]
    access: AccessToken
    family_id: str | None


async def mint_access(tk: Tillkey, grant: Grant, *, not_after: int | None = None) -> AccessToken:
    """The grant's access token; a rotation's (`not_after`: its family's end) dies with its family."""
    return await access_tokens.issue(
        tk, user_type=grant.user_type, user_id=grant.user_id, client_id=grant.client.client_id, scope=grant.scope,
        auth_time=grant.auth_time, amr=grant.amr, not_after=not_after,
    )  # fmt: skip


async def respond(
    tk: Tillkey, grant: Grant, *, refresh: bool, rotated: Rotation[AccessToken] | None = None,
    id_token_too: bool = False,
) -> Issued:  # fmt: skip
    """`rotated`: the refresh grant's rotation (tokens/refresh.py), which minted the access token
    and the successor itself; otherwise this mints the access token and, with `refresh`, a family."""
    access = rotated.access if rotated is not None else await mint_access(tk, grant)
    body: dict[str, Any] = {
        "access_token": access.token, "token_type": "Bearer",
        "expires_in": access.expires_at - access.issued_at, "scope": " ".join(grant.scope),
    }  # fmt: skip
    family_id = None
    if refresh:
        if rotated is not None:
            issued = rotated.issued
        else:
            issued = await tk.services.refresh_tokens.start(
                client_id=grant.client.client_id, user_type=grant.user_type, user_id=grant.user_id,
                scope=grant.scope, auth_time=grant.auth_time or access.issued_at, amr=grant.amr,
                access_jti=access.jti, access_expires_at=access.expires_at,
            )  # fmt: skip
        body["refresh_token"] = issued.token
        family_id = issued.record.family_id
    if id_token_too and OPENID in grant.scope:
        body["id_token"] = id_token.issue(
            tk, user_type=grant.user_type, user_id=grant.user_id, client_id=grant.client.client_id,
            auth_time=grant.auth_time or access.issued_at, amr=grant.amr, nonce=grant.nonce,
            access_token=access.token,
        )  # fmt: skip
    # Queued for the batch writer, not awaited: a token endpoint serving machine clients at
    # thousands of requests/s must not wait on the audit chain's single writer per token. It
    # waits only when the queue is full (backpressure): a flood never drops records.
    await tk.audit.record_queued(
        audit.TOKEN_ISSUED, actor_type=grant.user_type, actor_id=grant.user_id,
        details={"client_id": grant.client.client_id, "scope": " ".join(grant.scope)[:500],
                 "format": tk.settings.oauth2_access_token_format.value, "refresh": refresh,
                 "ttl": access.expires_at - access.issued_at},
    )  # fmt: skip
    return Issued(body, access, family_id)
