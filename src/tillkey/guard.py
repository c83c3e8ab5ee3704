"""Library mode: protect another FastAPI/Starlette app's routes with Tillkey's resource declarations.

A `Guard` verifies bearer JWTs locally against the server's published keys
(`/.well-known/jwks.json`) and applies the same revocations and admin grants as the server, which
it polls from `/tillkey/v1/auth-state` with a feed account (an admin whose role grants
`Tillkey::auth_state`). The access check is the server's own (`tillkey.access.policy.check`), so
a route declared with `guard.requires("Magento_Catalog::products")` answers exactly as a Tillkey
route declaring the same resources would: 401 for unknown callers, 403 for known callers without
the resource, Magento's error body.

Step-up (RFC 9470). A route may also require a recent, strong sign-in:
`guard.requires("Magento_Sales::hold", step_up=StepUp(acr="mfa", max_age=300))`; and the
resource-level rules apply as on the server (`step_up=` of the Guard: the server's
`TILLKEY_STEP_UP`, by default its own default, `Magento_Sales::cancel` needing MFA within five
minutes). The rule and its 401 `insufficient_user_authentication` challenge are the server's own
(`tillkey.access.stepup`), judged on the token's `amr` and `auth_time` against the guard's clock.

Staleness bound. A revocation (or grant change) made through the server reaches the guard within
`poll_interval` plus one feed request (changes made by the CLI or by another server process first
need the server's own `TILLKEY_SYNC_INTERVAL`). If the feed cannot be refreshed for longer than
`max_staleness` seconds, the guard can no longer prove that a token has not been revoked and FAILS
CLOSED: every protected route answers 503 until the feed is reachable again. Routes that declare
only `anonymous` keep answering, with the caller treated as a guest. So a revoked token is
accepted for at most `max_staleness` seconds after its revocation, whatever happens to the
network; with the feed up, for at most `poll_interval` plus request time.

Feed credential. Either a feed account (an admin, logged in with its password) or an integration
(`IntegrationCredential`: `tillkey integration create --name guard --resource Tillkey::auth_state`,
then `tillkey integration activate guard`), whose OAuth 1.0a credentials sign every feed request:
no password to store, no login to throttle, nothing that expires, revoked with
`tillkey integration revoke`.

Sender-constrained tokens (issue 20). The guard checks them with the server's own binding check
(`tillkey.credentials.binding`), not a copy of it:

- DPoP-bound tokens (RFC 9449, `cnf.jkt`) as `Authorization: DPoP <token>` with a `DPoP` proof
  naming this request's method and URL: the URL's origin is `public_url=` (the address clients use
  for this app), else the request's own scheme and Host as received — behind a proxy that
  terminates TLS or rewrites Host, that is not what the client signed, and the client chooses
  Host, so set `public_url` in production. Proofs
  are single-use through an in-memory replay cache per guard (`MemoryReplayCache`); the server's
  DPoP nonces (`TILLKEY_DPOP_NONCES`) are not asked for here.
- Certificate-bound tokens (RFC 8705, `cnf.x5t#S256`): with `trusted_proxies=` (the TLS proxy's
  addresses), `install(app)` adds the server's `ClientCertHeader` middleware, which believes the
  proxy's certificate header only from those peers; the token then works only with its
  certificate. Without `trusted_proxies` a certificate-bound token is refused (fail closed).

A bound token sent as Bearer, an unbound one as DPoP, a replayed proof or one for another URL,
method, key or token get the server's answer: 401 with its `WWW-Authenticate` challenge.

Limits: only JWTs are verifiable offline. Opaque tokens (`TILLKEY_TOKEN_FORMAT=opaque`) and HS256
deployments (no public keys) cannot be guarded: the guard refuses to start against such a server.
Expiry is checked against this host's clock, so keep it synchronised (NTP).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from oauthlib.oauth1 import Client as OAuth1Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tillkey.access.grants import GrantsState
from tillkey.access.policy import check
from tillkey.access.stepup import DEFAULT_RULES, StepUp, StepUpPolicy
from tillkey.access.tree import ANONYMOUS, SPECIAL, ResourceTree
from tillkey.clock import Clock
from tillkey.credentials.bearer import access_token
from tillkey.credentials.binding import Binding, authenticate
from tillkey.credentials.dpop import WINDOW, DPoPVerifier, normalise_htu
from tillkey.credentials.mtls import ClientCertHeader
from tillkey.errors import TillkeyError, Unauthenticated, Unavailable
from tillkey.principal import GUEST, Principal
from tillkey.surfaces.magento_wire import error_body
from tillkey.tokens.contracts import InvalidToken, TokenClaims
from tillkey.tokens.jwt import JwtReader
from tillkey.tokens.keys import ASYMMETRIC, Keyring, SigningKey
from tillkey.tokens.opaque import PREFIX as OPAQUE_PREFIX
from tillkey.tokens.revocation import RevocationState, Validator
from tillkey.tokens.service import Authenticator

log = logging.getLogger("tillkey.guard")

JWKS_PATH = "/.well-known/jwks.json"
AUTH_STATE_PATH = "/tillkey/v1/auth-state"
ADMIN_LOGIN_PATH = "/rest/V1/integration/admin/token"
FEED_RESOURCE = "Tillkey::auth_state"
RELOGIN_MARGIN = 60.0  # log the feed account in again this long before its token expires
JWKS_MAX_AGE = 300.0  # re-read the keys this often anyway (the server's Cache-Control max-age)

HttpClientFactory = Callable[[], httpx.AsyncClient]


@dataclass(frozen=True, slots=True)
class IntegrationCredential:
    """An integration's OAuth 1.0a credentials, as `tillkey integration create` and `activate` print."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    access_token: str
    access_token_secret: str = field(repr=False)


