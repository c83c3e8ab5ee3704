"""The OAuth 2 authorization server as one service, built once (wiring.py): `tk.services.oauth2`.

It runs the grants (rfc6749/: authorization code, client credentials, refresh token), the
revocation (RFC 7009) and introspection (RFC 7662) endpoints and the UserInfo claims (oidc/),
from narrow parts (contracts.py): the code, client and refresh stores, the revoker, the audit
sink; the one issuer (tokens/issuer.py) mints every token, the one refresh rotation
(tokens/refresh.py) spends and renews refresh tokens. The grant modules keep the rules that need
no storage (parameters, redirect URIs, PKCE, scopes, the response body); this holds the steps.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from tillkey import audit
from tillkey.audit.writer import AuditEntry
from tillkey.clock import Clock
from tillkey.contracts import Audit, ClientStore, CodeStore, ProfileStore, RefreshStore, Revocations
from tillkey.credentials.dpop import DPoPVerifier, InvalidDPoPProof
from tillkey.credentials.mtls import ClientCertificate
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import InvalidRequest, Unauthenticated
from tillkey.oauth2 import rfc7009, rfc7662
from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.access_tokens import AccessToken, subject
from tillkey.oauth2.clients import AUTH_PARAMS, Clients
from tillkey.oauth2.oidc import userinfo
from tillkey.oauth2.rfc6749 import authorization_code, client_credentials, refresh_token
from tillkey.oauth2.rfc6749.authorization_code import AuthorizationRequest, User
from tillkey.oauth2.rfc6749.errors import InvalidClient, InvalidGrant, UnsupportedGrantType, UnsupportedTokenType
from tillkey.oauth2.rfc6749.params import form, require
from tillkey.oauth2.rfc6749.token_response import Grant, Issued, Sender, body_of
from tillkey.oauth2.scopes import OPENID
from tillkey.principal import UserType
from tillkey.settings import Settings, TokenFormat
from tillkey.store.oauth2 import Client, Code, RefreshToken
from tillkey.tokens.contracts import InvalidToken, TokenClaims
from tillkey.tokens.issuer import Issuer
from tillkey.tokens.refresh import PREFIX as REFRESH_PREFIX
from tillkey.tokens.refresh import RefreshTokens, Rotation
from tillkey.tokens.revocation import RevocationState
from tillkey.tokens.service import Authenticator


class TokenRevoker(Revocations, Protocol):
    """Revocations, and one token's (tokens/revoker.Revoker)."""

    async def revoke_token(self, claims: TokenClaims) -> None: ...


