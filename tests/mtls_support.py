"""Test certificates for mutual TLS (RFC 8705): a CA and the client certificates it signs."""

from __future__ import annotations

import datetime
import ipaddress
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

_START = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_END = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tillkey tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


class Authority:
    def __init__(self, cn: str = "Tillkey test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_START)
            .not_valid_after(_END)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, cn: str, *, dns: str | None = None, server: bool = False, ip: str | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_START)
            .not_valid_after(_END)
        )
        sans: list[x509.GeneralName] = [] if dns is None else [x509.DNSName(dns)]
        if ip is not None:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def escaped(cert: x509.Certificate) -> str:
    """As nginx's `$ssl_client_escaped_cert` sends it."""
    return quote(pem(cert), safe="")


def self_signed(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for self_signed_tls_client_auth (RFC 8705 §2.2): no CA, its own issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_START)
        .not_valid_after(_END)
        .sign(key, hashes.SHA256())
    )
    return key, cert
