"""The SAML SP's key pairs: made here (RSA 3072, a self-signed certificate: SAML metadata trusts
the key, not a CA), kept encrypted in the database, and written for xmlsec1 (which reads keys
from files only) into a private directory of this process."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERT_YEARS = 10  # the certificate's dates are not checked by SAML peers; rotation is by hand


def new_pair(common_name: str, now: float) -> tuple[str, bytes]:
    """A certificate (PEM text) and its private key (PEM bytes)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    start = datetime.fromtimestamp(now, tz=UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * CERT_YEARS))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem


def fingerprint(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


class KeyFiles:
    """Key and certificate files for xmlsec1, one pair per certificate, readable by this user only;
    the directory goes when the process ends."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="tillkey-saml-"))  # mode 0700
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def pair(self, cert_pem: str, key_pem: bytes) -> tuple[str, str]:
        stem = hashlib.sha256(cert_pem.encode()).hexdigest()[:32]
        key_path, cert_path = self._directory() / f"{stem}.key", self._directory() / f"{stem}.crt"
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key_pem)
            cert_path.write_text(cert_pem)
        return str(key_path), str(cert_path)
