"""Magento's integration activation handshake (magento.md §7), the cold path of OAuth 1.0a:

1. activation posts the consumer key and secret, the store's base URL and an `oauth_verifier` to the
   integration's endpoint (form-encoded, 5 s timeout, no redirects);
2. within the handshake window the integration calls POST /oauth/token/request, signed with the
   consumer secret, and receives a request token and secret;
3. then POST /oauth/token/access with the request token and the verifier, signed with both
   secrets, and receives the access token and secret; the integration is then active.

A manual integration (no endpoint) skips all that: activation issues the access token at once.
An integration bound to a client certificate must present it at steps 2 and 3 too (RFC 8705).
Issuing an access token deletes every older token of the integration (re-authorization revokes).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Scope

from tillkey import audit
from tillkey.clock import Clock
from tillkey.contracts import Changes
from tillkey.crypto.secrets import MasterSecret, constant_time_equals
from tillkey.errors import TillkeyError, Unauthenticated, UpstreamFailed
from tillkey.oauth1 import rfc5849
from tillkey.principal import UserType
from tillkey.security import outbound
from tillkey.settings import Settings
from tillkey.store import integrations as repo
from tillkey.store.db import Database
from tillkey.store.integrations import Integration
from tillkey.store.unit_of_work import Work

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ENDPOINT_TIMEOUT = 5.0  # seconds (Magento's postToConsumer)
CONSUMER_EXPIRED = "Consumer key has expired"
BAD_VERIFIER = "Verifier is invalid"
TOKEN_CONTEXT = "oauth1-token"  # noqa: S105 - AES-GCM associated data of token secrets
CONSUMER_CONTEXT = "oauth1-consumer"
UNDELIVERED = "The activation could not be delivered to the integration's endpoint."
# The one certificate check, credentials/binding.require_certificate, as wiring.py hands it over
# (oauth1 does not import credentials): raises unless the request (its scope) presented the client
# certificate of this x5t#S256; None, an unbound integration, passes.
CertificateCheck = Callable[[Scope, str | None], None]


def new_token() -> str:
    """Magento's token shape: 32 characters of [0-9a-z] (165 bits)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(rfc5849.TOKEN_LENGTH))


@dataclass(frozen=True, slots=True)
class TokenPair:
    token: str
    secret: str


async def issue_access_token(master: MasterSecret, w: Work, integration_id: int) -> TokenPair:
    """In the caller's unit of work: drop every token of the integration, add a new access token,
    mark the integration active and tell every process (change feed)."""
    pair = TokenPair(new_token(), new_token())
    await repo.delete_tokens(w.s, integration_id)
    await repo.add_token(
        w.s,
        integration_id,
        repo.ACCESS,
        master.digest(pair.token),
        master.encrypt(pair.secret.encode(), TOKEN_CONTEXT),
        w.now,
    )
    await repo.set_active(w.s, integration_id, True)
    w.changed("integrations", user_type=1, user_id=integration_id)
    return pair


async def start(db: Database, master: MasterSecret, settings: Settings, clock: Clock, integration: Integration) -> int:
    """Post the verifier to the integration's endpoint; answers the handshake's deadline (unix)."""
    assert integration.endpoint_url is not None
    verifier = new_token()
    now = clock.now_int()
    async with db.transaction() as s:
        await repo.delete_tokens(s, integration.id, [repo.VERIFIER, repo.REQUEST])
        await repo.add_token(
            s,
            integration.id,
            repo.VERIFIER,
            master.digest(secrets.token_hex(32)),
            master.encrypt(secrets.token_bytes(16), TOKEN_CONTEXT),
            now,
            verifier_digest=master.digest(verifier),
        )
    form = {
        "oauth_consumer_key": integration.consumer_key,
        "oauth_consumer_secret": master.decrypt(integration.consumer_secret_enc, CONSUMER_CONTEXT).decode(),
        "store_base_url": settings.issuer + "/",
        "oauth_verifier": verifier,
    }
    try:
        await outbound.post_form(
            integration.endpoint_url,
            form,
            seconds=ENDPOINT_TIMEOUT,
            allow_private=settings.integration_allow_private_endpoints,
        )
    except outbound.Undeliverable as exc:
        # One answer whatever happened there: the status, body or error of the target would make
        # activation a probe of whatever the URL reaches.
        raise UpstreamFailed(UNDELIVERED, detail=str(exc)) from None
    return now + settings.oauth1_handshake_seconds