class GuardError(RuntimeError):
    """The guard cannot do its job: server unreachable, wrong feed credentials, unusable keys."""


@dataclass(frozen=True, slots=True)
class _Feed:
    revoke_before: list[tuple[int, int, int]]
    revoked_tokens: list[tuple[str, int | None]]
    admins: dict[str, dict[str, object]]
    oauth_clients: dict[str, dict[str, object]] | None = None  # None: a server without OAuth 2


class MemoryReplayCache:
    """The guard's DPoP replay cache (`tillkey.credentials.dpop.ReplayCache`): proof ids seen, kept
    in this process until they expire, at most `max_entries` of them.

    Each guard process keeps its own. That is enough for one process: a proof names this app's URL
    (`htu`), so it is worthless anywhere else, and it is only accepted within the iat window, for
    which it is remembered. With several replicas behind one URL, a proof replayed within that
    window to ANOTHER replica is not recognised there: run one process per public URL, or accept
    that a captured proof may be reused once per other replica for up to a minute (it still needs
    the token, and works only for the same method and URL).

    Full of unexpired ids (a flood of proofs), it refuses new proofs with 503 rather than forget
    one that could then be replayed."""

    def __init__(self, now: Callable[[], float], max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._now = now
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # a heap: the soonest to expire first

    def __len__(self) -> int:
        return len(self._seen)

    async def first_sight(self, key: str, expires_at: float) -> bool:
        self._purge(self._now())
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            raise Unavailable(
                detail=f"DPoP replay cache full ({self._max} unexpired proofs)", headers={"Retry-After": "5"}
            )
        self._seen[key] = expires_at
        heapq.heappush(self._expiry, (expires_at, key))
        return True

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            del self._seen[key]


class _KeyFollowingReader:
    """JwtReader over the guard's keyring; a token naming a kid we do not know first triggers a
    (rate-limited) JWKS refresh, so tokens signed with a key the server just rotated to verify."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def read(self, token: str) -> TokenClaims:
        kid = _unverified_kid(token)
        if kid is not None and kid not in self._guard.keyring.by_kid:
            await self._guard.refresh_keys_for(kid)
        return self._guard.jwt_reader.read_sync(token)


class Guard:
    """Verifies Tillkey tokens inside another app. See the module docstring for the guarantees.

    Typical use::

        guard = Guard("https://auth.example.com", feed_username="guard", feed_password="...")
        app = FastAPI()
        guard.install(app)  # error rendering + start/stop with the app's lifespan

        @app.get("/inventory/report")
        async def report(who: Principal = Depends(guard.requires("Magento_CatalogInventory::cataloginventory"))):
            ...
    """

    def __init__(
        self,
        server_url: str,
        *,
        issuer: str | None = None,
        feed_username: str | None = None,
        feed_password: str | None = None,
        feed_integration: IntegrationCredential | None = None,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
        http_client: HttpClientFactory | None = None,
        request_timeout: float = 10.0,
        jwks_refresh_interval: float = 30.0,
        token_cache_size: int = 10_000,
        clock: Clock | None = None,
        step_up: Mapping[str, StepUp] | None = None,
        public_url: str | None = None,
        trusted_proxies: str = "",
        client_cert_header: str = "X-SSL-Client-Cert",
        client_verify_header: str = "X-SSL-Client-Verify",
        dpop_proof_max_age: int = WINDOW,
        dpop_replay_cache_size: int = 100_000,
    ) -> None:
        if (feed_integration is None) == (feed_username is None or feed_password is None):
            raise ValueError("give the guard one feed credential: feed_username and feed_password, or feed_integration")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if max_staleness <= poll_interval:
            raise ValueError("max_staleness must be longer than poll_interval, or the guard fails closed between polls")
        if not 5 <= dpop_proof_max_age <= 600:
            raise ValueError("dpop_proof_max_age must be 5 to 600 seconds, as the server's TILLKEY_DPOP_PROOF_MAX_AGE")
        if public_url is not None:
            public_url = _public_origin(public_url)
        self.server_url = server_url.rstrip("/")
        self.issuer = (issuer or server_url).rstrip("/")
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self._feed_username = feed_username or ""
        self._feed_password = feed_password or ""
        self._feed_integration = feed_integration
        self._client_factory = http_client or (lambda: httpx.AsyncClient(timeout=request_timeout))
        self._jwks_refresh_interval = jwks_refresh_interval
        self._clock = clock or Clock()

        self.tree = ResourceTree.load()
        # Resource-level step-up rules, as the server's TILLKEY_STEP_UP (by default, its default).
        self.step_up = StepUpPolicy(DEFAULT_RULES if step_up is None else step_up, self.tree, self._clock.now_int)
        self.keyring = Keyring([], "")
        self.jwt_reader = JwtReader(lambda: self.keyring, self.issuer, self._clock.now)
        self._grants = GrantsState(self.tree)
        self._revocations = RevocationState()
        validator = Validator(self._revocations, self._clock.now, lambda: self.keyring)
        self._authenticator = Authenticator(_KeyFollowingReader(self), None, validator, self._grants, token_cache_size)
        # Sender-constrained tokens: the server's one binding check, with this app's URL and
        # proofs remembered here (see MemoryReplayCache for what one cache per process means).
        self.public_url = public_url
        self.trusted_proxies = trusted_proxies.strip()
        self._client_cert_header = client_cert_header
        self._client_verify_header = client_verify_header
        self.replay = MemoryReplayCache(self._clock.now, dpop_replay_cache_size)
        self.dpop = DPoPVerifier(self.replay, self._clock.now, window=dpop_proof_max_age)
        self.binding = Binding(self.dpop, public_url, certificates=bool(self.trusted_proxies))

        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._keys_lock = asyncio.Lock()
        self._keys_fetched_at = -math.inf  # monotonic
        self._kid_refresh_at = -math.inf  # monotonic; last refresh caused by an unknown kid
        self._fresh_at: float | None = None  # monotonic time the last good feed request was sent
        self._etag: str | None = None
        self._feed_token: str | None = None
        self._feed_token_renew_at: float | None = None  # wall clock; None: renew only on a 401
        self._failing = False
        self._reported_stale = False

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        """Fetch the keys and the first auth state, then poll in the background. Raises GuardError
        (and starts nothing) when the server is unreachable or the setup cannot work."""
        if self._client is not None:
            raise RuntimeError("the guard is already started")
        self._client = self._client_factory()
        try:
            keyring = await self._fetch_keys()
            if not keyring.by_kid:
                raise GuardError(
                    f"{self.server_url}{JWKS_PATH} publishes no public keys: the server signs tokens with "
                    "HS256, which only the server itself can verify. Library mode needs an asymmetric "
                    "algorithm on the server (TILLKEY_JWT_ALG=ES256, EdDSA or RS256)."
                )
            self.keyring = keyring
            self._keys_fetched_at = time.monotonic()
            if self._feed_integration is None:
                self._check_feed_token(await self._feed_credential())
            await self.refresh_state()
        except BaseException:
            await self._close_client()
            raise
        self._stopping = False
        self._task = asyncio.create_task(self._poll_loop(), name="tillkey-guard-poll")
        log.info(
            "guard started: %d key(s) from %s, auth state every %.1fs, failing closed after %.1fs",
            len(self.keyring.by_kid),
            self.server_url,
            self.poll_interval,
            self.max_staleness,
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            # Cancel until it has ended: what the poll awaits (an HTTP transport, an app served in the
            # same process) may absorb a cancellation and answer instead, and the loop must not go on.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.warning("the auth-state poll ended with %r", exc)
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start and stop with an app: `FastAPI(lifespan=guard.lifespan)`, or nest it in your own
        lifespan with `async with guard.lifespan():`. Not needed after `install(app)`."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def install(self, app: Starlette, *, lifespan: bool = True) -> None:
        """Render Tillkey errors (401/403/503) as JSON with their headers; with trusted_proxies,
        read client certificates from the TLS proxy's header (certificate-bound tokens); and
        (unless lifespan=False) start the guard before the app's own lifespan and stop it after."""
        app.add_exception_handler(TillkeyError, self._render_error)
        if self.trusted_proxies:
            # Added last, so outermost of the app's own middleware: the header is judged by the
            # direct peer and removed from the request before anything else reads it.
            app.add_middleware(
                ClientCertHeader,
                header=self._client_cert_header,
                trusted=self.trusted_proxies,
                verify_header=self._client_verify_header,
            )
        if not lifespan:
            return
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def with_guard(a: Any) -> AsyncIterator[Any]:
            async with self.lifespan(a), inner(a) as state:
                yield state

        app.router.lifespan_context = with_guard

    async def _render_error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, TillkeyError):  # pragma: no cover - registered for TillkeyError only
            raise exc
        if exc.detail:
            log.info("%s %s -> %s: %s", request.method, request.url.path, exc.status_code, exc.detail)
        return JSONResponse(error_body(exc), status_code=exc.status_code, headers=dict(exc.headers))

    # --- the access check ---------------------------------------------------------------------

    def requires(self, *resources: str, step_up: StepUp | None = None) -> Callable[[Request], Awaitable[Principal]]:
        """A dependency admitting callers that hold every resource (AND), as a Tillkey route
        declaring these resources would; it returns the caller's Principal. Use it as
        `Depends(guard.requires(...))`, or await it with the Request in a plain Starlette endpoint.
        step_up: the route's own step-up requirement, on top of its resources' (as the server's
        `Api.route(step_up=...)`): a person's token that falls short gets 401
        insufficient_user_authentication, a machine's 403 unless the rule allows machines."""
        if not resources:
            raise ValueError("declare at least one resource; use 'anonymous' for public routes")
        unknown = [r for r in self.tree.unknown(resources) if r not in SPECIAL]
        if unknown:
            raise ValueError(f"unknown resource id(s): {', '.join(unknown)} (see `tillkey role resources`)")
        declared = tuple(resources)
        protected = any(r != ANONYMOUS for r in declared)

        async def tillkey_guard(request: Request) -> Principal:
            return await self._admit(request, declared, protected, step_up)

        return tillkey_guard

    async def _admit(
        self, request: Request, resources: tuple[str, ...], protected: bool, step_up: StepUp | None = None
    ) -> Principal:
        if self._client is None:
            raise RuntimeError("the Tillkey guard is not started: call guard.install(app) or use guard.lifespan")
        presented = access_token(request.headers.get("authorization"))
        age = self.staleness
        stale = age is None or age > self.max_staleness
        if stale and protected:
            raise Unavailable(
                detail=f"auth state is {age if age is not None else math.inf:.1f}s old "
                f"(max_staleness {self.max_staleness:.1f}s); failing closed",
                headers={"Retry-After": str(math.ceil(self.poll_interval))},
            )
        principal = GUEST
        if presented is not None and not stale:
            scheme, token = presented
            try:
                # The server's own path: the claims, then the binding check when the token has
                # `cnf` or came as DPoP. Its refusals (BindingRefused) reach the client as on the
                # server; an unreadable, expired or revoked token leaves a guest, as there.
                principal, _ = await authenticate(self._authenticator, self.binding, request, scheme, token)
            except InvalidToken as exc:
                log.debug("access token rejected: %s", exc.detail)
        try:
            check(principal, resources)
        except Unauthenticated as exc:
            challenge = 'Bearer realm="tillkey"'
            if presented is not None:
                challenge += ', error="invalid_token"'
            exc.headers["WWW-Authenticate"] = challenge
            raise
        # The server's one step-up rule (routing.enforce runs the same, after the same check).
        self.step_up.require(principal, resources, step_up)
        return principal

    @property
    def staleness(self) -> float | None:
        """Seconds since the last successful auth-state request was sent; None before the first."""
        if self._fresh_at is None:
            return None
        return time.monotonic() - self._fresh_at

    # --- keys ---------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise GuardError("the guard is not started")
        return self._client

    async def _fetch_keys(self) -> Keyring:
        url = self.server_url + JWKS_PATH
        try:
            r = await self._http().get(url)
        except httpx.HTTPError as exc:
            raise GuardError(f"cannot fetch the signing keys from {url}: {exc!r}") from exc
        if r.status_code != 200:
            raise GuardError(f"cannot fetch the signing keys: {url} answered HTTP {r.status_code}")
        try:
            published = r.json()["keys"]
            if not isinstance(published, list):
                raise TypeError("keys is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise GuardError(f"{url} did not answer a JWKS: {exc}") from exc
        keys: list[SigningKey] = []
        for jwk in published:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            alg = jwk.get("alg") if isinstance(jwk, dict) else None
            if not isinstance(kid, str) or alg not in ASYMMETRIC:
                log.warning("ignoring a published key without kid or with unsupported alg %r", alg)
                continue
            try:
                # Pinned to the key's own algorithm: JwtReader verifies with exactly this one.
                public = jwt.PyJWK(jwk, alg).key
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                log.warning("ignoring unusable published key %s: %s", kid, exc)
                continue
            keys.append(
                SigningKey(kid=kid, alg=str(alg), signing_key=None, verify_key=public, public_jwk=jwk, created_at=0)
            )
        return Keyring(keys, "")

    async def refresh_keys_for(self, kid: str) -> None:
        """A token names a key we do not know: re-read the JWKS, at most once per
        jwks_refresh_interval (garbage kids must not turn into a flood of requests)."""
        async with self._keys_lock:
            if kid in self.keyring.by_kid:  # another request already refreshed
                return
            now = time.monotonic()
            if now - self._kid_refresh_at < self._jwks_refresh_interval:
                return
            self._kid_refresh_at = now
            await self._reload_keys(f"unknown kid {kid[:40]!r}")

    async def _reload_keys(self, why: str) -> None:
        try:
            keyring = await self._fetch_keys()
        except GuardError as exc:
            log.warning("key refresh (%s) failed: %s", why, exc)
            return
        if keyring.by_kid.keys() != self.keyring.by_kid.keys():
            log.info("signing keys changed (%s): now %s", why, ", ".join(sorted(keyring.by_kid)) or "none")
            if not keyring.by_kid:
                log.error("the server publishes no public keys any more: every token will be rejected")
        self.keyring = keyring
        self._keys_fetched_at = time.monotonic()

    # --- the auth-state feed ------------------------------------------------------------------

    async def _feed_headers(self, url: str) -> dict[str, str]:
        cred = self._feed_integration
        if cred is None:
            return {"Authorization": f"Bearer {await self._feed_credential()}"}
        # A fresh nonce and timestamp per request: oauthlib signs, the server checks (HMAC-SHA256).
        signer = OAuth1Client(
            cred.consumer_key,
            client_secret=cred.consumer_secret,
            resource_owner_key=cred.access_token,
            resource_owner_secret=cred.access_token_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
        )
        _uri, headers, _body = signer.sign(url, "GET")
        return {str(k): str(v) for k, v in headers.items()}

    async def _feed_credential(self) -> str:
        token = self._feed_token
        renew_at = self._feed_token_renew_at
        if token is not None and (renew_at is None or self._clock.now() < renew_at):
            return token
        url = self.server_url + ADMIN_LOGIN_PATH
        try:
            r = await self._http().post(url, json={"username": self._feed_username, "password": self._feed_password})
        except httpx.HTTPError as exc:
            raise GuardError(f"cannot log in the feed account at {url}: {exc!r}") from exc
        if r.status_code != 200:
            raise GuardError(
                f"cannot log in the feed account {self._feed_username!r}: HTTP {r.status_code} {_message(r)}"
            )
        try:
            token = r.json()
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise GuardError(f"{url} did not answer a token")
        self._feed_token = token
        self._feed_token_renew_at = _renew_at(token)
        return token

    def _check_feed_token(self, token: str) -> None:
        """At start: the feed account's own token must verify with the published keys and the
        configured issuer, else every user token would be rejected too. Say so now, clearly."""
        if token.startswith(OPAQUE_PREFIX):
            raise GuardError(
                "the server issues opaque tokens (TILLKEY_TOKEN_FORMAT=opaque), which only the server can "
                "verify; library mode needs JWTs (TILLKEY_TOKEN_FORMAT=jwt)"
            )
        try:
            self.jwt_reader.read_sync(token)
        except InvalidToken as exc:
            iss = _unverified_claims(token).get("iss")
            if iss is not None and iss != self.issuer:
                raise GuardError(
                    f"tokens of {self.server_url} carry iss={iss!r} but the guard expects {self.issuer!r}; "
                    "pass issuer= the server's TILLKEY_ISSUER"
                ) from None
            raise GuardError(f"a token fresh from {self.server_url} does not verify here: {exc.detail}") from None

    async def refresh_state(self) -> None:
        """One auth-state request (conditional on the last ETag); GuardError when it failed."""
        client = self._http()
        url = self.server_url + AUTH_STATE_PATH
        for attempt in (1, 2):
            headers = await self._feed_headers(url)
            if self._etag is not None:
                headers["If-None-Match"] = self._etag
            sent = time.monotonic()
            try:
                r = await client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                raise GuardError(f"cannot reach {url}: {exc!r}") from exc
            if r.status_code == 401 and attempt == 1:
                self._feed_token = None  # revoked or expired: log in again, once
                continue
            break
        if r.status_code == 304:
            self._fresh_at = sent
            return
        if r.status_code == 403:
            who = "integration" if self._feed_integration else f"account {self._feed_username!r}"
            raise GuardError(f"the feed {who} may not read {url}: its role must grant {FEED_RESOURCE}")
        if r.status_code == 401 and self._feed_integration is not None:
            raise GuardError(
                f"the feed integration's credentials were refused at {url} (revoked, deactivated or wrong): "
                f"{_message(r)}"
            )
        if r.status_code != 200:
            raise GuardError(f"{url} answered HTTP {r.status_code} {_message(r)}")
        try:
            feed = _parse_feed(r.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise GuardError(f"{url} answered an unreadable auth state: {exc}") from exc
        self._apply(feed)
        self._etag = r.headers.get("etag")
        self._fresh_at = sent

    def _apply(self, feed: _Feed) -> None:
        # Revocations only ever accumulate (as in the server's memory): a lagging server instance
        # behind a load balancer can never un-revoke anything. Token entries go when they expire.
        for user_type, user_id, ts in feed.revoke_before:
            self._revocations.note_user(user_type, user_id, ts)
        for jti, exp in feed.revoked_tokens:
            self._revocations.note_token(jti, exp)
        self._revocations.prune(self._clock.now_int())
        # Grants move both ways, so they are replaced: the server's snapshot is the truth.
        self._grants.load_expanded(feed.admins)
        if feed.oauth_clients is not None:
            self._grants.load_exported_clients(feed.oauth_clients)

    async def _poll_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.poll_interval)
            if time.monotonic() - self._keys_fetched_at >= JWKS_MAX_AGE:
                try:
                    async with self._keys_lock:
                        await self._reload_keys("periodic")
                except Exception:
                    log.exception("periodic key refresh failed")
            try:
                await self.refresh_state()
            except Exception as exc:
                self._note_failure(exc)
            else:
                if self._failing:
                    log.warning("auth-state feed reachable again; revocations are current")
                self._failing = self._reported_stale = False

    def _note_failure(self, exc: Exception) -> None:
        if not self._failing:
            log.warning(
                "auth-state refresh failed (%s); serving from memory, failing closed after %.1fs without it",
                exc,
                self.max_staleness,
            )
            self._failing = True
        else:
            log.debug("auth-state refresh failed again: %s", exc)
        age = self.staleness
        if not self._reported_stale and (age is None or age > self.max_staleness):
            log.error(
                "auth state is older than %.1fs: protected routes answer 503 until it is refreshed", self.max_staleness
            )
            self._reported_stale = True


# --- helpers ------------------------------------------------------------------------------------


def _public_origin(url: str) -> str:
    """`public_url=`: the origin clients address this app by; ValueError for anything else."""
    try:
        origin = normalise_htu(url)
    except ValueError:
        raise ValueError(f"public_url must be an absolute http(s) URL, not {url!r}") from None
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # The proof's path is the request's as this app receives it: a proxy that strips a
        # prefix would make every proof name another URL.
        raise ValueError(f"public_url is an origin (scheme://host[:port]), without a path: {url!r}")
    return origin.rstrip("/")


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def _unverified_kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def _renew_at(token: str) -> float | None:
    """When to log the feed account in again: a minute before expiry (sooner for short lifetimes)."""
    claims = _unverified_claims(token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float):
        return None  # opaque or never-expiring: renew when the feed answers 401
    lifetime = exp - iat if isinstance(iat, int | float) else RELOGIN_MARGIN * 2
    return float(exp) - min(RELOGIN_MARGIN, lifetime / 2)


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return r.text[:200]


def _parse_feed(data: Any) -> _Feed:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    before = [(int(t), int(u), int(ts)) for t, u, ts in data["revoke_before"]]
    revoked = [(str(j), None if e is None else int(e)) for j, e in data["revoked_tokens"]]
    admins = data["admins"]
    if not isinstance(admins, dict) or not all(isinstance(v, dict) for v in admins.values()):
        raise TypeError("admins is not an object of objects")
    for admin_id in admins:
        int(admin_id)
    clients = data.get("oauth_clients")
    if clients is not None and (
        not isinstance(clients, dict) or not all(isinstance(v, dict) for v in clients.values())
    ):
        raise TypeError("oauth_clients is not an object of objects")
    return _Feed(before, revoked, admins, clients)
