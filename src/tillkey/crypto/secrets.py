"""Random tokens, keyed digests and at-rest encryption. Glue over `secrets`, `hmac` and `cryptography`."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def random_token(nbytes: int = 32) -> str:
    """URL-safe random string; 32 bytes = 256 bits of entropy."""
    return secrets.token_urlsafe(nbytes)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """hmac.compare_digest on bytes: on str it raises TypeError for non-ASCII text, and a client
    can send any text (a CSRF field of "é" must be a refusal, not a 500)."""
    if isinstance(a, str):
        a = a.encode("utf-8", "surrogatepass")
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(a, b)


def _create_once(path: Path, content: str) -> None:
    """Create `path` holding `content`, whole, unless it exists. Processes racing on a first start
    each write a private temporary file beside it and hard-link it into place: the link is atomic
    and refuses an existing name, so exactly one wins and no process ever sees a partial or empty
    file (an O_EXCL create then a write leaves a moment when the file is there but empty)."""
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: its file is complete
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


class SecretError(ValueError):
    """The master secret is missing, short or unreadable; the message says what to do."""


class MasterSecret:
    """The deployment's root secret. Sub-keys are derived per purpose, so one leak stays contained."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < 32:
            raise ValueError("the master secret must be at least 32 bytes")
        self._raw = raw
        self._digest_key = self.derive("tillkey/token-digest")
        self._aead = AESGCM(self.derive("tillkey/at-rest-encryption"))

    def __repr__(self) -> str:
        return "MasterSecret(***)"

    @classmethod
    def load(cls, configured: str, data_dir: Path) -> MasterSecret:
        """From TILLKEY_SECRET_KEY if set, else from <data_dir>/secret.key, created on first start."""
        if configured:
            return cls(configured.encode())
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_once(path, secrets.token_urlsafe(48))
        try:
            raw = path.read_text().strip().encode()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read the master secret {path}: {exc}") from None
        if len(raw) < 32:
            raise SecretError(
                f"the master secret in {path} is shorter than 32 bytes (damaged?); restore it from your backup"
            )
        return cls(raw)

    def derive(self, purpose: str, length: int = 32) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(self._raw)

    def digest(self, token: str) -> str:
        """Keyed HMAC-SHA256 of a high-entropy secret we generated: what the database stores."""
        return hmac.new(self._digest_key, token.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], context.encode())