class OAuth2:
    """Built once (wiring.py): `tk.services.oauth2`."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        master: MasterSecret,
        issuer: Issuer,
        authenticator: Authenticator,
        revocations: RevocationState,
        revoker: TokenRevoker,
        audit: Audit,
        clients: Clients,
        refresh_tokens: RefreshTokens,
        client_store: ClientStore,
        codes: CodeStore,
        refreshes: RefreshStore,
        profiles: ProfileStore,
        dpop: DPoPVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.dpop = dpop
        self.clock = clock
        self.master = master
        self.issuer = issuer
        self.authenticator = authenticator
        self.revocations = revocations
        self.revoker = revoker
        self.audit = audit
        self.clients = clients
        self.refresh_tokens = refresh_tokens
        self.client_store = client_store
        self.codes = codes
        self.refreshes = refreshes
        self.profiles = profiles
        # grant_type -> (declared parameters, handler). No implicit and no password grant (OAuth 2.1).
        self._grants: dict[
            str, tuple[frozenset[str], Callable[[Client, dict[str, str], Sender], Awaitable[dict[str, Any]]]]
        ]
        self._grants = {
            authorization_code.GRANT_TYPE: (authorization_code.TOKEN_PARAMS, self._code_grant),
            client_credentials.GRANT_TYPE: (client_credentials.TOKEN_PARAMS, self._client_credentials_grant),
            refresh_token.GRANT_TYPE: (refresh_token.TOKEN_PARAMS, self._refresh_grant),
        }

    # --- tokens ---------------------------------------------------------------------------------

    async def access_token(
        self,
        *,
        user_type: int,
        user_id: int,
        client_id: str,
        scope: tuple[str, ...],
        auth_time: int | None = None,
        amr: tuple[str, ...] = (),
        not_after: int | None = None,
        audit_of: Callable[[int, int | None], AuditEntry] | None = None,
        jkt: str | None = None,
        x5t: str | None = None,
    ) -> AccessToken:
        """An OAuth 2 access token (access_tokens.py); `not_after`: no expiry past this (the
        refresh family's absolute end); `audit_of`: its record, stored with an opaque token;
        `jkt`: bound to this DPoP key."""
        # The in-memory revoke-before (current within the sync interval): issuance costs no extra query.
        await self.issuer.wait_past(self.revocations.revoke_before.get((user_type, user_id)))
        minted = await self.issuer.access_token(
            user_type=user_type,
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            ttl=self.settings.oauth2_access_token_ttl,
            opaque=self.settings.oauth2_access_token_format == TokenFormat.OPAQUE,
            auth_time=auth_time,
            amr=amr,
            not_after=not_after,
            audit_of=audit_of,
            jkt=jkt,
            x5t=x5t,
        )
        assert minted.expires_at is not None
        return AccessToken(minted.token, minted.jti, minted.issued_at, minted.expires_at, scope, minted.audited)

    async def mint_access(
        self,
        grant: Grant,
        *,
        not_after: int | None = None,
        audit_of: Callable[[int, int | None], AuditEntry] | None = None,
    ) -> AccessToken:
        """The grant's access token; a rotation's (`not_after`: its family's end) dies with its family."""
        return await self.access_token(
            user_type=grant.user_type,
            user_id=grant.user_id,
            client_id=grant.client.client_id,
            scope=grant.scope,
            auth_time=grant.auth_time,
            amr=grant.amr,
            not_after=not_after,
            audit_of=audit_of,
            jkt=grant.jkt,
            x5t=grant.x5t,
        )

    async def respond(
        self,
        grant: Grant,
        *,
        refresh: bool,
        rotated: Rotation[AccessToken] | None = None,
        id_token_too: bool = False,
    ) -> Issued:
        """The token response (RFC 6749 §5.1). `rotated`: the refresh grant's rotation
        (tokens/refresh.py), which minted the access token and the successor itself; otherwise
        this mints the access token and, with `refresh`, a family."""

        def details(ttl: int) -> dict[str, Any]:
            return {
                "client_id": grant.client.client_id,
                "scope": " ".join(grant.scope)[:500],
                "format": self.settings.oauth2_access_token_format.value,
                "refresh": refresh,
                "ttl": ttl,
                "binding": "dpop" if grant.jkt is not None else "mtls" if grant.x5t is not None else "bearer",
                **({} if grant.jkt is None else {"jkt": grant.jkt}),
                **({} if grant.x5t is None else {"x5t#S256": grant.x5t}),
            }

        def audit_of(iat: int, exp: int | None) -> AuditEntry:
            assert exp is not None
            return self.audit.prepare(
                audit.TOKEN_ISSUED, actor_type=grant.user_type, actor_id=grant.user_id, details=details(exp - iat)
            )

        if rotated is not None:
            access = rotated.access
        else:
            # Without a refresh family to start after it, an opaque token's record is committed
            # with the token itself (tokens/issuer.py `OpaqueStore`): no second write per token.
            access = await self.mint_access(grant, audit_of=None if refresh else audit_of)
        family_id = refresh_value = id_token = None
        if refresh:
            if rotated is not None:
                issued = rotated.issued
            else:
                issued = await self.refresh_tokens.start(
                    client_id=grant.client.client_id,
                    user_type=grant.user_type,
                    user_id=grant.user_id,
                    scope=grant.scope,
                    auth_time=grant.auth_time or access.issued_at,
                    amr=grant.amr,
                    access_jti=access.jti,
                    access_expires_at=access.expires_at,
                    # RFC 9449 §5: a public client's refresh tokens are bound to its DPoP key (a
                    # confidential client's are bound to its authentication already).
                    cnf_jkt=None if grant.client.confidential else grant.jkt,
                )
            refresh_value = issued.token
            family_id = issued.record.family_id
        if id_token_too and OPENID in grant.scope:
            id_token = self.issuer.id_token(
                user_type=grant.user_type,
                user_id=grant.user_id,
                client_id=grant.client.client_id,
                ttl=self.settings.id_token_ttl,
                auth_time=grant.auth_time or access.issued_at,
                amr=grant.amr,
                nonce=grant.nonce,
                access_token=access.token,
            )
        if not access.audited:
            # Queued for the batch writer, not awaited: a token endpoint serving machine clients at
            # thousands of requests/s must not wait on the audit chain's single writer per token. It
            # waits only when the queue is full (backpressure): a flood never drops records.
            await self.audit.record_queued(
                audit.TOKEN_ISSUED,
                actor_type=grant.user_type,
                actor_id=grant.user_id,
                details=details(access.expires_at - access.issued_at),
            )
        return Issued(body_of(grant, access, refresh_value, id_token), access, family_id)

    # --- the authorization endpoint -------------------------------------------------------------

    async def authorization_request(self, params: dict[str, str]) -> AuthorizationRequest:
        """Check an authorization request (authorization_code.validate's rules, for the client
        as registered now). With a request_uri (RFC 9126 §4) the pushed parameters are the
        request, every other one but client_id ignored; a client that must push cannot skip it."""
        client_id = params.get("client_id")
        if client_id is None:
            raise InvalidRequest("Missing parameter: client_id.")
        client = await self.client_store.by_client_id(client_id)
        if client is None or not client.active:
            raise InvalidRequest("Unknown client.", detail=f"unknown client_id {client_id[:64]!r}")
        request_uri = params.get("request_uri")
        if request_uri is None:
            if client.require_pushed_authorization_requests:
                raise InvalidRequest("This client must push its authorization request first (RFC 9126).")
            return authorization_code.validate(client, params, require_pkce=self.settings.oauth2_require_pkce)
        found = await self.client_store.peek_request(
            self._request_uri_digest(request_uri), client.client_id, self.clock.now_int()
        )
        if found is None:
            raise InvalidRequest(
                "The request_uri is unknown, expired or already used. Start again from the application."
            )
        pushed = {**json.loads(found), "client_id": client.client_id}
        req = authorization_code.validate(client, pushed, require_pkce=self.settings.oauth2_require_pkce)
        return replace(req, request_uri=request_uri)

    def _request_uri_digest(self, request_uri: str) -> str:
        return self.master.digest("par\x00" + request_uri)

    async def push(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        certificate: ClientCertificate | None = None,
    ) -> dict[str, Any]:
        """RFC 9126 §2: a client, authenticated as at the token endpoint, pushes an authorization
        request; it is checked as the authorization endpoint checks it and kept, single use, for
        oauth2_par_ttl seconds behind a random request_uri."""
        raw = form(body, content_type, authorization_code.AUTHORIZE_PARAMS | AUTH_PARAMS)
        client = await self.clients.authenticate(raw, authorization, certificate)
        if "request_uri" in raw:
            raise InvalidRequest("A pushed authorization request cannot carry a request_uri.")
        params = {k: v for k, v in raw.items() if k in authorization_code.AUTHORIZE_PARAMS}
        params["client_id"] = client.client_id
        try:
            authorization_code.validate(client, params, require_pkce=self.settings.oauth2_require_pkce)
        except authorization_code.RedirectError as exc:
            raise exc.error from None
        request_uri = authorization_code.REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        now, ttl = self.clock.now_int(), self.settings.oauth2_par_ttl
        digest = self._request_uri_digest(request_uri)
        await self.client_store.push_request(digest, client.client_id, json.dumps(params), now + ttl, now)
        return {"request_uri": request_uri, "expires_in": ttl}

    async def issue_code(self, req: AuthorizationRequest, user: User) -> str:
        """The redirect URI carrying a fresh code (and state, and iss per RFC 9207). A pushed
        request is spent here, once."""
        code = authorization_code.CODE_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now_int()
        if req.request_uri is not None:
            digest = self._request_uri_digest(req.request_uri)
            if await self.client_store.pull_request(digest, req.client.client_id, now) is None:
                raise InvalidRequest(
                    "The request_uri is unknown, expired or already used. Start again from the application."
                )
        record = Code(
            req.client.client_id,
            user.user_type,
            user.user_id,
            req.redirect_uri,
            req.scope,
            req.code_challenge,
            req.nonce,
            user.auth_time,
            user.amr,
            now + self.settings.oauth2_code_ttl,
            dpop_jkt=req.dpop_jkt,
        )
        await self.codes.add(self.master.digest(code), record)
        return authorization_code.code_redirect(req, code, self.settings.issuer)

    # --- the token endpoint (RFC 6749 §3.2) -----------------------------------------------------

    async def token(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        *,
        dpop: list[str] | None = None,
        url: tuple[str, ...] = (),
        certificate: ClientCertificate | None = None,
    ) -> dict[str, Any]:
        """A pipeline: parse the form (each parameter once), keep only the parameters the grant
        declares, authenticate the client, check its DPoP proof (`dpop`: the request's `DPoP`
        headers, `url` the URLs it may name: Binding.urls_of), bind to the client's certificate
        (`certificate`, from a trusted proxy) when it registered certificate-bound tokens, run the
        grant."""
        raw = form(body, content_type)
        (grant_type,) = require(raw, "grant_type")
        if grant_type not in self._grants:
            raise UnsupportedGrantType()
        declared, exchange = self._grants[grant_type]
        params = {k: v for k, v in raw.items() if k in declared}
        client = await self.clients.authenticate(params, authorization, certificate)
        jkt = await self._dpop_key(client, dpop or [], url)
        return await exchange(client, params, Sender(jkt, self._certificate(client, certificate)))

    @staticmethod
    def _certificate(client: Client, certificate: ClientCertificate | None) -> str | None:
        """RFC 8705 §3: the thumbprint a certificate-bound client's tokens carry (it must present one)."""
        if not client.tls_client_certificate_bound_access_tokens:
            return None
        if certificate is None:
            raise InvalidClient(detail="certificate-bound client without a client certificate")
        return certificate.thumbprint

    async def _dpop_key(self, client: Client, proofs: list[str], url: tuple[str, ...]) -> str | None:
        """The thumbprint of the request's DPoP key (RFC 9449 §5), None without a proof (refused
        when the client registered `dpop_bound_access_tokens`)."""
        if not proofs:
            if client.dpop_bound_access_tokens:
                raise InvalidDPoPProof("This client's tokens must be DPoP-bound: send a DPoP proof.")
            return None
        if len(proofs) > 1:
            raise InvalidDPoPProof("Send exactly one DPoP proof.")
        if self.dpop is None:
            raise InvalidDPoPProof("DPoP is not available here.")
        return (await self.dpop.verify(proofs[0], "POST", url)).jkt

    async def _code_grant(self, client: Client, params: dict[str, str], sender: Sender) -> dict[str, Any]:
        """RFC 6749 §4.1.3: a code for tokens."""
        code = authorization_code.code_param(client, params)
        digest = self.master.digest(code)
        now = self.clock.now_int()
        found, first_use = await self.codes.consume(digest, now, client_id=client.client_id)
        if found is None or found.client_id != client.client_id:
            raise InvalidGrant(detail="unknown code or another client's")
        if not first_use:
            await self._code_replayed(digest, found)
            raise InvalidGrant(detail="code replayed")
        authorization_code.check_exchange(client, found, params, now)
        jkt = sender.jkt
        if found.dpop_jkt is not None and found.dpop_jkt != jkt:
            # RFC 9449 §10: the code is bound to the key the authorization request named.
            raise InvalidDPoPProof(detail="code bound to another DPoP key (dpop_jkt)")
        grant = Grant(
            client,
            found.user_type,
            found.user_id,
            found.scope,
            found.auth_time,
            found.amr,
            found.nonce,
            jkt,
            sender.x5t,
        )
        issued = await self.respond(grant, refresh="refresh_token" in client.grant_types, id_token_too=True)
        await self.codes.note_tokens(digest, issued.family_id, issued.access.jti, issued.access.expires_at)
        return issued.body

    async def _code_replayed(self, digest: str, code: Code) -> None:
        """RFC 6749 §4.1.2: a code used twice revokes what it produced — the refresh family (with
        the access tokens issued from it) and the first access token."""
        code = await self.codes.get(digest) or code  # read again: the first exchange noted its tokens
        denied: list[tuple[str, int | None]] = []
        if code.access_jti is not None:
            denied.append((code.access_jti, code.access_expires_at))
        await self.revoker.revoke_ids(denied)
        if code.family_id is not None:
            family = await self.refreshes.of_family(code.family_id)
            if family is not None:
                await self.refresh_tokens.revoke_family(family, reason="code_reuse")
        await self.audit.record(
            audit.CODE_REUSED,
            outcome=audit.FAILURE,
            actor_type=code.user_type,
            actor_id=code.user_id,
            details={"client_id": code.client_id, "family": code.family_id, "access_revoked": len(denied)},
        )

    async def _client_credentials_grant(self, client: Client, params: dict[str, str], sender: Sender) -> dict[str, Any]:
        scope = client_credentials.scope_of(client, params)
        grant = Grant(client, UserType.OAUTH_CLIENT, client.id, scope, jkt=sender.jkt, x5t=sender.x5t)
        return (await self.respond(grant, refresh=False)).body

    async def _refresh_grant(self, client: Client, params: dict[str, str], sender: Sender) -> dict[str, Any]:
        """RFC 6749 §6: rotation on every use, reuse detection and family revocation live in
        tokens/refresh.py; this checks the client, the scope and a public client's DPoP key."""
        token, requested = refresh_token.token_and_scope(client, params)
        jkt = sender.jkt
        if requested or not client.confidential:
            # A bad scope or another key must not spend the token: check against the grant first.
            found = await self.refresh_tokens.lookup(token)
            if found is not None and found.client_id == client.client_id:
                if requested:
                    scope_rules.within(requested, found.scope or ())
                if found.cnf_jkt is not None and found.cnf_jkt != jkt:
                    # RFC 9449 §5.0: a bound refresh token is used only with a proof of its key.
                    raise InvalidDPoPProof(detail="refresh token bound to another DPoP key")

        def grant_of(spent: RefreshToken, scope: tuple[str, ...]) -> Grant:
            return Grant(
                client, spent.user_type, spent.user_id, scope, spent.auth_time, spent.amr, jkt=jkt, x5t=sender.x5t
            )

        async def mint(spent: RefreshToken, scope: tuple[str, ...] | None) -> AccessToken:
            return await self.mint_access(grant_of(spent, scope or ()), not_after=spent.family_expires_at)

        def narrowed(spent: RefreshToken) -> tuple[str, ...]:
            return refresh_token.narrowed(client, spent, requested)

        done = await self.refresh_tokens.rotate(token, client_id=client.client_id, scope=narrowed, mint=mint)
        grant = grant_of(done.spent, done.scope or ())
        return (await self.respond(grant, refresh=True, rotated=done)).body

    # --- RFC 7009 revocation, RFC 7662 introspection --------------------------------------------

    async def revoke(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        certificate: ClientCertificate | None = None,
    ) -> None:
        """RFC 7009 (rfc7009.py): returns once the revocation is committed, so a 200 is durable."""
        params = form(body, content_type, rfc7009.PARAMS)
        client = await self.clients.authenticate(params, authorization, certificate)
        (token,) = require(params, "token")
        hint = params.get("token_type_hint")
        if hint is not None and hint not in rfc7009.HINTS:
            raise UnsupportedTokenType()
        # The hint only orders the lookups (§2.1); the token's prefix tells refresh tokens apart.
        if token.startswith(REFRESH_PREFIX):
            found = await self.refresh_tokens.lookup(token)
            if found is not None and found.client_id == client.client_id and found.revoked_at is None:
                await self.refresh_tokens.revoke_family(found, reason="revoked")
            return
        try:
            claims = await self.authenticator.read(token)
        except InvalidToken:
            return
        if claims.client_id == client.client_id:
            await self.revoker.revoke_token(claims)

    async def introspect(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        certificate: ClientCertificate | None = None,
    ) -> dict[str, Any]:
        """RFC 7662 (rfc7662.py: who learns what)."""
        params = form(body, content_type, rfc7662.PARAMS)
        client = await self.clients.authenticate(params, authorization, certificate)
        if not client.confidential:
            # §4: the endpoint must be protected; a public client proves nothing about itself.
            raise InvalidClient(detail="public client at the introspection endpoint")
        (token,) = require(params, "token")
        now = self.clock.now_int()
        if token.startswith(REFRESH_PREFIX):
            rec = await self.refresh_tokens.lookup(token)
            return rfc7662.refresh_answer(rec, client, now, self.settings.issuer)
        try:
            # Sender-constrained tokens too: the resource server checks the binding (`cnf` below).
            principal, claims = await self.authenticator.authenticate_claims(token)
        except Unauthenticated:
            return rfc7662.INACTIVE
        return rfc7662.access_answer(principal, claims, client, self.settings.issuer)

    # --- OpenID Connect -------------------------------------------------------------------------

    async def userinfo(self, user_type: int, user_id: int, scopes: frozenset[str]) -> dict[str, Any] | None:
        """The UserInfo claims (oidc/userinfo.py); None when the account is gone or inactive."""
        profile = await self.profiles.active(user_type, user_id)
        return None if profile is None else userinfo.claims(subject(user_type, user_id), profile, scopes)
