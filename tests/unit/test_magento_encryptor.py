"""Magento's values encrypted at rest open with its crypt/key. The vectors come from PHP with
libsodium and openssl, written the way Magento's Encryptor writes them
(tests/vectors/magento_encryptor/magento_encrypt.php), not from the code under test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES
from tillkey.crypto.magento_encryptor import MagentoDecryptError, MagentoKeys

SCRIPT = Path(__file__).parent.parent / "vectors" / "magento_encryptor" / "magento_encrypt.php"
COMMITTED: dict[str, Any] = json.loads(SCRIPT.with_name("magento.json").read_text())


def _check(vectors: dict[str, Any]) -> None:
    keys = MagentoKeys(vectors["crypt_key"])
    for v in vectors["vectors"]:
        assert keys.secret(v["stored"]) == v["plain"], v["name"]
    config = json.loads(keys.decrypt(vectors["totp"]["encoded_config"]))
    assert keys.decrypt(config["google"]["secret"]) == vectors["totp"]["secret"]


def test_the_committed_php_vectors_open() -> None:
    _check(COMMITTED)


def test_values_php_encrypts_now_open() -> None:
    """Fresh nonces at each run: PHP encrypts anew, and each value opens."""
    if shutil.which("php") is None:
        reason = "php-cli (with sodium) is needed to encrypt fresh Magento values"
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}") if REQUIRE_SERVICES else pytest.skip(reason)
    out = subprocess.run(["php", str(SCRIPT)], check=True, capture_output=True, text=True, timeout=60).stdout
    fresh = json.loads(out)
    assert fresh["vectors"][0]["stored"] != COMMITTED["vectors"][0]["stored"]  # a new nonce
    _check(fresh)


def test_another_key_or_a_damaged_value_is_refused() -> None:
    sodium = COMMITTED["vectors"][0]["stored"]
    other = MagentoKeys("0123456789abcdefghijklmnopqrstuv 0123456789abcdefghijklmnopqrstuX")
    with pytest.raises(MagentoDecryptError, match="wrong crypt/key"):
        other.decrypt(sodium)
    keys = MagentoKeys(COMMITTED["crypt_key"])
    version, cipher, payload = sodium.split(":")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for bad, why in [
        (f"{version}:{cipher}:{flipped}", "wrong crypt/key"),
        (f"7:{cipher}:{payload}", "key 7"),
        (f"{version}:2:{payload}", "cipher 2"),
        (f"{version}:3:not*base64", "base64"),
        (f"{version}:3:AAAA", "too short"),
        ("x" * 40, "neither"),
    ]:
        with pytest.raises(MagentoDecryptError, match=why):
            keys.secret(bad)


@pytest.mark.parametrize("crypt_key", ["", "short", "base64AAAA", "base64!!"])
def test_a_bad_crypt_key_is_refused(crypt_key: str) -> None:
    with pytest.raises(MagentoDecryptError):
        MagentoKeys(crypt_key)
