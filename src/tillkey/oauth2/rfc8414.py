"""RFC 8414 authorization server metadata, built from the settings; OpenID Connect Discovery
(oidc/discovery.py) extends this same document, so the two cannot disagree."""

from __future__ import annotations

from typing import Any

from tillkey.credentials.dpop import ALGORITHMS as DPOP_ALGORITHMS
from tillkey.oauth2.client_assertion import ALGORITHMS
from tillkey.oauth2.clients import GRANT_TYPES
from tillkey.oauth2.rfc7636 import S256
from tillkey.oauth2.scopes import OIDC_SCOPES
from tillkey.settings import Settings

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# Endpoints that only authenticate callers who can keep a secret (or a private key).
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
# private_key_jwt (RFC 7523): asymmetric only, never none or HS*.
AUTH_SIGNING_ALGS = list(ALGORITHMS)
# RFC 8705 §2: mutual TLS, through a trusted proxy that passes the client certificate.
MTLS_AUTH_METHODS = ["tls_client_auth", "self_signed_tls_client_auth"]


def metadata(settings: Settings) -> dict[str, Any]:
    base = settings.issuer
    # Mutual TLS needs a TLS proxy Tillkey trusts (credentials/mtls.py): advertised only with one.
    mtls = MTLS_AUTH_METHODS if settings.trusted_proxies.strip() else []
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "scopes_supported": sorted(OIDC_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": AUTH_METHODS + mtls,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS + mtls,
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS + mtls,
        "token_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "code_challenge_methods_supported": [S256],
        # RFC 9126: pushed authorization requests (required per client, not by the server).
        "pushed_authorization_request_endpoint": f"{base}/oauth2/par",
        "require_pushed_authorization_requests": False,
        # RFC 9207: the authorization response names its issuer (mix-up defence).
        "authorization_response_iss_parameter_supported": True,
        # RFC 9449 §5.1: DPoP proofs accepted at the token endpoint and with bound tokens.
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        # RFC 8705 §3.3: certificate-bound access tokens (behind a trusted TLS proxy).
        "tls_client_certificate_bound_access_tokens": bool(mtls),
        **_mtls_aliases(settings),
    }


# RFC 8705 §5: the endpoints a client authenticating with its certificate (or wanting a
# certificate-bound token) calls, at the TLS proxy that asks for certificates.
MTLS_ALIASED = {
    "token_endpoint": "/oauth2/token",
    "revocation_endpoint": "/oauth2/revoke",
    "introspection_endpoint": "/oauth2/introspect",
    "userinfo_endpoint": "/oauth2/userinfo",
    "pushed_authorization_request_endpoint": "/oauth2/par",
}


def _mtls_aliases(settings: Settings) -> dict[str, dict[str, str]]:
    base = settings.mtls_base_url
    if not base:
        return {}
    return {"mtls_endpoint_aliases": {name: base + path for name, path in MTLS_ALIASED.items()}}
