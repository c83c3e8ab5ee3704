"""Password hashes imported from Magento and Medusa, verified as those systems verify them.

A shop moved to Tillkey keeps its customers' passwords: each imported hash is checked in its own
format until its owner's next successful sign-in, which replaces it with Tillkey's argon2id
(accounts/signin/factors.py). Formats (shared/specs/magento-migration.md §A.4, medusa.md §5):

- Magento `hash:salt:v1[:v2…]`: starting from the password, each version in turn (oldest first)
  hashes the previous result with the salt: 0 md5(salt.x), 1 sha256(salt.x), 2 and
  `3_<len>_<ops>_<mem>` Argon2id13 (libsodium: one lane). The chains come from Magento's
  `customer:hash:upgrade`; `hash:salt:0` and `hash::0` are Magento 1 hashes as its Data Migration
  Tool writes them.
- Medusa's emailpass: base64 of a Tarsnap scrypt-kdf blob (the npm `scrypt-kdf` package).

Pure and synchronous: crypto/passwords.py runs these in its hashing pool and evens out their cost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct

from argon2.low_level import Type, hash_secret_raw

MAGENTO = "magento"
MEDUSA_SCRYPT = "medusa-scrypt"

_ARGON_SALT_BYTES = 16  # libsodium's crypto_pwhash_SALTBYTES
_ARGON_V2 = (32, 2, 64 * 1024 * 1024)  # Magento's version 2: length, ops limit, memory in bytes
_ARGON_V3 = re.compile(r"3_([0-9]{1,3})_([0-9]{1,2})_([0-9]{1,10})")
_HEX = re.compile(r"[0-9a-f]+")
# Bounds on what a stored hash may ask for: a corrupt or hostile row must not exhaust memory.
_MAX_ARGON_MEMORY = 1024 * 1024 * 1024
_MAX_SCRYPT_LOG_N = 20

_SCRYPT_MAGIC = b"scrypt\x00"
_SCRYPT_BLOB = 96  # magic 7, logN 1, r 4, p 4, salt 32, checksum 16, hmac 32
_SCRYPT_PREFIX = base64.b64encode(_SCRYPT_MAGIC)[:8].decode()  # "c2NyeXB0": base64 of "scrypt"


def scheme_of(stored: str) -> str | None:
    """Which legacy format a stored hash is in, by its shape; None for anything else (Tillkey's
    own `$argon2id$…`, or a value no format here reads)."""
    if stored.startswith(_SCRYPT_PREFIX) and ":" not in stored:
        return MEDUSA_SCRYPT
    if _magento_parts(stored) is not None:
        return MAGENTO
    return None


def describe(stored: str) -> str:
    """The scheme for the audit log, with Magento's version chain (never the hash or the salt)."""
    parts = _magento_parts(stored)
    if parts is not None:
        return f"{MAGENTO}:{':'.join(parts[2])}"
    return scheme_of(stored) or "unknown"


def is_costly(stored: str) -> bool:
    """Does checking it run a memory-hard KDF (argon2id13, scrypt), rather than only Magento's
    md5 and sha256 steps, which take microseconds?"""
    parts = _magento_parts(stored)
    if parts is not None:
        return any(v not in ("0", "1") for v in parts[2])
    return scheme_of(stored) == MEDUSA_SCRYPT


def verify(stored: str, password: str) -> bool:
    """Is `password` the one `stored` was made from? False for a malformed value."""
    scheme = scheme_of(stored)
    if scheme == MEDUSA_SCRYPT:
        return _verify_scrypt_kdf(stored, password)
    if scheme == MAGENTO:
        return _verify_magento(stored, password)
    return False


# --- Magento ------------------------------------------------------------------------------------


def _magento_parts(stored: str) -> tuple[str, str, list[str]] | None:
    parts = stored.split(":", 2)
    if len(parts) != 3 or not _HEX.fullmatch(parts[0]):
        return None
    versions = parts[2].split(":")
    if not all(v in ("0", "1", "2") or _ARGON_V3.fullmatch(v) for v in versions):
        return None
    return parts[0], parts[1], versions


def _argon(data: str, salt: str, length: int, ops: int, memory: int) -> str:
    # Magento cuts the salt to libsodium's 16 bytes, or repeats a shorter one up to 16.
    raw = salt.encode()[:_ARGON_SALT_BYTES]
    if len(raw) < _ARGON_SALT_BYTES:
        raw = (raw * (_ARGON_SALT_BYTES // len(raw) + 1))[:_ARGON_SALT_BYTES] if raw else raw
    if memory > _MAX_ARGON_MEMORY or len(raw) != _ARGON_SALT_BYTES or not (16 <= length <= 64) or ops < 1:
        raise ValueError("argon2 parameters out of range")
    digest = hash_secret_raw(data.encode(), raw, ops, memory // 1024, 1, length, Type.ID)
    return digest.hex()


def _step(version: str, data: str, salt: str) -> str:
    if version == "0":
        return hashlib.md5((salt + data).encode()).hexdigest()  # noqa: S324 (the legacy format)
    if version == "1":
        return hashlib.sha256((salt + data).encode()).hexdigest()
    if version == "2":
        return _argon(data, salt, *_ARGON_V2)
    found = _ARGON_V3.fullmatch(version)
    assert found is not None  # _magento_parts admitted only these
    return _argon(data, salt, int(found[1]), int(found[2]), int(found[3]))


def _verify_magento(stored: str, password: str) -> bool:
    parts = _magento_parts(stored)
    if parts is None:
        return False
    expected, salt, versions = parts
    result = password
    try:
        for version in versions:
            result = _step(version, result, salt)
    except ValueError:
        return False
    return hmac.compare_digest(result.encode(), expected.encode())


# --- Medusa (scrypt-kdf) ------------------------------------------------------------------------


def _verify_scrypt_kdf(stored: str, password: str) -> bool:
    try:
        blob = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(blob) != _SCRYPT_BLOB or not blob.startswith(_SCRYPT_MAGIC):
        return False
    log_n = blob[7]
    r, p = struct.unpack(">II", blob[8:16])
    salt, checksum, mac = blob[16:48], blob[48:64], blob[64:96]
    if not (1 <= log_n <= _MAX_SCRYPT_LOG_N) or not (1 <= r <= 32) or not (1 <= p <= 16):
        return False
    if not hmac.compare_digest(hashlib.sha256(blob[:48]).digest()[:16], checksum):
        return False  # a damaged header: no need to run the KDF on it
    n = 1 << log_n
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * r * (n + p + 2) + (1 << 20), dklen=64
    )
    return hmac.compare_digest(hmac.new(key[32:], blob[:64], hashlib.sha256).digest(), mac)
