"""Integration credentials: OAuth 1.0a signed REST calls, and integration access tokens presented
as `Bearer` (only when TILLKEY_INTEGRATION_AS_BEARER is on, as Magento's
oauth/consumer/enable_integration_as_bearer). Both produce the integration's Principal.

Everything is read from memory (oauth1/state.py, access/grants.py); the one database write is the
nonce, made only after the signature has verified, so unsigned floods cost no writes. An integration
bound to a client certificate (RFC 8705) is accepted only with it: the one certificate check,
credentials/binding.require_certificate, after the signature (or the token lookup) succeeded.
"""

from __future__ import annotations

import re
import secrets
from typing import NoReturn

from starlette.requests import Request

from tillkey.access.grants import GrantsState
from tillkey.audit import FAILURE, OAUTH1_REFUSED, AuditLog
from tillkey.clock import Clock
from tillkey.credentials.bearer import bearer_token
from tillkey.credentials.binding import BindingRefused, require_certificate
from tillkey.credentials.freshness import CatchUp
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import Unauthenticated
from tillkey.oauth1 import rfc5849
from tillkey.oauth1.state import AccessToken, Consumer, IntegrationState
from tillkey.principal import Principal, UserType
from tillkey.security.body_limit import read_limited
from tillkey.store import integrations as repo
from tillkey.store.db import Database

# Magento's token shape (magento.md §4.5, §7): what makes an integration token recognisable among
# bearer tokens (JWTs carry dots, Tillkey's opaque tokens a tk_ prefix).
INTEGRATION_TOKEN = re.compile(r"[0-9a-z]{32}")
FORM = "application/x-www-form-urlencoded"


def signed_uri(request: Request) -> str:
    """scheme://host[:port]/path as the client addressed it, before /rest/{store}/ was mapped."""
    scope = request.scope
    path = scope.get("tillkey.signed_path") or scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{scope.get('scheme', 'http')}://{host}{path.split('?', 1)[0]}"


async def form_body(request: Request, max_bytes: int) -> str:
    """A form-encoded body is signed (a JSON one is not, magento.md §7). Read once, within the
    size limit, and left cached on the request for the handler."""
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
        return ""
    raw = await read_limited(request, max_bytes)
    request._body = raw  # Starlette's own cache: request.body() in the handler returns it
    return raw.decode("utf-8", "replace")


