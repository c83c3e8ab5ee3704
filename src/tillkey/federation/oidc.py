"""The OpenID Connect relying party (OpenID Connect Core 1.0, RFC 6749, RFC 7636, RFC 9207), with
Authlib's client for the protocol and its ID-token claims checks, not hand-written crypto.

    begin:  discovery → state + nonce + PKCE S256 verifier kept (idp_flows, verifier encrypted)
            → the authorization URL
    finish: error? → state spent once (replay: nothing found) → the flow belongs to this provider
            → RFC 9207 `iss` is this provider's (mix-up) → code exchanged with the verifier
            → ID token: signature by the provider's JWKS with pinned asymmetric algorithms (no
            `none`, no HMAC with the client secret), iss, aud, azp, exp, iat, nonce, at_hash
            → an `Assertion`; an email is trusted only when `email_verified` is true.

Every request to the provider goes through the SSRF guard (security/outbound.py GuardedTransport).
Every refusal raises `Refused`: a 401 whose public text says what to do and whose detail (for the
audit log only) says what was wrong.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from tillkey.crypto.secrets import random_token
from tillkey.errors import Unauthenticated
from tillkey.federation import github, presets
from tillkey.security.outbound import GuardedTransport, Undeliverable
from tillkey.store import idps as repo
from tillkey.store.idps import Flow, Provider

if TYPE_CHECKING:
    # Authlib is imported where a provider is used, not with this module (whose Refused and
    # Assertion every sign-in path imports): every server start and CLI command would pay for it.
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from tillkey.clock import Clock
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database

# Asymmetric only: `none` and HS256 (keyed with the client secret, which the provider's other
# clients may share) are refused whatever the token's header says.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "ES256", "ES384", "EdDSA")
VERIFIER_CONTEXT = "idp-pkce-verifier"
FAILED = "The sign-in with your identity provider failed. Please start it again."
TIMEOUT_SECONDS = 10.0
LEEWAY_SECONDS = 60
MAX_DOCUMENT_BYTES = 512 * 1024


class Refused(Unauthenticated):
    """An external sign-in refused: `message` for the user, `detail` for the audit log."""

    def __init__(self, detail: str, message: str = FAILED) -> None:
        super().__init__(message, detail=detail)


@dataclass(frozen=True, slots=True)
class Assertion:
    """What a provider vouched for, after every check."""

    provider: Provider
    subject: str
    email: str | None  # only when the provider asserted email_verified: true
    unverified_email: str | None
    groups: tuple[str, ...]
    amr: tuple[str, ...]
    name: str
    context: dict[str, str] = field(default_factory=dict)  # what the flow's start asked to continue with

    @property
    def asserts_mfa(self) -> bool:
        """RFC 8176: the provider says it checked more than one factor, or a hardware key or OTP."""
        return bool({"mfa", "otp", "hwk"} & set(self.amr))


@dataclass(slots=True)
class _Cached:
    metadata: dict[str, Any]
    jwks: dict[str, Any]
    fetched: float
    jwks_fetched: float


class RelyingParty:
    """One per process (wiring.py): its cache of providers' metadata and keys lives as long."""

    def __init__(self, *, db: Database, settings: Settings, master: MasterSecret, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.master = master
        self.clock = clock
        self._cache: dict[str, _Cached] = {}

    def _client(
        self, provider: Provider, secret: str | None, auth_method: str = "client_secret_basic"
    ) -> AsyncOAuth2Client:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        transport = GuardedTransport(
            allow_private=self.settings.federation_allow_private_endpoints, seconds=TIMEOUT_SECONDS
        )
        return AsyncOAuth2Client(
            client_id=provider.client_id,
            client_secret=secret,
            scope=provider.scope,
            redirect_uri=provider.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=auth_method if secret else "none",
            transport=transport,
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
            trust_env=False,
        )

    # --- discovery and keys -----------------------------------------------------------------------

    async def _get_json(
        self, provider: Provider, url: str, what: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        doc = await self._get_document(provider, url, what, headers)
        if not isinstance(doc, dict):
            raise Refused(f"{what}: not a JSON object")
        return doc

    async def _get_document(
        self, provider: Provider, url: str, what: str, headers: Mapping[str, str] | None = None
    ) -> Any:
        try:
            async with self._client(provider, None) as client:
                answer = await client.request(
                    "GET", url, withhold_token=True, headers={"Accept": "application/json", **(headers or {})}
                )
        except (httpx.HTTPError, Undeliverable) as exc:
            raise Refused(f"{what}: {type(exc).__name__}: {exc}") from None
        if answer.status_code != 200 or len(answer.content) > MAX_DOCUMENT_BYTES:
            raise Refused(f"{what}: HTTP {answer.status_code}, {len(answer.content)} bytes")
        try:
            return json.loads(answer.content)
        except ValueError:
            raise Refused(f"{what}: not JSON") from None

    async def _discovered(self, provider: Provider, *, fresh_keys: bool = False) -> _Cached:
        now = self.clock.now()  # injected: tests move it past the refresh limit
        cached = self._cache.get(provider.name)
        ttl = self.settings.federation_metadata_ttl
        if cached is None or cached.fetched + ttl < now or cached.metadata.get("issuer") != provider.issuer:
            url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await self._get_json(provider, url, "discovery")
            # OpenID Connect Discovery §4.3: the document's issuer is the configured one, exactly.
            if metadata.get("issuer") != provider.issuer:
                raise Refused(f"discovery: issuer {str(metadata.get('issuer'))[:200]!r} is not {provider.issuer!r}")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(key), str):
                    raise Refused(f"discovery: no {key}")
            jwks = await self._get_json(provider, metadata["jwks_uri"], "jwks")
            cached = _Cached(metadata, jwks, now, now)
            self._cache[provider.name] = cached
        elif fresh_keys and cached.jwks_fetched + self.settings.federation_jwks_min_refresh <= now:
            cached.jwks = await self._get_json(provider, cached.metadata["jwks_uri"], "jwks")
            cached.jwks_fetched = now
        return cached

    async def check(self, provider: Provider) -> dict[str, Any]:
        """Discovery and keys fetched afresh, as a sign-in would (`tillkey idp test`); GitHub has
        neither: its endpoints are fixed."""
        if provider.protocol == "github":
            fixed = github.endpoints(provider.issuer)
            return {
                "issuer": provider.issuer,
                "authorization_endpoint": fixed.authorize,
                "token_endpoint": fixed.token,
                "user_api": fixed.api,
            }
        self._cache.pop(provider.name, None)
        found = await self._discovered(provider)
        keys = found.jwks.get("keys")
        return {
            "issuer": found.metadata["issuer"],
            "authorization_endpoint": found.metadata["authorization_endpoint"],
            "token_endpoint": found.metadata["token_endpoint"],
            "jwks_uri": found.metadata["jwks_uri"],
            "keys": len(keys) if isinstance(keys, list) else 0,
            "iss_parameter": found.metadata.get("authorization_response_iss_parameter_supported") is True,
            "pkce_s256": "S256" in (found.metadata.get("code_challenge_methods_supported") or ["S256"]),
        }

    # --- the authorization request ----------------------------------------------------------------

    async def begin(self, provider: Provider, secret: str | None, context: Mapping[str, str]) -> str:
        """The URL to send the browser to; the flow's secrets wait in idp_flows for the callback."""
        if provider.protocol == "github":
            endpoint, extra = github.endpoints(provider.issuer).authorize, {}
        else:
            endpoint = (await self._discovered(provider)).metadata["authorization_endpoint"]
            extra = presets.authorization_params(provider.preset)
        state, nonce, verifier = random_token(32), random_token(32), random_token(48)
        now_ms = int(self.clock.now() * 1000)
        flow = Flow(
            provider.id,
            nonce,
            self.master.encrypt(verifier.encode(), VERIFIER_CONTEXT),
            dict(context),
            now_ms + self.settings.federation_flow_ttl * 1000,
        )
        async with self.db.transaction() as s:
            await repo.start_flow(s, self.master.digest(state), flow, now_ms)
        async with self._client(provider, secret) as client:
            if provider.protocol == "oidc":
                extra["nonce"] = nonce  # plain OAuth 2 has no ID token to carry it back
            url, _ = client.create_authorization_url(endpoint, state=state, code_verifier=verifier, **extra)
        return str(url)

    # --- the callback -------------------------------------------------------------------------------

    async def finish(self, provider: Provider, secret: str | None, params: Mapping[str, str]) -> Assertion:
        if "error" in params:
            raise Refused(f"provider answered error={params['error'][:100]!r}")
        state, code = params.get("state") or "", params.get("code") or ""
        if not state or not code or len(state) > 512 or len(code) > 4096:
            raise Refused("callback without state or code")
        now_ms = int(self.clock.now() * 1000)
        async with self.db.transaction() as s:
            flow = await repo.spend_flow(s, self.master.digest(state), now_ms)
        if flow is None:
            raise Refused("unknown, spent or expired state")
        if flow.provider_id != provider.id:
            raise Refused(f"state of another provider's flow, returned to {provider.name}")
        verifier = self.master.decrypt(flow.verifier_enc, VERIFIER_CONTEXT).decode()
        if provider.protocol == "github":
            self._check_iss(provider, {}, params.get("iss"))
            return await self._github(provider, secret, code, verifier, flow.context)
        discovered = await self._discovered(provider)
        self._check_iss(provider, discovered.metadata, params.get("iss"))
        token = await self._exchange(
            provider,
            secret,
            discovered.metadata["token_endpoint"],
            code,
            verifier,
            auth_method=_auth_method(discovered.metadata),
        )
        claims = await self._verify_id_token(provider, token, flow.nonce)
        if provider.userinfo:
            claims = await self._merge_userinfo(provider, discovered.metadata, token, claims)
        return self._assertion(provider, claims, flow.context)

    async def _merge_userinfo(
        self, provider: Provider, metadata: Mapping[str, Any], token: Mapping[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any]:
        """OpenID Connect Core §5.3: the userinfo endpoint's claims, asked with the access token,
        added to the ID token's. §5.3.4: its `sub` must be the ID token's, else the answer may be
        another user's (a substituted token) and nothing of it is used. The ID token's own claims
        win (they are signed); an email and whether it is verified come from one source together."""
        endpoint = metadata.get("userinfo_endpoint")
        access_token = token.get("access_token")
        if not isinstance(endpoint, str) or not isinstance(access_token, str):
            raise Refused("userinfo configured, but no userinfo_endpoint or no access token")
        info = await self._get_json(provider, endpoint, "userinfo", {"Authorization": f"Bearer {access_token}"})
        if info.get("sub") != claims.get("sub"):
            raise Refused(f"userinfo sub {str(info.get('sub'))[:64]!r} is not the id_token's")
        merged = {**info, **claims}
        if "email" in claims:
            merged["email_verified"] = claims.get("email_verified")
        return merged

    @staticmethod
    def _check_iss(provider: Provider, metadata: Mapping[str, Any], iss: str | None) -> None:
        """RFC 9207: the response names the provider that answered; another's is a mix-up attack."""
        if iss is not None and iss != provider.issuer:
            raise Refused(f"mix-up: iss {iss[:200]!r} is not {provider.issuer!r}")
        if iss is None and metadata.get("authorization_response_iss_parameter_supported") is True:
            raise Refused("mix-up: the provider sends iss, this response has none")

    async def _github(
        self, provider: Provider, secret: str | None, code: str, verifier: str, context: dict[str, str]
    ) -> Assertion:
        """Plain OAuth 2 (federation/github.py): the code for an access token, then who it is from
        GitHub's API. Nothing signed vouches for it: the token came over TLS from the token endpoint."""
        found = github.endpoints(provider.issuer)
        token = await self._exchange(
            provider, secret, found.token, code, verifier, auth_method="client_secret_post", id_token=False
        )
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise Refused("token response without an access_token")
        headers = {**github.API_HEADERS, "Authorization": f"Bearer {access}"}
        profile = await self._get_json(provider, f"{found.api}/user", "GET /user", headers)
        emails = await self._get_document(provider, f"{found.api}/user/emails", "GET /user/emails", headers)
        try:
            who = github.user(profile, emails)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        return Assertion(provider, who.subject, who.email, who.unverified_email, (), (), who.name, context)

    async def _exchange(
        self,
        provider: Provider,
        secret: str | None,
        endpoint: str,
        code: str,
        verifier: str,
        *,
        auth_method: str = "client_secret_basic",
        id_token: bool = True,
    ) -> Mapping[str, Any]:
        from authlib.integrations.base_client import OAuthError
        from authlib.oauth2 import OAuth2Error

        try:
            async with self._client(provider, secret, auth_method) as client:
                token: Mapping[str, Any] = await client.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    redirect_uri=provider.redirect_uri,
                )
        except (OAuth2Error, OAuthError) as exc:  # the second: an error in a 200 answer (GitHub's way)
            raise Refused(f"token endpoint refused the code: {exc.error}") from None
        except (httpx.HTTPError, Undeliverable, ValueError) as exc:
            raise Refused(f"token endpoint: {type(exc).__name__}: {exc}") from None
        if id_token and not isinstance(token.get("id_token"), str):
            raise Refused("token response without an id_token")
        return token

    async def _verify_id_token(self, provider: Provider, token: Mapping[str, Any], nonce: str) -> dict[str, Any]:
        from authlib.jose import JsonWebKey, JsonWebToken
        from authlib.jose.errors import JoseError
        from authlib.oidc.core import CodeIDToken

        id_token: str = token["id_token"]
        kid = _header(id_token).get("kid")
        discovered = await self._discovered(provider)
        if kid is not None and not _has_kid(discovered.jwks, kid):
            discovered = await self._discovered(provider, fresh_keys=True)  # rotated keys
            if not _has_kid(discovered.jwks, kid):
                raise Refused(f"id_token signed with unknown key {str(kid)[:64]!r}")
        try:
            keys = JsonWebKey.import_key_set(discovered.jwks)
            claims = JsonWebToken(list(ID_TOKEN_ALGORITHMS)).decode(
                id_token,
                keys,
                claims_cls=CodeIDToken,
                claims_options={
                    "iss": {"essential": True, "values": presets.issuers(provider)},
                    "aud": {"essential": True, "value": provider.client_id},
                },
                claims_params={
                    "nonce": nonce,
                    "client_id": provider.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(now=int(self.clock.now()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Refused(f"id_token refused: {type(exc).__name__}: {str(exc)[:200]}") from None
        iat = claims.get("iat")
        max_age = self.settings.federation_flow_ttl + LEEWAY_SECONDS
        if not isinstance(iat, (int, float)) or iat < self.clock.now() - max_age:
            raise Refused("id_token issued too long ago")
        return dict(claims)

    @staticmethod
    def _assertion(provider: Provider, claims: Mapping[str, Any], context: dict[str, str]) -> Assertion:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Refused("id_token without a usable sub")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        verified = claims.get("email_verified") in (True, "true")  # Apple has sent it as a string
        groups: tuple[str, ...] = ()
        names = claims.get("_claim_names")
        if provider.groups_claim and isinstance(names, dict) and provider.groups_claim in names:
            # OpenID Connect Core §5.6.2 distributed claims: Entra ID's "groups overage" (more groups
            # than a token holds). Mapping what is absent would fall to the default role silently.
            raise Refused(
                f"{provider.groups_claim} claim not in the id_token (distributed claim)",
                "Your identity provider sent too many groups to read. Ask your administrator to send only the "
                "groups assigned to this application.",
            )
        if provider.groups_claim:
            raw = claims.get(provider.groups_claim)
            if isinstance(raw, str):
                groups = (raw,)
            elif isinstance(raw, list):
                groups = tuple(g for g in raw if isinstance(g, str))
        amr = tuple(a for a in claims.get("amr") or () if isinstance(a, str))
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        return Assertion(
            provider,
            subject,
            email if verified else None,
            None if verified else email,
            groups,
            amr,
            str(name or ""),
            context,
        )


def _auth_method(metadata: Mapping[str, Any]) -> str:
    """Client authentication at the token endpoint: Basic (RFC 6749 §2.3.1's must), unless the
    provider lists only the form post (Apple)."""
    methods = metadata.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods:
        return "client_secret_post"
    return "client_secret_basic"


def _header(token: str) -> dict[str, Any]:
    try:
        head = token.split(".", 1)[0]
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        raise Refused("id_token is not a JWT") from None
    if not isinstance(decoded, dict):
        raise Refused("id_token is not a JWT")
    return decoded


def _has_kid(jwks: Mapping[str, Any], kid: object) -> bool:
    keys = jwks.get("keys")
    return isinstance(keys, list) and any(isinstance(k, dict) and k.get("kid") == kid for k in keys)
