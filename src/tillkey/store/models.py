"""SQLAlchemy tables. ORM objects never leave the store package: repositories return dataclasses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# --- accounts and roles -------------------------------------------------------------------------


class RoleRow(Base):
    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class RoleResourceRow(Base):
    __tablename__ = "role_resources"
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class AdminRow(Base):
    __tablename__ = "admins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    # Magento logins are case-insensitive (admin/security/use_case_sensitive_login = 0).
    username_key: Mapped[str] = mapped_column(String(128), unique=True)
    # UTS #39 skeleton of the username (tillkey/names.py): a look-alike of it is refused.
    name_skeleton: Mapped[str | None] = mapped_column(String(1024), nullable=True, index=True)
    email: Mapped[str] = mapped_column(String(255))
    firstname: Mapped[str] = mapped_column(String(255), default="")
    lastname: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    role_id: Mapped[int | None] = mapped_column(ForeignKey("roles.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255))
    email_key: Mapped[str] = mapped_column(String(255), unique=True)
    name_skeleton: Mapped[str | None] = mapped_column(String(1024), nullable=True, index=True)
    firstname: Mapped[str] = mapped_column(String(255))
    lastname: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    website_id: Mapped[int] = mapped_column(Integer, default=1)
    store_id: Mapped[int] = mapped_column(Integer, default=1)
    group_id: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


# --- tokens, keys, revocation -------------------------------------------------------------------


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    # Private key (PEM) or HMAC secret, AES-GCM encrypted under the master secret.
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Public JWK (JSON) for asymmetric keys; NULL for HMAC keys, which are never published.
    public_jwk: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Published in the JWKS from created_at; signs from signs_from (NULL: created_at); stops
    # signing at retired_at; verifies, and stays published, until verify_until (tokens/keys.py).
    created_at: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    signs_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    verify_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RevocationRow(Base):
    """Magento's jwt_auth_revoked: tokens of (user_type, user_id) with iat <= revoke_before are dead."""

    __tablename__ = "revocations"
    user_type: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revoke_before: Mapped[int] = mapped_column(BigInteger)