class OAuth1Signatures:
    """`Authorization: OAuth ...` on an API call (Magento's OauthUserContext)."""

    name = "oauth1"

    def __init__(
        self,
        state: IntegrationState,
        grants: GrantsState,
        master: MasterSecret,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        *,
        allow_sha1: bool,
        max_body_bytes: int,
        max_age: int,
        catch_up: CatchUp | None = None,
    ) -> None:
        self._state = state
        self._catch_up = catch_up
        self._grants = grants
        self._master = master
        self._db = db
        self._audit = audit
        self._clock = clock
        self._allow_sha1 = allow_sha1
        self._max_body = max_body_bytes
        self._max_age = max_age
        # Stands in for an unknown consumer's or token's secret, so the same HMAC work is done.
        self._dummy = secrets.token_hex(16)

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        header = authorization
        # Every API path (/rest/..., /tillkey/v1/...) but the token exchange, whose signatures
        # are checked by the exchange itself (surfaces/oauth1.py).
        if header[:6].lower() != "oauth " or request.url.path.startswith("/oauth/"):
            return None
        body = await form_body(request, self._max_body)
        req = rfc5849.parse(request.method, signed_uri(request), header, request.url.query, body)
        try:
            rfc5849.check_protocol(
                req,
                now=self._clock.now_int(),
                required=["oauth_token"],
                allow_sha1=self._allow_sha1,
                max_age=self._max_age,
            )
        except Unauthenticated as exc:
            self._refuse(request, exc, None)
        digest = self._master.digest(req.token or "")
        consumer = self._state.consumers.get(req.consumer_key)
        token = self._state.tokens.get(digest)
        if (consumer is None or token is None) and self._catch_up is not None:
            # An integration or token created a moment ago by the CLI or another process?
            def both() -> tuple[Consumer, AccessToken] | None:
                c, t = self._state.consumers.get(req.consumer_key), self._state.tokens.get(digest)
                return (c, t) if c is not None and t is not None else None

            if (found := await self._catch_up.look_again(req.consumer_key + ":" + digest, both)) is not None:
                consumer, token = found
        valid = rfc5849.verify(
            req, consumer.secret if consumer else self._dummy, token.secret if token else self._dummy
        )
        if consumer is None:
            self._refuse(request, rfc5849.SignatureRefused(rfc5849.BAD_SIGNATURE, detail="unknown consumer"), None)
        who = consumer.integration_id
        if token is None:
            reason = "unknown or revoked access token"
        elif token.integration_id != who:
            reason = "access token of another consumer"
        elif not valid:
            reason = "bad signature"
        else:
            reason = ""
        if reason:
            self._refuse(request, rfc5849.SignatureRefused(rfc5849.BAD_SIGNATURE, detail=reason), who)
        if not consumer.active:
            # Magento: an inactive integration's call is a guest's, refused by the access check.
            self._refuse(request, Unauthenticated(detail="inactive integration", reason="inactive"), who)
        try:
            # After the signature (an unsigned request learns nothing of the binding), before the
            # nonce (a thief without the certificate cannot spend the holder's nonces).
            require_certificate(request.scope, consumer.cert_x5t, "integration", challenge=None)
        except BindingRefused as exc:
            self._refuse(request, exc, who)
        async with self._db.transaction() as s:
            fresh = await repo.use_nonce(s, who, req.oauth["oauth_nonce"], int(req.oauth["oauth_timestamp"]))
        if not fresh:
            used = rfc5849.SignatureRefused(rfc5849.USED_NONCE, parameters=[str(who)], detail="reused nonce")
            self._refuse(request, used, who)
        return self._grants.integration(who, self.name)

    def _refuse(self, request: Request, exc: Unauthenticated, integration_id: int | None) -> NoReturn:
        refused(self._audit, request, exc, integration_id)


def refused(audit: AuditLog, request: Request, exc: Unauthenticated, integration_id: int | None) -> NoReturn:
    """An integration's credential refused: recorded (queued, not awaited: the hot path; successful
    calls are not recorded), then raised."""
    audit.record_soon(
        OAUTH1_REFUSED,
        outcome=FAILURE,
        request=request,
        actor_type=None if integration_id is None else int(UserType.INTEGRATION),
        actor_id=integration_id,
        details={"method": request.method, "path": request.url.path[:256], "reason": exc.detail or exc.message},
    )
    raise exc


class IntegrationBearer:
    """An integration access token as `Bearer` (pymagento's way). Off by default, as in Magento:
    then such a token is ignored and the caller is a guest. A certificate-bound integration's token
    without its certificate is refused with 401 (not a guest: the client must learn why)."""

    name = "integration-bearer"

    def __init__(
        self,
        state: IntegrationState,
        grants: GrantsState,
        master: MasterSecret,
        audit: AuditLog,
        *,
        enabled: bool,
        catch_up: CatchUp | None = None,
    ) -> None:
        self._state = state
        self._catch_up = catch_up
        self._grants = grants
        self._master = master
        self._audit = audit
        self._enabled = enabled

    async def authenticate(self, request: Request, authorization: str) -> Principal | None:
        token = bearer_token(authorization)
        if token is None or len(token) != 32 or not INTEGRATION_TOKEN.fullmatch(token):
            return None  # not ours: a JWT or an opaque tk_ token
        if not self._enabled:
            raise Unauthenticated(detail="integration tokens as bearer are off (TILLKEY_INTEGRATION_AS_BEARER)")
        digest = self._master.digest(token)
        found = self._state.active_token(digest)
        if found is None and self._catch_up is not None:  # created a moment ago elsewhere?
            found = await self._catch_up.look_again(digest, lambda: self._state.active_token(digest))
        if found is None:
            raise Unauthenticated(detail="unknown or revoked integration token, or inactive integration")
        token_of, consumer = found
        try:
            require_certificate(request.scope, consumer.cert_x5t, "integration")
        except BindingRefused as exc:
            refused(self._audit, request, exc, consumer.integration_id)
        return self._grants.integration(token_of.integration_id, "bearer")
