"""The client's TLS certificate, as a trusted proxy saw it (RFC 8705).

Tillkey does not see the peer certificate when it terminates TLS itself (uvicorn does not put it in
the ASGI scope), so mutual TLS needs a proxy: nginx verifies the handshake and passes the certificate
URL-encoded in a header (`proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`, the name is
`TILLKEY_CLIENT_CERT_HEADER`). The header is believed ONLY from a direct peer in
`TILLKEY_TRUSTED_PROXIES`: `ClientCertHeader` runs before anything else (before X-Forwarded-For
rewrites the client's address), keeps the header's value in the scope when the peer is trusted and
drops it otherwise, so a header sent around the proxy is never read.

With it nginx passes `$ssl_client_verify` (`TILLKEY_CLIENT_VERIFY_HEADER`, default
X-SSL-Client-Verify): "SUCCESS" when the chain was validated against the CA it was given
(`ssl_client_certificate`); tls_client_auth needs that, self_signed_tls_client_auth does not
(`ssl_verify_client optional_no_ca`). A malformed header counts as no certificate: a request
needing one is refused as if it had none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.types import ASGIApp, Receive, Scope, Send

# The scope keys holding the headers' raw values when a trusted proxy sent them.
_SCOPE_KEY = "tillkey.client_cert"
_VERIFY_KEY = "tillkey.client_verify"
# The scope key caching the parsed certificate (or False: absent or malformed).
_PARSED = "tillkey.client_cert_parsed"
_MAX_PEM = 32 * 1024


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    certificate: x509.Certificate
    # RFC 8705 §3.1: base64url (no padding) SHA-256 of the DER certificate.
    thumbprint: str
    # The proxy validated its chain to a CA it trusts (nginx `$ssl_client_verify` = SUCCESS, in
    # TILLKEY_CLIENT_VERIFY_HEADER): needed by tls_client_auth, not by self-signed certificates.
    verified: bool = False


def thumbprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_header(value: str) -> ClientCertificate | None:
    """nginx's `$ssl_client_escaped_cert` (URL-encoded PEM) → the certificate; None if empty or malformed."""
    if not value or len(value) > 3 * _MAX_PEM:
        return None
    pem = unquote(value).strip()
    if not pem.startswith("-----BEGIN CERTIFICATE-----") or len(pem) > _MAX_PEM:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return ClientCertificate(cert, thumbprint(cert))


def certificate_file(text: str) -> str:
    """An operator's PEM file holding one certificate → its x5t#S256 (ValueError if it is not one:
    a key, a CSR, two certificates, DER, garbage). What an integration is bound to."""
    pem = text.strip()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if not pem.startswith(begin) or not pem.endswith(end) or pem.count(begin) != 1 or len(pem) > _MAX_PEM:
        raise ValueError("not a PEM certificate (one -----BEGIN CERTIFICATE----- block)")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("not a PEM certificate (the block does not parse)") from None
    return thumbprint(cert)


def presented(scope: Scope) -> ClientCertificate | None:
    """The certificate a trusted proxy says the client presented on this request, if any."""
    cached = scope.get(_PARSED)
    if cached is not None:
        return cached or None
    raw = scope.get(_SCOPE_KEY)
    found = parse_header(raw) if isinstance(raw, str) else None
    if found is not None and scope.get(_VERIFY_KEY) == "SUCCESS":
        found = ClientCertificate(found.certificate, found.thumbprint, verified=True)
    scope[_PARSED] = found if found is not None else False
    return found


class TrustedPeers:
    """`TILLKEY_TRUSTED_PROXIES`: IPs or CIDRs, comma-separated (`*`: any peer, for tests only)."""

    def __init__(self, spec: str) -> None:
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        self._any = "*" in parts
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        for part in parts:
            if part == "*":
                continue
            try:
                self._networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                self._names.add(part)  # a unix socket path or a host name, compared as is

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        if self._any or host in self._names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._networks)


class ClientCertHeader:
    """Pure ASGI: the certificate header is kept (in the scope) only from a trusted direct peer."""

    def __init__(self, app: ASGIApp, header: str, trusted: str, verify_header: str = "X-SSL-Client-Verify") -> None:
        self.app = app
        self._header = header.lower().encode("latin-1")
        self._verify = verify_header.lower().encode("latin-1")
        self._trusted = TrustedPeers(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            values = [v for k, v in headers if k == self._header]
            verdicts = [v for k, v in headers if k == self._verify]
            if values or verdicts:
                # Never visible further in: read from the scope keys, and only when believed.
                scope["headers"] = [(k, v) for k, v in headers if k not in (self._header, self._verify)]
                client: Any = scope.get("client")
                peer = client[0] if client else None
                if len(values) == 1 and len(verdicts) <= 1 and peer in self._trusted:
                    scope[_SCOPE_KEY] = values[0].decode("latin-1")
                    if verdicts:
                        scope[_VERIFY_KEY] = verdicts[0].decode("latin-1")
        await self.app(scope, receive, send)


# --- client authentication (RFC 8705 §2) ---------------------------------------------------------

# tls_client_auth's registered names (§2.1.2), by the metadata suffix after `tls_client_auth_`.
NAME_FIELDS = ("subject_dn", "san_dns", "san_uri", "san_email")
_SAN_TYPES: dict[str, Any] = {
    "san_dns": x509.DNSName,
    "san_uri": x509.UniformResourceIdentifier,
    "san_email": x509.RFC822Name,
}


def normalized_name(field: str, value: str) -> str:
    """The registered name as compared (ValueError if unusable): a subject DN in RFC 4514 form."""
    value = value.strip()
    if field not in NAME_FIELDS or not value or len(value) > 1024:
        raise ValueError(f"tls_client_auth needs one of {', '.join(NAME_FIELDS)}, 1 to 1024 characters")
    if field == "subject_dn":
        try:
            return x509.Name.from_rfc4514_string(value).rfc4514_string()
        except ValueError:
            raise ValueError("the subject DN is not an RFC 4514 string") from None
    return value.lower() if field in ("san_dns", "san_email") else value


def names_match(cert: x509.Certificate, field: str, value: str) -> bool:
    """§2.1.2: the certificate carries the registered subject DN, or the registered SAN."""
    if field == "subject_dn":
        return hmac.compare_digest(cert.subject.rfc4514_string().encode(), value.encode())
    kind = _SAN_TYPES.get(field)
    if kind is None:
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = [str(n) for n in sans.get_values_for_type(kind)]
    if field != "san_uri":
        names = [n.lower() for n in names]
    return value in names


def key_registered(cert: x509.Certificate, jwks: list[dict[str, Any]]) -> bool:
    """§2.2 self_signed_tls_client_auth: the certificate's public key is one of the client's keys."""
    mine = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for jwk in jwks:
        try:
            key = jwt.PyJWK(jwk).key
            theirs = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        except (jwt.PyJWKError, jwt.InvalidKeyError, AttributeError, TypeError, ValueError):
            continue
        if hmac.compare_digest(mine, theirs):
            return True
    return False