class RevokedTokenRow(Base):
    """Per-token deny list, kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)


class OpaqueTokenRow(Base):
    """Opaque access tokens, found by a keyed HMAC digest; the token itself is never stored."""

    __tablename__ = "opaque_tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    auth_methods: Mapped[str] = mapped_column(String(64), default="pwd")
    # OAuth 2 access tokens: space-separated granted scopes and the client (NULL otherwise).
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The original sign-in time, carried forward by refresh (step-up's max_age reads it).
    auth_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # DPoP (RFC 9449): the thumbprint of the key the token is bound to (`cnf.jkt`); NULL: bearer.
    cnf_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Mutual TLS (RFC 8705 §3): the certificate's thumbprint (`cnf.x5t#S256`); NULL: not bound.
    cnf_x5t: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuthChangeRow(Base):
    """Change feed: every revocation or grant change appends a row; processes poll it by seq."""

    __tablename__ = "auth_changes"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


# --- the store API -------------------------------------------------------------------------------


class WebsiteRow(Base):
    __tablename__ = "websites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    default_group_id: Mapped[int] = mapped_column(Integer)


class StoreViewRow(Base):
    __tablename__ = "store_views"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id"))
    name: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class ProductRow(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    status: Mapped[int] = mapped_column(Integer, default=1)
    visibility: Mapped[int] = mapped_column(Integer, default=4)
    type_id: Mapped[str] = mapped_column(String(32), default="simple")
    attribute_set_id: Mapped[int] = mapped_column(Integer, default=4)
    weight: Mapped[Decimal | None] = mapped_column(Numeric(12, 4), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class StockItemRow(Base):
    __tablename__ = "stock_items"
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), unique=True)
    stock_id: Mapped[int] = mapped_column(Integer, default=1)
    qty: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    is_in_stock: Mapped[bool] = mapped_column(Boolean)


class OrderRow(Base):
    __tablename__ = "orders"
    entity_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    increment_id: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    customer_email: Mapped[str] = mapped_column(String(255))
    customer_firstname: Mapped[str] = mapped_column(String(255))
    customer_lastname: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    subtotal: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    grand_total: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    order_currency_code: Mapped[str] = mapped_column(String(3), default="USD")
    store_id: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class OrderItemRow(Base):
    __tablename__ = "order_items"
    __table_args__ = (UniqueConstraint("order_id", "sku"), Index("ix_order_items_order", "order_id"))
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.entity_id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    qty_ordered: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    row_total: Mapped[Decimal] = mapped_column(Numeric(12, 4))


# --- abuse resistance ----------------------------------------------------------------------------


class LoginFailureRow(Base):
    """Magento's oauth_token_request_log: failed token requests per (username, user type),
    whether or not the account exists, so the throttle reveals nothing about accounts."""

    __tablename__ = "login_failures"
    user_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_type: Mapped[int] = mapped_column(Integer, primary_key=True)
    failures_count: Mapped[int] = mapped_column(Integer, default=0)
    lock_expires_at: Mapped[int] = mapped_column(BigInteger, default=0)


class AccountLockRow(Base):
    """Account lockout (admin_user.lock_expires / customer_entity lock): per existing account."""

    __tablename__ = "account_locks"
    user_type: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    failures_num: Mapped[int] = mapped_column(Integer, default=0)
    lock_expires: Mapped[int] = mapped_column(BigInteger, default=0)


# --- audit log -----------------------------------------------------------------------------------

from sqlalchemy import func  # noqa: E402  (kept with its only user: this section is appended on its own)


class AuditHeadRow(Base):
    """The audit chain's head, one row (id 1): last seq and its hash. Every append updates it
    first, which serializes appenders across processes (SQLite write lock, PostgreSQL row lock)."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEventRow(Base):
    """One authentication event. `hash` covers every other column and `prev_hash` is the hash of
    seq - 1 (tillkey.audit), so an edited or deleted row breaks the chain."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_ms: Mapped[int] = mapped_column(BigInteger, index=True)  # unix time, milliseconds
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Format: 1 legacy SHA-256 (before migration 0011), 2 HMAC-SHA256 under the chain key.
    v: Mapped[int] = mapped_column(SmallInteger, server_default="1")


Index("ix_audit_events_event", AuditEventRow.event, AuditEventRow.seq)
Index("ix_audit_events_actor", AuditEventRow.actor_type, AuditEventRow.actor_id, AuditEventRow.seq)
Index("ix_audit_events_username", func.lower(AuditEventRow.username))


# --- admin two-factor auth (TOTP) ----------------------------------------------------------------


class AdminTfaRow(Base):
    """An admin's TOTP secret (RFC 6238), AES-GCM encrypted under the master secret. Inactive until
    a first code proves the authenticator app has it; `last_step` is the last accepted time step,
    so no code is accepted twice (RFC 6238 §5.2)."""

    __tablename__ = "admin_tfa"
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AdminRecoveryCodeRow(Base):
    """Single-use recovery codes: generated secrets, so a keyed HMAC digest is what is stored."""

    __tablename__ = "admin_recovery_codes"
    __table_args__ = (UniqueConstraint("admin_id", "digest"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CustomerTfaRow(Base):
    """A customer's TOTP secret: the same lifecycle and rules as AdminTfaRow (issue 16)."""

    __tablename__ = "customer_tfa"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class CustomerRecoveryCodeRow(Base):
    __tablename__ = "customer_recovery_codes"
    __table_args__ = (UniqueConstraint("customer_id", "digest"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# --- API keys, auth identities, sessions, password resets (Medusa-style) -------------------------


class ApiKeyRow(Base):
    """Medusa-style API keys. Secret keys (`sk_…`) are found by a keyed HMAC digest and never stored;
    publishable keys (`pk_…`) are public by design (sent from browsers), so their text is kept to be
    shown again. Times are unix milliseconds; `revoked_ms` may lie ahead (delayed revocation)."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # "secret" | "publishable"
    title: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    public_token: Mapped[str | None] = mapped_column(String(128), nullable=True)  # publishable only
    redacted: Mapped[str] = mapped_column(String(32))
    # Granted resource ids (unexpanded), newline-separated; secret keys only.
    resources: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)  # admin id
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_by: Mapped[int | None] = mapped_column(Integer, nullable=True)  # admin id
    deleted_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuthIdentityRow(Base):
    """Medusa's auth identity: a provider's login name (emailpass: the email as given) for an actor
    type, linked to an account once one exists. A registration that has no account yet keeps its
    password hash here until POST /store/customers moves it to the new customer."""

    __tablename__ = "auth_identities"
    __table_args__ = (UniqueConstraint("provider", "actor_type", "entity_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    actor_type: Mapped[str] = mapped_column(String(16))  # "user" | "customer"
    entity_id: Mapped[str] = mapped_column(String(255))
    entity_key: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class SessionRow(Base):
    """Server-side cookie sessions, found by a keyed HMAC digest of the cookie value. Generic: `kind`
    names the surface that created it (medusa; later the console)."""

    __tablename__ = "sessions"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    identity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The claims the session was made from (Medusa's auth_context), JSON; no secret in it.
    context: Mapped[str] = mapped_column(Text, default="{}")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class PasswordResetRow(Base):
    """Single-use password reset tokens, by keyed HMAC digest; a new one replaces older ones."""

    __tablename__ = "password_resets"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    used_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class EmailVerificationRow(Base):
    """Email verification codes (Medusa 2.21's /auth/verification), by keyed HMAC digest, single
    use. A spent row stays as the proof that its account verified that address (`email`)."""

    __tablename__ = "email_verifications"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(255))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    used_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PasskeyRow(Base):
    """A passkey (WebAuthn credential) of an admin or a customer: exactly one of the two owner
    columns is set, so deleting the account deletes its passkeys (issue 16)."""

    __tablename__ = "passkeys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url, at most 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger)
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    backup_state: Mapped[bool] = mapped_column(Boolean)
    transports: Mapped[str] = mapped_column(String(255))  # comma-separated
    aaguid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebauthnChallengeRow(Base):
    """A ceremony's challenge: single use (the row is deleted when consumed), short-lived, and
    bound to who asked for it (`binding`: a keyed digest of the session, pending sign-in or browser
    the surface names), so a challenge handed to one session is worthless in another."""

    __tablename__ = "webauthn_challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)  # 0: passwordless, the account is not known yet
    binding: Mapped[str] = mapped_column(String(64))
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    user_verification: Mapped[bool] = mapped_column(Boolean)
    expires_ms: Mapped[int] = mapped_column(BigInteger)


Index("ix_password_resets_user", PasswordResetRow.user_type, PasswordResetRow.user_id)
Index("ix_email_verifications_user", EmailVerificationRow.user_type, EmailVerificationRow.user_id)
Index("ix_passkeys_admin", PasskeyRow.admin_id)
Index("ix_passkeys_customer", PasskeyRow.customer_id)
Index("ix_webauthn_challenges_expires", WebauthnChallengeRow.expires_ms)
Index("ix_sessions_user", SessionRow.user_type, SessionRow.user_id, SessionRow.kind)
Index("ix_auth_identities_user", AuthIdentityRow.user_type, AuthIdentityRow.user_id)


# --- integrations and OAuth 1.0a (magento.md §7) -------------------------------------------------


class IntegrationRow(Base):
    """An integration and its OAuth 1.0a consumer (Magento's integration + oauth_consumer).

    The consumer key is a public identifier and is stored as is; the consumer secret is AES-GCM
    encrypted, because verifying an HMAC signature needs it back."""

    __tablename__ = "integrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    endpoint_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    identity_link_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    consumer_key: Mapped[str] = mapped_column(String(32), unique=True)
    consumer_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # RFC 8705: the x5t#S256 of the client certificate every call must come with (None: any).
    cert_x5t: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class IntegrationResourceRow(Base):
    """An integration's grant, exactly like a role's (Magento_Backend::all grants everything)."""

    __tablename__ = "integration_resources"
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class IntegrationTokenRow(Base):
    """OAuth 1.0a tokens of an integration: `verifier` (handshake posted to the endpoint),
    `request` (after /oauth/token/request) and `access`. Tokens are found by keyed HMAC digest;
    their secrets are AES-GCM encrypted (HMAC verification needs them); the verifier is a digest."""

    __tablename__ = "integration_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    verifier_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class OauthNonceRow(Base):
    """Magento's oauth_nonce: a nonce is accepted once per consumer (the primary key says so)."""

    __tablename__ = "oauth_nonces"
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, index=True)


# --- OAuth 2 / OpenID Connect provider -----------------------------------------------------------


class OAuthClientRow(Base):
    """A registered OAuth 2 client. The secret is a generated one: only its keyed digest is kept."""

    __tablename__ = "oauth2_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    client_type: Mapped[str] = mapped_column(String(16))  # confidential | public
    secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uris: Mapped[str] = mapped_column(Text, default="")  # newline-separated, exact match
    grant_types: Mapped[str] = mapped_column(Text, default="")  # space-separated
    scopes: Mapped[str] = mapped_column(Text, default="")  # space-separated
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)  # no consent page
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # May introspect tokens issued to other clients and to users (RFC 7662 §2.1).
    resource_server: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Every access token of this client must be DPoP-bound (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Issue 20: how the client authenticates at the token endpoint (None: by its kind, a secret or
    # none); for private_key_jwt its keys, inline (JWKS JSON) or at a URI fetched safely.
    token_endpoint_auth_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Mutual TLS (RFC 8705 §3): its access tokens are bound to the certificate it presented.
    tls_client_certificate_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # tls_client_auth (RFC 8705 §2.1.2): subject_dn | san_dns | san_uri | san_email, and its value.
    tls_client_auth_field: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tls_client_auth_value: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class OAuthCodeRow(Base):
    """Authorization codes (RFC 6749 §4.1.2): single use, 60 s, found by keyed digest. After use the
    row stays until it expires, naming the refresh family and access token it produced, so that a
    replayed code can revoke them (RFC 6749 §4.1.2, RFC 9700 §4.2.4 wording)."""

    __tablename__ = "oauth2_codes"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    amr: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # RFC 9449 §10: the DPoP key the authorization request named; the exchange must prove it.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshFamilyRow(Base):
    """One login's chain of refresh tokens. Rotation updates this row and revocation sets
    `revoked_at` on it, both as conditional UPDATEs: the row lock orders a rotation and a revocation
    racing each other, so a token minted in the race cannot outlive its revoked family."""

    __tablename__ = "refresh_families"
    family_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    rotated_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RefreshTokenRow(Base):
    """Refresh tokens (opaque `tk_rt_`, keyed digest), rotated on every use and grouped in families.
    A spent one (used_at set) presented again revokes its whole family (RFC 9700 §4.14.2).
    `access_jti` is the access token issued beside it, revoked with the family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family", "family_id"),
        Index("ix_refresh_tokens_user", "user_type", "user_id", "client_id"),
    )
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # NULL: Magento cookie flow
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    amr: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # idle limit
    family_expires_at: Mapped[int] = mapped_column(BigInteger)  # absolute limit
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # DPoP: a public client's refresh token is bound to the key of the proof it was issued with.
    cnf_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


# --- federation: external identity providers (issue 14) -----------------------------------------


class IdentityProviderRow(Base):
    """An external OpenID provider admins or customers sign in with. The client secret is stored
    encrypted with the master secret (crypto/secrets.py), never in clear; lists are JSON text."""

    __tablename__ = "identity_providers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    protocol: Mapped[str] = mapped_column(String(16))  # "oidc"
    issuer: Mapped[str] = mapped_column(String(1024))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    actor: Mapped[str] = mapped_column(String(16))  # "admin" | "customer"
    scope: Mapped[str] = mapped_column(String(512))
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    groups_claim: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # {"map": [["group", "role name"], ...], "options": {...}} (store/idps.py; older rows: {"group": "role"})
    role_map: Mapped[str] = mapped_column(Text, default="{}")
    default_role: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provisioning: Mapped[str] = mapped_column(String(16))  # "jit" | "existing"
    allowed_domains: Mapped[str] = mapped_column(Text, default="[]")
    trust_email_domains: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_from_amr: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class DirectorySyncRow(Base):
    """An LDAP provider's sync: the lease that lets one process run it at a time (won by a
    conditional update, on SQLite and PostgreSQL alike) and the last run's outcome, for health."""

    __tablename__ = "directory_syncs"
    provider_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("identity_providers.id", ondelete="CASCADE"), primary_key=True
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_ok_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    members: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deactivated: Mapped[int] = mapped_column(Integer, default=0)


class DirectoryDeactivationRow(Base):
    """An account a directory sync deactivated (its member left): the sync reactivates only these
    when they come back, never an account an operator deactivated."""

    __tablename__ = "directory_deactivations"
    provider_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("identity_providers.id", ondelete="CASCADE"), primary_key=True
    )
    user_type: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deactivated_ms: Mapped[int] = mapped_column(BigInteger)


class ExternalIdentityRow(Base):
    """(provider, subject) → account: the only key an external sign-in is matched by (never the
    email alone). `auth_identity_id`: the Medusa auth identity a customer registration rides on."""

    __tablename__ = "external_identities"
    __table_args__ = (
        UniqueConstraint("provider_id", "subject"),
        Index("ix_external_identities_account", "user_type", "user_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    user_type: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    auth_identity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    last_login_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class IdpFlowRow(Base):
    """One authorization request in flight, keyed by the digest of its `state`; spent (deleted) by
    its callback, so a state works once. The PKCE verifier is stored encrypted."""

    __tablename__ = "idp_flows"
    state_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(128))
    verifier_enc: Mapped[bytes] = mapped_column(LargeBinary)
    context: Mapped[str] = mapped_column(Text, default="{}")  # where the flow ends (console: next page)
    expires_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class SamlProviderRow(Base):
    """A SAML provider's side data (issue 15): the IdP's metadata as last loaded, and the SP's key
    (encrypted with the master secret) and certificate; after a rotation the previous pair stays,
    published and able to decrypt, until the next rotation."""

    __tablename__ = "saml_providers"
    provider_id: Mapped[int] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"), primary_key=True)
    idp_metadata: Mapped[str] = mapped_column(Text)
    sp_cert: Mapped[str] = mapped_column(Text)
    sp_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    previous_cert: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rotated_ms: Mapped[int] = mapped_column(BigInteger)


class ReplayCacheRow(Base):
    """Single-use values seen (a digest of kind and value: DPoP proof jtis, client assertion jtis),
    kept until they could no longer be accepted anyway: shared by every process."""

    __tablename__ = "replay_cache"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_ms: Mapped[int] = mapped_column(BigInteger)


Index("ix_replay_cache_expires", ReplayCacheRow.expires_ms)


class OAuthPushedRequestRow(Base):
    """A pushed authorization request (RFC 9126), by the keyed digest of its request_uri: the
    client it belongs to, its parameters (JSON), single use, short-lived."""

    __tablename__ = "oauth2_pushed_requests"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
