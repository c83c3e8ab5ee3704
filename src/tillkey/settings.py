"""The one settings object. Every knob has a safe default; environment variables are TILLKEY_*."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tillkey.access.route_table import RouteRule
from tillkey.access.stepup import DEFAULT_RULES, StepUp
from tillkey.configuration import ConfigError, check_database_url, check_secret, config_file_source, describe_validation


class TokenFormat(StrEnum):
    JWT = "jwt"
    OPAQUE = "opaque"


# Algorithms a signing key may use. "none" and anything unlisted can never be configured,
# and every verification pins the algorithm of the key named by the token's kid.
JwtAlgorithm = Literal["ES256", "EdDSA", "RS256", "HS256"]


class Settings(BaseSettings):
    """Tillkey's configuration, read from TILLKEY_* environment variables (or passed in)."""

    # Sources, strongest first: arguments, environment, ./.env, the TOML file named by
    # TILLKEY_CONFIG (settings_customise_sources below), defaults.
    model_config = SettingsConfigDict(
        env_prefix="TILLKEY_", frozen=True, extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    # Where the embedded default keeps its SQLite file and its generated master secret.
    data_dir: Path = Path("./data")
    # SQLAlchemy async URL; empty means sqlite+aiosqlite:///<data_dir>/tillkey.db.
    database_url: str = ""
    # Master secret (HMAC digests of opaque tokens, encryption of signing keys at rest).
    # Empty: generated once into <data_dir>/secret.key with mode 0600. Set it explicitly when
    # several hosts share one database.
    secret_key: str = Field(default="", repr=False)
    # "iss" claim of every token; also the base of the JWKS URL that verifiers use.
    issuer: str = "http://127.0.0.1:8000"
    # Token lifetimes in seconds (Magento: admin 4 h, customer 1 h).
    admin_token_ttl: int = Field(default=4 * 3600, gt=0, le=30 * 86400)
    customer_token_ttl: int = Field(default=3600, gt=0, le=30 * 86400)
    # Absolute lifetime of a sign-in (seconds): however often its token is renewed (Medusa's
    # /auth/token/refresh, a session made from it, a refresh-token rotation), nothing descending from
    # one password sign-in outlives this; then the user signs in again.
    customer_signin_max_age: int = Field(default=30 * 86400, gt=0)
    admin_signin_max_age: int = Field(default=8 * 3600, gt=0)
    # jwt (default) or opaque: which issuer new tokens come from. The reader accepts both.
    token_format: TokenFormat = TokenFormat.JWT
    # Asymmetric by default so other services verify offline through /.well-known/jwks.json.
    # HS256 gives Magento look-alike tokens, verifiable only by Tillkey itself.
    jwt_alg: JwtAlgorithm = "ES256"
    # How often (seconds) a process reloads revocations and grants changed by other processes
    # or by the CLI. This bounds how stale another process can be (with Redis, changes arrive at
    # once through pub/sub and this poll is the fallback for a lost message).
    sync_interval: float = Field(default=1.0, gt=0, le=60)
    # Seconds between full reloads of revocations, grants, keys, sessions and integrations from the
    # database: the safety net under the change feed (and the purge of expired rows).
    reconcile_interval: float = Field(default=30.0, gt=0, le=3600)
    # Verified-token cache size (entries). Signature checks are skipped for cached tokens;
    # expiry and revocation are still checked on every call.
    token_cache_size: int = Field(default=100_000, ge=0)
    # argon2id cost (RFC 9106 second recommendation: t=3, m=64 MiB). The floor is OWASP's minimum.
    argon2_time_cost: int = Field(default=3, ge=2)
    argon2_memory_kib: int = Field(default=65536, ge=19456)
    # One lane: parallel lanes make one login faster but let each hash take several cores at
    # once, from the event loop serving verified traffic. Memory and time cost carry the strength.
    argon2_parallelism: int = Field(default=1, ge=1)
    # Password hashes computed at once (default: half the CPUs, so hashing never takes the core
    # the event loop needs) and logins queued for the pool beyond those. Further logins wait in a
    # waiting room for up to login_wait_seconds, costing no CPU; past that, or when the room is
    # full, 503. A login flood thus can take neither the connection pool nor the event loop from
    # verified traffic (security/flood.py LoginAdmission).
    password_hash_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1)
    login_queue_limit: int = Field(default=8, ge=1)
    # Nice value of the hashing threads (Linux): hashing yields the CPU to request handling.
    password_hash_nice: int = Field(default=10, ge=0, le=19)
    login_waiting_limit: int = Field(default=1024, ge=0)
    login_wait_seconds: float = Field(default=1.0, ge=0)
    # A 429 is answered after a jittered pause of up to this many seconds (0: at once), so a
    # flood refused for its rate cannot spin the event loop (security/flood.py Pacer). At most
    # login_waiting_limit refusals are paused at once.
    refusal_pause_seconds: float = Field(default=1.0, ge=0)
    # Minimum password length for new passwords (NIST SP 800-63B: at least 8).
    password_min_length: int = Field(default=8, ge=8)
    # Largest request body accepted on the API (bytes).
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # Login throttle (Magento oauth/authentication_lock): this many failed token requests for one
    # username and user type refuse its logins for lock_seconds; every failure extends the lock.
    login_throttle_max_failures: int = Field(default=6, ge=1)
    login_throttle_lock_seconds: int = Field(default=1800, ge=1)
    # Account lockout after wrong passwords (Magento: admins 6 / 30 min, customers 10 / 10 min).
    admin_lockout_failures: int = Field(default=6, ge=1)
    admin_lockout_seconds: int = Field(default=1800, ge=1)
    customer_lockout_failures: int = Field(default=10, ge=1)
    customer_lockout_seconds: int = Field(default=600, ge=1)
    # Rate limits in `limits` notation ("N/second|minute|hour"); empty disables one.
    # The general one applies to every request per client IP; the login ones to every
    # credential-accepting endpoint, per client IP and per username.
    rate_limit_default: str = "6000/minute"
    rate_limit_login_ip: str = "60/minute"
    rate_limit_login_username: str = "10/minute"
    # redis://[:password@]host:port/db — shares rate-limit budgets between processes and wakes
    # every process at once when auth state changes (pub/sub). Empty: in memory, changes polled.
    redis_url: str = Field(default="", repr=False)
    # Prefix of every Redis key and of the pub/sub channel (<prefix>:changes), so several Tillkey
    # deployments can share one Redis.
    redis_key_prefix: str = Field(default="tillkey", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs, comma-separated).
    trusted_proxies: str = ""
    # The header in which a trusted proxy passes the client's TLS certificate, URL-encoded PEM
    # (nginx: `$ssl_client_escaped_cert`), for mutual TLS (RFC 8705). Believed only from
    # TILLKEY_TRUSTED_PROXIES; ignored from anyone else.
    client_cert_header: str = Field(default="X-SSL-Client-Cert", pattern=r"^[A-Za-z0-9-]{1,64}$")
    # ... and its verdict on the certificate's chain (nginx: `$ssl_client_verify`, "SUCCESS").
    client_verify_header: str = Field(default="X-SSL-Client-Verify", pattern=r"^[A-Za-z0-9-]{1,64}$")
    # RFC 8705 §5: where the TLS proxy that asks for client certificates serves Tillkey's endpoints,
    # when that is not the issuer's address (another host or port). Discovery then lists the
    # token, revocation, introspection, userinfo and PAR endpoints under it (`mtls_endpoint_aliases`).
    mtls_base_url: str = ""
    # Refuse credential endpoints over plain HTTP, except from loopback clients.
    require_https: bool = True
    # Admin two-factor auth (TOTP, RFC 6238), as Magento_TwoFactorAuth: "required" (a password alone
    # never gets an admin token), "optional" (only admins who activated it must use it) or "off".
    admin_2fa: Literal["required", "optional", "off"] = "required"
    # Customer two-factor auth (TOTP + recovery codes, same rules and failure budget as admins):
    # "optional" (customers opt in; those who did must use it), "required" (a customer without one
    # gets a token good only for setting one up) or "off" (never asked, cannot be set up).
    customer_2fa: Literal["required", "optional", "off"] = "optional"
    # Customer email verification (Medusa 2.21's /auth/verification): "required" (a customer who
    # never verified their address signs in with a password to a token good only for verifying it:
    # Medusa's `verification_required`; other surfaces refuse the sign-in) or "off" (never asked).
    customer_email_verification: Literal["required", "off"] = "off"
    # The same for admins (Medusa's authVerificationsPerActor listing "user"): "required" (an admin
    # who never verified their address is refused every password sign-in — the console's and
    # Magento's admin token with their own refusal, Medusa's /auth/user/emailpass with
    # `verification_required` and a token good only for verifying it) or "off" (never asked).
    admin_email_verification: Literal["required", "off"] = "off"
    # Lifetime of an email verification code (seconds); codes per account within it are bounded by
    # password_reset_per_account, as reset tokens are.
    email_verification_ttl: int = Field(default=900, gt=0, le=86400)
    # Wrong recovery codes one admin may try (on any surface) before recovery codes are refused
    # for login_throttle_lock_seconds; counted in the database.
    recovery_code_max_failures: int = Field(default=5, ge=1, le=100)
    # Issuer name authenticator apps show beside the account (otpauth URI label and issuer).
    totp_issuer_name: str = Field(default="Tillkey", min_length=1, max_length=64)
    # Passkeys (WebAuthn, accounts/passkeys.py). The relying party id is the domain passkeys are
    # bound to (empty: the issuer's host); origins are where browsers may use them (comma-separated;
    # empty: the issuer's origin). A passkey made for one RP id never works for another.
    webauthn_rp_id: str = Field(default="", max_length=253)
    webauthn_rp_name: str = Field(default="Tillkey", min_length=1, max_length=64)
    webauthn_origins: str = ""
    # Attestation: "none" (default: any authenticator; its AAGUID is what it claims) or, when
    # webauthn_aaguids lists authenticator models (comma-separated AAGUIDs), only those, with an
    # attestation statement whose signature verifies (format "none" is then refused). No vendor
    # root certificates are configured, so a self-attestation can still claim a listed model.
    webauthn_aaguids: str = ""
    # A passkey as second factor: must the authenticator verify the user (PIN, biometric)?
    # Passwordless sign-in always requires it.
    webauthn_user_verification: Literal["required", "preferred", "discouraged"] = "preferred"
    # Seconds a ceremony's challenge stays usable (once).
    webauthn_challenge_ttl: int = Field(default=300, ge=30, le=1800)
    # A phishing-resistant second factor for admins: "full_access" (admins whose role holds
    # Magento_Backend::all must use a passkey; TOTP is refused for them), "all" or "off".
    admin_passkey_required: Literal["off", "full_access", "all"] = "off"
    # Cookie sessions (POST /auth/session): lifetime in seconds (Medusa's default, 10 h). The cookie
    # is HttpOnly, SameSite=Lax, and Secure except over plain HTTP from a loopback client.
    session_ttl: int = Field(default=36_000, gt=0, le=30 * 86400)
    # Live sessions one account may hold at once: cookie sessions (POST /auth/session) per account,
    # and console sessions per admin (sign-in steps waiting for a code included). Counted in the
    # database when a session is created, so the bound holds across processes. At the bound,
    # session_limit "evict_oldest" ends the oldest session (its cookie stops working as at logout)
    # and "refuse" answers 409 to the new one.
    sessions_per_account: int = Field(default=10, ge=1, le=10_000)
    console_sessions_per_admin: int = Field(default=5, ge=1, le=1000)
    session_limit: Literal["evict_oldest", "refuse"] = "evict_oldest"
    # How often (seconds) at most the last-use time of one API key or session is written. Uses are
    # noted in memory and written in batches by the sync loop, never on the request path.
    last_used_interval: float = Field(default=60.0, ge=0)
    # Lifetime of a password reset token (seconds; Medusa: 15 min).
    password_reset_ttl: int = Field(default=900, gt=0, le=86400)
    # Reset requests honoured per account within password_reset_ttl (each mails a token; all stay
    # valid until used or expired, so a later request never voids one already delivered). Requests
    # past it answer the same 201 and send nothing (audited). Counted in the database.
    password_reset_per_account: int = Field(default=3, ge=1, le=100)
    # A Medusa registration (an auth identity with no account yet) ends this long after it was made:
    # its tokens are refused and the row is purged, so pending registrations cannot pile up.
    pending_registration_ttl: int = Field(default=7 * 86400, ge=60, le=90 * 86400)
    # Outbox for messages Tillkey would e-mail (password reset tokens): JSON lines appended to this
    # file (mode 0600) for the operator's mailer to deliver. Empty: such messages are dropped (with a
    # warning in the log that never contains the token).
    outbox_file: Path | None = None
    # Integration access tokens accepted as `Authorization: Bearer` (Magento's
    # oauth/consumer/enable_integration_as_bearer; pymagento needs it). Off: only OAuth 1.0a
    # signed requests carry them.
    integration_as_bearer: bool = False
    # Accept HMAC-SHA1 signatures beside HMAC-SHA256 (Magento before 2.4.x did; 2.4.6 refuses SHA1).
    oauth1_allow_hmac_sha1: bool = False
    # Seconds an integration has to finish the activation handshake (oauth/consumer/expiration_period).
    oauth1_handshake_seconds: int = Field(default=300, ge=10, le=86400)
    # Oldest oauth_timestamp accepted (seconds behind the server's clock). Magento sets no lower
    # bound; Tillkey keeps nonces this long and refuses older timestamps, so pruning nonces can
    # never reopen a replay.
    oauth1_timestamp_max_age: int = Field(default=86400, ge=600)
    # Let integration endpoint URLs reach loopback, private (RFC 1918, ULA), link-local and other
    # non-global addresses. Off: such an endpoint is refused when saved and again when called
    # (after DNS resolution), so activation cannot be turned against the server's own network.
    integration_allow_private_endpoints: bool = False
    # External identity providers (issue 14): let an issuer and the endpoints its discovery names
    # reach loopback, private and link-local addresses (a provider on the internal network, or
    # tests on loopback). Off: refused when saved and again after DNS resolution (security/outbound.py).
    federation_allow_private_endpoints: bool = False
    # private_key_jwt clients (issue 20): let a client's jwks_uri reach loopback, private and
    # link-local addresses (and use http, on loopback only). Off: refused when registered and
    # again after DNS resolution (security/outbound.py).
    client_jwks_allow_private_endpoints: bool = False
    # Seconds a client's fetched JWKS is kept; an unknown `kid` refetches it at once, but at most
    # once per federation_jwks_min_refresh seconds.
    client_jwks_ttl: int = Field(default=300, ge=0, le=86400)
    # Longest lifetime (exp - now, and exp - iat) of a private_key_jwt client assertion. Every
    # assertion is single use whatever its lifetime (its jti is kept until it expires); 3600 is
    # what Authlib's client signs by default.
    client_assertion_max_lifetime: int = Field(default=3600, ge=60, le=86400)
    # Seconds a sign-in at an external provider may take, from the redirect to the callback.
    federation_flow_ttl: int = Field(default=600, ge=60, le=3600)
    # Seconds a provider's discovery document and JWKS are kept; an unknown `kid` refetches the
    # JWKS at once, but at most once per federation_jwks_min_refresh seconds (no refetch storm).
    federation_metadata_ttl: int = Field(default=3600, ge=60, le=86400)
    federation_jwks_min_refresh: int = Field(default=30, ge=0, le=3600)
    # Admin identity providers (names, comma-separated) that are mandatory for the admins linked
    # to them: those admins sign in only through a provider, never with a password, on every
    # surface (accounts/signin/factors.py sso_only). Deployment config, not provider data, so
    # nobody holding the admin API or a console session can switch it off.
    federation_admin_required: str = Field(default="", max_length=4096)
    # Seconds between this server's looks for LDAP providers whose --sync-interval has passed
    # (federation/directory_sync.py; a lease makes one process run each sync). 0: none here,
    # only `tillkey idp sync`.
    directory_sync_tick: int = Field(default=15, ge=0, le=3600)
    # OAuth 2 / OpenID Connect provider (src/tillkey/oauth2). Access tokens are short-lived
    # (seconds); refresh tokens rotate on every use and die after refresh_token_idle_ttl without
    # use, and after refresh_token_absolute_ttl whatever happens (their family's login).
    oauth2_access_token_ttl: int = Field(default=900, gt=0, le=86400)
    # jwt (RFC 9068 profile, verifiable offline through the JWKS) or opaque (`tk_at_`, introspect).
    oauth2_access_token_format: TokenFormat = TokenFormat.JWT
    oauth2_code_ttl: int = Field(default=60, gt=0, le=600)
    # Seconds a pushed authorization request (RFC 9126) lives: from the push until the code is
    # issued (sign-in and consent included), single use.
    oauth2_par_ttl: int = Field(default=60, ge=5, le=600)
    # PKCE (S256) is always required of public clients; this requires it of confidential ones too
    # (RFC 9700 §2.1.1). Off: only clients registered with PKCE required must use it.
    oauth2_require_pkce: bool = True
    # DPoP (RFC 9449): how old a proof may be (seconds, by its iat), and whether every proof must
    # carry a server nonce (`DPoP-Nonce`, §8: a stale-proof defence at the price of a round trip).
    dpop_proof_max_age: int = Field(default=60, ge=5, le=600)
    dpop_nonces: bool = False
    id_token_ttl: int = Field(default=3600, gt=0, le=86400)
    refresh_token_idle_ttl: int = Field(default=14 * 86400, gt=0)
    refresh_token_absolute_ttl: int = Field(default=30 * 86400, gt=0)
    # Live refresh-token families (logins) per client and user (the Magento refresh cookie counts as
    # one client); starting one more revokes the oldest, with the access tokens issued from it.
    refresh_families_per_client_user: int = Field(default=20, ge=1, le=10_000)
    # Admin console sessions (also what /oauth2/authorize signs users in with), enforced on the
    # server: a session ends after console_idle_timeout seconds without a request, and
    # console_absolute_lifetime seconds after sign-in whatever happens.
    console_idle_timeout: int = Field(default=900, ge=2, le=86400)
    console_absolute_lifetime: int = Field(default=8 * 3600, gt=0, le=30 * 86400)
    # Admin account sharing: off (default), a new console sign-in ends that admin's other console
    # sessions; on, an admin may be signed in from several places at once.
    console_allow_multiple_sessions: bool = False
    # Log level of Tillkey's own loggers.
    log_level: str = "INFO"
    # uvicorn's access log, a line per request (about 16 us each, issue 19): off by default; the
    # request counter of /metrics counts every request by route and status either way.
    access_log: bool = False
    # Mirror of the audit log as JSON lines (one object per record, appended and flushed, mode
    # 0600). The database holds the log either way; ship this file somewhere append-only to anchor
    # the hash chain. Empty: no mirror.
    audit_file: Path | None = None
    # Signed anchors of the audit chain's head (JSON lines, mode 0600): where the database cannot
    # rewrite them, so `tillkey audit verify` detects a cut tail or a rebuilt chain. Empty:
    # <data_dir>/audit-anchors.jsonl. Every process appends the newest record it wrote, at most
    # once per audit_anchor_interval seconds (and at stop). Ship it append-only, with the mirror.
    audit_anchor_file: Path | None = None
    audit_anchor_interval: float = Field(default=60.0, ge=0, le=86400)
    # Clients that may read /metrics without a credential (IPs or CIDRs, comma-separated; empty:
    # nobody). Everyone else needs the Tillkey::metrics resource (an admin token, or an API key as
    # Basic auth). Prometheus scrapers send no token, so the default trusts this host's loopback.
    metrics_networks: str = "127.0.0.1/32,::1/128"
    # On SIGTERM, `tillkey serve` stops accepting connections and gives requests in flight this
    # many seconds to finish before cancelling them; then it writes what is queued and exits.
    shutdown_timeout: int = Field(default=30, ge=1, le=3600)
    # Forward-auth (GET /tillkey/v1/forward-auth, for nginx auth_request and Traefik forwardAuth):
    # ordered rules {"path", "methods"?, "resources"}; the first that matches the original request
    # names the resources it needs, and a request no rule matches is refused (403). A JSON list
    # here, or a TOML ([[route]] tables) or JSON file in forward_auth_routes_file; not both.
    forward_auth_routes: tuple[RouteRule, ...] = ()
    forward_auth_routes_file: Path | None = None
    # Step-up (RFC 9470): resource id -> {"acr": "1fa"|"mfa", "amr": [...], "max_age": seconds|null,
    # "machines": "deny"|"allow"}, covering the resource's subtree. A token whose sign-in is weaker
    # or older gets 401 insufficient_user_authentication; machines get 403 unless "allow".
    # Default: cancelling an order needs a multi-factor sign-in within 5 minutes. {} turns it off.
    step_up: dict[str, StepUp] = Field(default_factory=lambda: dict(DEFAULT_RULES))
    # Work bounds of one forward-auth question: the original URI's length (characters, before
    # decoding) and its number of path segments. Beyond them: 400.
    forward_auth_max_uri_length: int = Field(default=4096, ge=256, le=65536)
    forward_auth_max_segments: int = Field(default=64, ge=8, le=1024)

    @field_validator("audit_file", "audit_anchor_file", "outbox_file", "forward_auth_routes_file", mode="before")
    @classmethod
    def _empty_path_is_none(cls, v: object) -> object:
        return v or None  # TILLKEY_AUDIT_FILE="" would otherwise mean Path("."), the directory

    @field_validator("rate_limit_default", "rate_limit_login_ip", "rate_limit_login_username")
    @classmethod
    def _valid_limit(cls, v: str) -> str:
        from limits import parse

        if v:
            parse(v)  # raises ValueError with a clear message for a bad spec
        return v

    @field_validator("metrics_networks")
    @classmethod
    def _valid_networks(cls, v: str) -> str:
        import ipaddress

        for part in v.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError names the bad one
        return v

    @field_validator("webauthn_aaguids")
    @classmethod
    def _valid_aaguids(cls, v: str) -> str:
        for a in v.split(","):
            if a.strip():
                UUID(a.strip())  # ValueError: "badly formed hexadecimal UUID string"
        return v

    @field_validator("issuer")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("mtls_base_url")
    @classmethod
    def _mtls_base(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("TILLKEY_MTLS_BASE_URL must be an absolute http(s) URL, e.g. https://mtls.auth.example")
        return v

    @model_validator(mode="after")
    def _mtls_needs_its_proxy(self) -> Settings:
        if self.mtls_base_url and not self.trusted_proxies.strip():
            raise ValueError("TILLKEY_MTLS_BASE_URL needs TILLKEY_TRUSTED_PROXIES: the TLS proxy serving it")
        return self

    @model_validator(mode="after")
    def _one_route_table(self) -> Settings:
        if self.forward_auth_routes and self.forward_auth_routes_file:
            raise ValueError("set TILLKEY_FORWARD_AUTH_ROUTES or TILLKEY_FORWARD_AUTH_ROUTES_FILE, not both")
        return self

    @property
    def webauthn_rp(self) -> str:
        return self.webauthn_rp_id or (urlsplit(self.issuer).hostname or "localhost")

    @property
    def webauthn_origin_list(self) -> list[str]:
        listed = [o.strip().rstrip("/") for o in self.webauthn_origins.split(",") if o.strip()]
        if listed:
            return listed
        parts = urlsplit(self.issuer)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def webauthn_aaguid_set(self) -> frozenset[str]:
        return frozenset(a.strip().lower() for a in self.webauthn_aaguids.split(",") if a.strip())

    @property
    def federation_admin_required_names(self) -> frozenset[str]:
        return frozenset(n for n in self.federation_admin_required.replace(",", " ").split() if n)

    @property
    def resolved_audit_anchor_file(self) -> Path:
        return self.audit_anchor_file or self.data_dir / "audit-anchors.jsonl"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tillkey.db').resolve()}"

    # --- operator: configuration sources and checks of values an operator mistypes -------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = config_file_source(settings_cls)
        return (init_settings, env_settings, dotenv_settings, *([toml] if toml else []), file_secret_settings)

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, v: str) -> str:
        return check_database_url(v)

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, v: str) -> str:
        return check_secret(v)

    def ttl_for(self, user_type: int) -> int | None:
        """Lifetime of a password-login token for this user type; None means no expiry."""
        from tillkey.principal import UserType

        if user_type == UserType.ADMIN:
            return self.admin_token_ttl
        if user_type == UserType.CUSTOMER:
            return self.customer_token_ttl
        return None

    def signin_max_age_for(self, user_type: int) -> int | None:
        """Absolute lifetime of a sign-in of this user type; None: not a signed-in person."""
        from tillkey.principal import UserType

        if user_type == UserType.ADMIN:
            return self.admin_signin_max_age
        if user_type in (UserType.CUSTOMER, UserType.GUEST):
            # Guests here: Medusa registration tokens, on their way to become a customer's.
            return self.customer_signin_max_age
        return None


def load_settings(**overrides: Any) -> Settings:
    """Settings(), with every problem turned into one ConfigError line (configuration.py)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc, Settings)) from None