class Exchange:
    """POST /oauth/token/request and /oauth/token/access (surfaces/oauth1.py renders)."""

    def __init__(
        self,
        *,
        db: Database,
        changes: Changes,
        master: MasterSecret,
        settings: Settings,
        clock: Clock,
        require_certificate: CertificateCheck,
    ) -> None:
        self.db = db
        self.require_certificate = require_certificate
        self.changes = changes
        self.master = master
        self.settings = settings
        self.clock = clock
        self._dummy = secrets.token_hex(16)

    async def _consumer(self, req: rfc5849.SignedRequest) -> tuple[Integration | None, str]:
        async with self.db.session() as s:
            found = await repo.by_consumer_key(s, req.consumer_key)
        if found is None:
            return None, self._dummy
        return found, self.master.decrypt(found.consumer_secret_enc, CONSUMER_CONTEXT).decode()

    def _check(self, req: rfc5849.SignedRequest, required: list[str]) -> None:
        settings = self.settings
        rfc5849.check_protocol(
            req,
            now=self.clock.now_int(),
            required=required,
            allow_sha1=settings.oauth1_allow_hmac_sha1,
            max_age=settings.oauth1_timestamp_max_age,
        )

    async def _nonce(self, s: AsyncSession, req: rfc5849.SignedRequest, integration_id: int) -> None:
        if not await repo.use_nonce(s, integration_id, req.oauth["oauth_nonce"], int(req.oauth["oauth_timestamp"])):
            raise rfc5849.SignatureRefused(rfc5849.USED_NONCE, parameters=[str(integration_id)], detail="reused nonce")

    def _fresh(self, created_at: int) -> bool:
        return self.clock.now_int() <= created_at + self.settings.oauth1_handshake_seconds

    async def request_token(self, req: rfc5849.SignedRequest, scope: Scope) -> TokenPair:
        """`scope`: the HTTP request's, for the client certificate a bound integration must present."""
        self._check(req, [])
        integration, secret = await self._consumer(req)
        valid = rfc5849.verify(req, secret, "")
        if integration is None or not valid:
            raise rfc5849.SignatureRefused(
                rfc5849.BAD_SIGNATURE, detail="unknown consumer" if integration is None else "bad signature"
            )
        self.require_certificate(scope, integration.cert_x5t)
        pair = TokenPair(new_token(), new_token())
        async with self.db.transaction() as s:
            pending = await repo.tokens_of(s, integration.id, repo.VERIFIER)
            if not pending or not self._fresh(pending[-1].created_at):
                raise Unauthenticated(CONSUMER_EXPIRED, detail="no handshake in progress, or it expired")
            await self._nonce(s, req, integration.id)
            await repo.promote_token(
                s,
                pending[-1].id,
                repo.REQUEST,
                self.master.digest(pair.token),
                self.master.encrypt(pair.secret.encode(), TOKEN_CONTEXT),
            )
        return pair

    async def access_token(self, req: rfc5849.SignedRequest, scope: Scope) -> tuple[int, TokenPair]:
        self._check(req, ["oauth_token", "oauth_verifier"])
        integration, secret = await self._consumer(req)
        async with self.db.session() as s:
            stored = await repo.token_by_digest(s, self.master.digest(req.token or ""))
        ours = stored is not None and integration is not None and stored.integration_id == integration.id
        token_secret = self._dummy
        if stored is not None and stored.kind == repo.REQUEST:
            token_secret = self.master.decrypt(stored.secret_enc, TOKEN_CONTEXT).decode()
        valid = rfc5849.verify(req, secret, token_secret)
        if integration is None or stored is None or not ours or stored.kind != repo.REQUEST or not valid:
            raise rfc5849.SignatureRefused(
                rfc5849.BAD_SIGNATURE, detail="unknown consumer or request token, or bad signature"
            )
        self.require_certificate(scope, integration.cert_x5t)
        verifier = self.master.digest(req.oauth["oauth_verifier"])
        if stored.verifier_digest is None or not constant_time_equals(verifier, stored.verifier_digest):
            raise rfc5849.SignatureRefused(BAD_VERIFIER, detail="wrong verifier")
        if not self._fresh(stored.created_at):
            raise Unauthenticated(CONSUMER_EXPIRED, detail="handshake expired")
        async with self.changes() as w:
            await self._nonce(w.s, req, integration.id)
            # A request token buys one access token, even when two exchanges race with it.
            if not await repo.spend_token(w.s, stored.id, repo.REQUEST):
                raise rfc5849.SignatureRefused(rfc5849.BAD_SIGNATURE, detail="request token already spent")
            pair = await issue_access_token(self.master, w, integration.id)
            w.audit(
                audit.TOKEN_ISSUED,
                actor_type=int(UserType.INTEGRATION),
                actor_id=integration.id,
                details={"format": "oauth1", "via": "handshake"},
            )
        return integration.id, pair


def problem(err: TillkeyError) -> str:
    """Magento's prepareErrorResponse text: the message with its placeholders filled."""
    msg = err.message
    if isinstance(err.parameters, dict):
        for k, v in err.parameters.items():
            msg = msg.replace(f"%{k}", str(v))
    elif isinstance(err.parameters, list):
        for i, v in enumerate(err.parameters, 1):
            msg = msg.replace(f"%{i}", str(v))
    if len(err.errors) > 1:
        return ", ".join(problem(e) for e in err.errors)
    return msg
