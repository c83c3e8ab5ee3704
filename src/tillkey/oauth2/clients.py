"""OAuth 2 client registration (by an admin: CLI or admin API) and client authentication
(RFC 6749 §2.3: client_secret_basic, client_secret_post; `none` for public clients;
private_key_jwt, RFC 7523 §2.2, with the client's registered JWKS: client_assertion.py; mutual
TLS, RFC 8705 §2: tls_client_auth by a registered certificate name, self_signed_tls_client_auth by
a registered key, the certificate passed by a trusted proxy: credentials/mtls.py).

Secrets are generated (`tk_cs_` + 256 bits), shown once, and stored as a keyed HMAC digest: a
lookup costs microseconds and the database holds nothing replayable (DESIGN: secrets at rest).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from tillkey import audit
from tillkey.access import delegation
from tillkey.access.tree import ResourceTree
from tillkey.clock import Clock
from tillkey.contracts import Changes, ClientStore, RefreshStore, Revocations
from tillkey.credentials import mtls
from tillkey.credentials.dpop import ReplayCache
from tillkey.credentials.mtls import ClientCertificate
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import InvalidRequest, NotFound
from tillkey.oauth2 import client_assertion
from tillkey.oauth2 import scopes as scope_rules
from tillkey.oauth2.client_assertion import ClientKeys, Rejected, UnknownKey
from tillkey.oauth2.rfc6749.errors import InvalidClient
from tillkey.principal import Principal, UserType
from tillkey.settings import Settings
from tillkey.store.oauth2 import Client

SECRET_PREFIX = "tk_cs_"  # noqa: S105 (a prefix, not a secret)
CLIENT_ID_PREFIX = "tkc_"
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
CLIENT_TYPES = ("confidential", "public")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
# Compared against when the client is unknown, so an unknown client costs the same work.
_DUMMY_DIGEST = "0" * 64
CHANGE_KIND = "oauth_clients"
PRIVATE_KEY_JWT = "private_key_jwt"
TLS_CLIENT_AUTH = "tls_client_auth"
SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"
MTLS_METHODS = (TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH)
AUTH_METHODS = ("client_secret_basic", "none", PRIVATE_KEY_JWT, *MTLS_METHODS)
# The client authentication parameters every endpoint that authenticates clients accepts.
AUTH_PARAMS = frozenset({"client_id", "client_secret", "client_assertion_type", "client_assertion"})


@dataclass(frozen=True, slots=True)
class Registered:
    client: Client
    secret: str | None  # shown once; None for public clients


def check_redirect_uri(uri: str) -> str:
    """Absolute, no fragment (RFC 6749 §3.1.2); https, or http only on loopback (RFC 8252 §7.3), or
    a private-use scheme with a dot for native apps (RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or len(uri) > 1024 or any(c.isspace() for c in uri):
        raise InvalidRequest(f"Redirect URI {uri[:100]!r} must be absolute, without a fragment.")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return uri
    if parts.scheme not in ("http", "https") and "." in parts.scheme:
        return uri
    raise InvalidRequest(f"Redirect URI {uri[:100]!r} must use https (http only on loopback, or a private-use scheme).")


def binding_of(client: Client) -> str:
    """How the client's access tokens are bound: "dpop", "mtls", both ("dpop+mtls") or "bearer"."""
    kinds = [
        k
        for k, on in (
            ("dpop", client.dpop_bound_access_tokens),
            ("mtls", client.tls_client_certificate_bound_access_tokens),
        )
        if on
    ]
    return "+".join(kinds) or "bearer"


class Clients:
    """Built once (wiring.py); `tk.services.clients`. `live`: a live client from memory by
    client_id (runtime.py, kept current by the change feed)."""

    def __init__(
        self,
        *,
        store: ClientStore,
        refreshes: RefreshStore,
        changes: Changes,
        revoker: Revocations,
        tree: ResourceTree,
        master: MasterSecret,
        clock: Clock,
        live: Callable[[str], Client | None],
        settings: Settings,
        keys: ClientKeys,
        replay: ReplayCache,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.replay = replay
        self.store = store
        self.refreshes = refreshes
        self.changes = changes
        self.revoker = revoker
        self.tree = tree
        self.master = master
        self.clock = clock
        self.live = live

    async def create(
        self,
        acting: Principal,
        *,
        name: str,
        client_type: str,
        redirect_uris: list[str],
        grant_types: list[str],
        scopes: list[str],
        first_party: bool = False,
        require_pkce: bool = True,
        resource_server: bool = False,
        dpop_bound_access_tokens: bool = False,
        auth_method: str | None = None,
        jwks: str | None = None,
        jwks_uri: str | None = None,
        require_pushed_authorization_requests: bool = False,
        tls_client_certificate_bound_access_tokens: bool = False,
        tls_client_auth: tuple[str, str] | None = None,
    ) -> Registered:
        """`tls_client_auth`: (subject_dn | san_dns | san_uri | san_email, value), the certificate
        name a tls_client_auth client is known by (RFC 8705 §2.1.2)."""
        name = name.strip()
        if not name or len(name) > 255:
            raise InvalidRequest("The client name must be 1 to 255 characters.")
        if client_type not in CLIENT_TYPES:
            raise InvalidRequest("The client type must be confidential or public.")
        grants = tuple(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
        bad = [g for g in grants if g not in GRANT_TYPES]
        if bad:
            raise InvalidRequest(f"Unsupported grant type(s): {', '.join(bad)[:200]}. Use {', '.join(GRANT_TYPES)}.")
        if client_type == "public" and "client_credentials" in grants:
            raise InvalidRequest("A public client cannot use the client_credentials grant.")
        if client_type == "public" and tls_client_certificate_bound_access_tokens:
            # A public client's refresh tokens would stay unbound (any certificate could spend
            # them): public clients bind their tokens with DPoP, which binds refresh tokens too.
            raise InvalidRequest("Certificate-bound tokens are for confidential clients; public clients use DPoP.")
        if client_type == "public" and resource_server:
            raise InvalidRequest("A resource server must be a confidential client (it authenticates to introspect).")
        uris = tuple(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris))
        if "authorization_code" in grants and not uris:
            raise InvalidRequest("The authorization_code grant needs at least one redirect URI.")
        stored_method, jwks, jwks_uri = self._auth_method(client_type, auth_method, jwks, jwks_uri)
        if (stored_method == TLS_CLIENT_AUTH) != (tls_client_auth is not None):
            raise InvalidRequest(
                "tls_client_auth needs exactly one certificate name (subject DN or a SAN), and only it."
            )
        if tls_client_auth is not None:
            try:
                tls_client_auth = (tls_client_auth[0], mtls.normalized_name(*tls_client_auth))
            except ValueError as exc:
                raise InvalidRequest(f"{str(exc)[:1].upper()}{str(exc)[1:300]}.") from None
        wanted = scope_rules.parse(" ".join(scopes))
        unknown = scope_rules.unknown(self.tree, wanted)
        if unknown:
            raise InvalidRequest(
                f"Unknown scope(s): {', '.join(unknown)[:200]}. Scopes are resource ids or OIDC scopes."
            )
        # The client's tokens hold what its scopes name (client credentials: nothing else), so
        # the registering caller must hold every resource scope (self / admin_self name the token's
        # own user and are nobody's to give; OIDC scopes grant no resource).
        delegation.require_ids_within(
            acting, self.tree, scope_rules.resource_scopes(wanted), what="oauth client scopes"
        )
        with_secret = client_type == "confidential" and stored_method is None
        secret = SECRET_PREFIX + secrets.token_urlsafe(32) if with_secret else None
        now = self.clock.now_int()
        draft = Client(
            0,
            CLIENT_ID_PREFIX + secrets.token_urlsafe(12),
            name,
            client_type,
            None if secret is None else self.master.digest(secret),
            uris,
            grants,
            wanted,
            first_party,
            require_pkce or client_type == "public",
            True,
            now,
            resource_server,
            dpop_bound_access_tokens,
            stored_method,
            jwks,
            jwks_uri,
            require_pushed_authorization_requests,
            tls_client_certificate_bound_access_tokens,
            None if tls_client_auth is None else tls_client_auth[0],
            None if tls_client_auth is None else tls_client_auth[1],
        )
        async with self.changes() as w:
            client = await self.store.add(w, draft)
            w.changed(CHANGE_KIND, ref=client.client_id)
            w.audit(
                audit.OAUTH2_CLIENT_CREATED,
                **delegation.audit_actor(acting),
                details={
                    "client_id": client.client_id,
                    "name": name,
                    "type": client_type,
                    "grants": list(grants),
                    "scopes": list(wanted),
                    "resource_server": resource_server,
                    "binding": binding_of(draft),
                    "auth_method": draft.auth_method,
                    **(
                        {} if tls_client_auth is None else {f"tls_client_auth_{tls_client_auth[0]}": tls_client_auth[1]}
                    ),
                    "require_par": require_pushed_authorization_requests,
                },
            )
        return Registered(client, secret)

    def _auth_method(
        self, client_type: str, method: str | None, jwks: str | None, jwks_uri: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """(the method to store: None for a secret or none, by the client's kind; the JWKS, compact;
        the jwks_uri), or InvalidRequest."""
        if method is not None and method not in AUTH_METHODS:
            raise InvalidRequest(f"The auth method must be one of {', '.join(AUTH_METHODS)}.")
        if method in MTLS_METHODS and client_type != "confidential":
            raise InvalidRequest(f"{method} is for confidential clients.")
        if method == TLS_CLIENT_AUTH:
            if jwks is not None or jwks_uri is not None:
                raise InvalidRequest("tls_client_auth registers a certificate name, not keys.")
            return TLS_CLIENT_AUTH, None, None
        if method == SELF_SIGNED_TLS_CLIENT_AUTH and (jwks is None or jwks_uri is not None):
            raise InvalidRequest("self_signed_tls_client_auth needs the client's keys as an inline JWKS.")
        if method not in (PRIVATE_KEY_JWT, SELF_SIGNED_TLS_CLIENT_AUTH):
            if jwks is not None or jwks_uri is not None:
                raise InvalidRequest("A JWKS is registered only with private_key_jwt or self_signed_tls_client_auth.")
            if method is not None and method != ("none" if client_type == "public" else "client_secret_basic"):
                raise InvalidRequest("A confidential client uses a secret or private_key_jwt; a public one, none.")
            return None, None, None
        if client_type != "confidential":
            raise InvalidRequest(f"{method} is for confidential clients.")
        if (jwks is None) == (jwks_uri is None):
            raise InvalidRequest("private_key_jwt needs the client's keys: a JWKS or a jwks_uri (one of them).")
        try:
            if jwks is not None:
                return method, json.dumps({"keys": client_assertion.parse_jwks(jwks)}), None
            assert jwks_uri is not None
            allow = self.settings.client_jwks_allow_private_endpoints
            return PRIVATE_KEY_JWT, None, client_assertion.check_jwks_uri(jwks_uri, allow_private=allow)
        except Rejected as exc:
            raise InvalidRequest(f"{str(exc)[:1].upper()}{str(exc)[1:300]}.".replace("..", ".")) from None

    async def registered(self) -> list[Client]:
        return await self.store.all()

    async def delete(self, client_id: str, *, acting: Principal | None = None) -> Client:
        """Remove the client; its refresh families are revoked and its tokens stop working everywhere
        within the sync interval (the in-memory client list drops it: access/grants.py)."""
        async with self.changes() as w:
            client = await self.store.delete(w, client_id)
            if client is None:
                raise NotFound("There is no OAuth client with this client_id.")
            families, denied = await self.refreshes.revoke_families_of_client(w, client_id)
            w.changed(CHANGE_KIND, ref=client_id)
            w.audit(
                audit.OAUTH2_CLIENT_DELETED,
                **delegation.audit_actor(acting),
                details={"client_id": client_id, "families": families},
            )
        await self.revoker.revoke_ids(denied)
        await self.revoker.revoke_for(UserType.OAUTH_CLIENT, client.id)
        return replace(client, active=False)

    async def authenticate(
        self, params: dict[str, str], authorization: str | None, certificate: ClientCertificate | None = None
    ) -> Client:
        """RFC 6749 §2.3.1 (Basic, or client_id + client_secret in the body; never both) and §2.1
        public clients (client_id alone); RFC 8705 §2 (client_id alone, and the `certificate` a
        trusted proxy passed). Every failure is the same invalid_client; the Basic challenge goes
        only to clients that tried the Authorization header (§5.2)."""
        try:
            return await self._authenticate(params, authorization, certificate)
        except InvalidClient as exc:
            if authorization is None:
                exc.headers.pop("WWW-Authenticate", None)
            raise

    async def _authenticate(
        self, params: dict[str, str], authorization: str | None, certificate: ClientCertificate | None
    ) -> Client:
        client_id, secret, method = _credentials(params, authorization)
        # Live clients are in memory (runtime.py, kept current by the change feed); one created a
        # moment ago by another process, or a deactivated one, is looked up in the database.
        client = self.live(client_id)
        if client is None:
            client = await self.store.by_client_id(client_id)
        if method == PRIVATE_KEY_JWT:
            if client is None or not client.active or client.auth_method != PRIVATE_KEY_JWT:
                raise InvalidClient(detail="client assertion from a client not registered for private_key_jwt")
            assert secret is not None
            try:
                await self._check_assertion(client, secret)
            except Rejected as exc:
                raise InvalidClient(detail=f"private_key_jwt: {str(exc)[:300]}") from None
            return client
        if client is not None and client.auth_method == PRIVATE_KEY_JWT:
            raise InvalidClient(detail=f"private_key_jwt client sent {method}")
        if client is not None and client.auth_method in MTLS_METHODS:
            if method != "none" or not client.active:
                raise InvalidClient(detail=f"{client.auth_method} client sent {method}")
            if certificate is None:
                raise InvalidClient(detail=f"{client.auth_method} without a client certificate")
            if not _certificate_fits(client, certificate):
                raise InvalidClient(detail=f"{client.auth_method}: the certificate does not fit the registration")
            return client
        stored = client.secret_digest if client is not None and client.secret_digest else _DUMMY_DIGEST
        presented = self.master.digest(secret) if secret is not None else _DUMMY_DIGEST[:-1] + "1"
        matches = hmac.compare_digest(stored, presented)
        if client is None or not client.active:
            raise InvalidClient(detail="unknown client")
        if client.confidential:
            if method == "none" or not matches:
                raise InvalidClient(detail=f"bad secret ({method})")
        elif method != "none":
            raise InvalidClient(detail="public clients have no secret")
        return client

    async def _check_assertion(self, client: Client, assertion: str) -> None:
        """RFC 7523 §3 with the client's keys (client_assertion.py); the jti is spent here."""
        issuer = self.settings.issuer
        audiences = (f"{issuer}/oauth2/token", issuer, f"{issuer}/oauth2/par")
        now, lifetime = self.clock.now_int(), self.settings.client_assertion_max_lifetime
        if client.jwks is not None:
            keys = client_assertion.parse_jwks(client.jwks)
        elif client.jwks_uri is not None:
            keys = await self.keys.keys(client.jwks_uri)
        else:
            raise Rejected("no keys registered")
        try:
            verified = client_assertion.verify(
                assertion, keys, client_id=client.client_id, audiences=audiences, now=now, max_lifetime=lifetime
            )
        except UnknownKey:
            if client.jwks_uri is None:
                raise
            # The client may have rotated its keys: fetch them again (at most so often), once.
            keys = await self.keys.keys(client.jwks_uri, fresh=True)
            verified = client_assertion.verify(
                assertion, keys, client_id=client.client_id, audiences=audiences, now=now, max_lifetime=lifetime
            )
        # The one replay cache of single-use values (store/replay.py), shared with DPoP proofs.
        if not await self.replay.first_sight(
            f"client-assertion\x00{client.client_id}\x00{verified.jti}", verified.expires_at
        ):
            raise Rejected("jti replayed")


def _certificate_fits(client: Client, certificate: ClientCertificate) -> bool:
    """RFC 8705 §2.1: a certificate the proxy validated, with the registered name; §2.2: one whose
    public key the client registered (self-signed: no chain to check)."""
    if client.auth_method == TLS_CLIENT_AUTH:
        field, value = client.tls_client_auth_field, client.tls_client_auth_value
        if not certificate.verified or field is None or value is None:
            return False
        return mtls.names_match(certificate.certificate, field, value)
    if client.jwks is None:
        return False
    return mtls.key_registered(certificate.certificate, client_assertion.parse_jwks(client.jwks))


def _credentials(params: dict[str, str], authorization: str | None) -> tuple[str, str | None, str]:
    """(client_id, secret or client assertion or None, method)."""
    body_id, body_secret = params.get("client_id"), params.get("client_secret")
    assertion_type, assertion = params.get("client_assertion_type"), params.get("client_assertion")
    if assertion_type is not None or assertion is not None:
        if authorization is not None or body_secret is not None:
            raise InvalidRequest("Use one client authentication method, not two.")
        if assertion_type != client_assertion.ASSERTION_TYPE or assertion is None:
            raise InvalidClient(detail="unsupported or incomplete client assertion")
        try:
            claimed = client_assertion.unverified_subject(assertion)
        except Rejected as exc:
            raise InvalidClient(detail=f"private_key_jwt: {exc}") from None
        if body_id is not None and body_id != claimed:
            raise InvalidClient(detail="client_id differs from the assertion's sub")
        return claimed, assertion, PRIVATE_KEY_JWT
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient(detail="unsupported authorization scheme")
        if body_secret is not None:
            raise InvalidRequest("Use one client authentication method, not two.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClient(detail="malformed basic credentials") from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise InvalidClient(detail="malformed basic credentials")
        # §2.3.1: both are form-urlencoded before Basic encoding.
        client_id, secret = unquote(raw_id.replace("+", " ")), unquote(raw_secret.replace("+", " "))
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("The client_id in the body differs from the authenticated client.")
        return client_id, secret, "client_secret_basic"
    if body_id is None:
        raise InvalidClient(detail="no client authentication")
    if body_secret is not None:
        return body_id, body_secret, "client_secret_post"
    return body_id, None, "none"
