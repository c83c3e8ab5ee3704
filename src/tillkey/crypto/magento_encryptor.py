"""Values Magento 2.4 encrypted at rest (its Encryptor), read back with its `crypt/key`
(shared/specs/magento-migration.md §A.2, §A.3). Only the format is here; the ciphers are
`cryptography`'s.

- `crypt/key` (app/etc/env.php) is a whitespace-separated list; a value names the key it was
  encrypted with by its 0-based position. Keys from 2.4.7 on are "base64" + base64(32 bytes);
  older ones are 32 characters used as raw bytes.
- `"<key>:3:<base64>"`: IETF ChaCha20-Poly1305 (12-byte nonce, not XChaCha), payload nonce ‖
  ciphertext ‖ tag, the nonce also being the associated data. What every 2.4 writes.
- `"<key>:1:<base64>"`: mcrypt Rijndael-128 ECB with a 32-byte key (AES-256-ECB), zero padding:
  values left from before sodium.
- Ciphers 0 (Blowfish) and 2 (Rijndael-256, no AES) are refused: 2.4 itself cannot read them.

Magento trims whitespace and NULs from what it decrypts, and so does this.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

ENCRYPTED = re.compile(r"^([0-9]+):([0-9]):(\S+)$")
_NONCE = 12
_TAG = 16
_PHP_TRIM = " \t\n\r\0\x0b"
# Before 2.4.3-p2 OAuth secrets were stored plain; Magento's upgrade patches read any value of at
# most 32 characters as such (UpgradeConsumerSecret, UpgradeOauthToken).
PLAIN_MAX = 32


class MagentoDecryptError(ValueError):
    """A value this crypt/key cannot open (wrong key, unknown cipher, damaged data)."""


class MagentoKeys:
    def __init__(self, crypt_key: str) -> None:
        keys = crypt_key.split()
        if not keys:
            raise MagentoDecryptError("the crypt/key is empty")
        self._keys = [_decode_key(k) for k in keys]

    def decrypt(self, value: str) -> str:
        """The plaintext of one `<key>:<cipher>:<base64>` value."""
        m = ENCRYPTED.match(value)
        if m is None:
            raise MagentoDecryptError("not a Magento encrypted value")
        version, cipher = int(m.group(1)), int(m.group(2))
        if version >= len(self._keys):
            raise MagentoDecryptError(f"encrypted with key {version}, which the crypt/key does not hold")
        try:
            payload = base64.b64decode(m.group(3), validate=True)
        except binascii.Error:
            raise MagentoDecryptError("the encrypted value is not base64") from None
        key = self._keys[version]
        if cipher == 3:
            plain = _chacha(key, payload)
        elif cipher == 1:
            plain = _aes_ecb(key, payload)
        else:
            raise MagentoDecryptError(f"cipher {cipher} (mcrypt) is not supported: Magento 2.4 cannot read it either")
        try:
            return plain.decode("utf-8").strip(_PHP_TRIM)
        except UnicodeDecodeError:
            raise MagentoDecryptError("the decrypted value is not text (wrong key?)") from None

    def secret(self, value: str) -> str:
        """An OAuth consumer or access-token secret: encrypted, or plain from before 2.4.3-p2."""
        if ENCRYPTED.match(value):
            return self.decrypt(value)
        if len(value) <= PLAIN_MAX:
            return value
        raise MagentoDecryptError("neither an encrypted value nor a plain secret")


def plain_secret(value: str) -> str | None:
    """A secret readable without the key (stored plain), or None when it is encrypted."""
    return value if not ENCRYPTED.match(value) and len(value) <= PLAIN_MAX else None


def _decode_key(key: str) -> bytes:
    if key.startswith("base64"):
        try:
            raw = base64.b64decode(key[len("base64") :], validate=True)
        except binascii.Error:
            raise MagentoDecryptError("a crypt/key entry starting with base64 does not decode") from None
    else:
        raw = key.encode()
    if len(raw) != 32:
        raise MagentoDecryptError("each crypt/key entry must be 32 bytes (as Magento's KeyValidator requires)")
    return raw


def _chacha(key: bytes, payload: bytes) -> bytes:
    if len(payload) < _NONCE + _TAG:
        raise MagentoDecryptError("the encrypted value is too short")
    nonce = payload[:_NONCE]
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, payload[_NONCE:], nonce)
    except InvalidTag:
        raise MagentoDecryptError("the value does not open with that key (wrong crypt/key?)") from None


def _aes_ecb(key: bytes, payload: bytes) -> bytes:
    if not payload or len(payload) % 16:
        raise MagentoDecryptError("the encrypted value is not whole AES blocks")
    # ECB is what Magento used (mcrypt); read-only here, never written.
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(payload) + decryptor.finalize()
