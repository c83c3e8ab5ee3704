"""Debian's SimpleSAMLphp as a real SAML IdP for the tests (tests/test_saml_simplesamlphp.py):
served with `php -S` on a loopback port, configured in a temporary directory (SimpleSAMLphp reads
it from SIMPLESAMLPHP_CONFIG_DIR) with users from its exampleauth:UserPass module. The test adds
Tillkey's SP entry (`add_sp`) once Tillkey has made its certificate."""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES, free_port, stop_process
from tests.polling import eventually
from tillkey.federation.saml_keys import new_pair

WWW = Path("/usr/share/simplesamlphp/www")
PASSWORD = "correct-horse-battery"


def _php(value: object) -> str:
    """A PHP literal of a str, bool, list or dict (what the config files need)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_php(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{_php(k)} => {_php(v)}" for k, v in value.items()) + "]"
    raise TypeError(type(value))


@dataclass
class SimpleSamlPhp:
    base: str
    config: Path

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/saml2/idp/metadata.php"

    def add_sp(self, entity_id: str, acs: str, cert_pem: str) -> None:
        """Tillkey's SP: persistent NameID from `uid`, the assertion encrypted to the SP's certificate."""
        der = "".join(line for line in cert_pem.splitlines() if "-----" not in line)
        sp = {
            "AssertionConsumerService": acs,
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "simplesaml.nameidattribute": "uid",
            "assertion.encryption": True,
            "certData": der,
            "saml20.sign.response": True,
            "saml20.sign.assertion": True,
        }
        path = self.config / "metadata" / "saml20-sp-remote.php"
        path.write_text(path.read_text() + f"$metadata[{_php(entity_id)}] = {_php(sp)};\n")

    async def sign_in(self, client: httpx.AsyncClient, location: str, user: str) -> dict[str, str]:
        """A browser at the IdP: follow the AuthnRequest to the login form, post the user's
        password, and read the auto-posting form SimpleSAMLphp answers with (its SAMLResponse and
        RelayState, for the SP's ACS). Answers the form's fields and `action`."""
        r = await client.get(location, follow_redirects=True)
        assert r.status_code == 200, r.text[:500]
        fields = _inputs(r.text)
        action = urljoin(str(r.url), html.unescape(_form_action(r.text) or str(r.url)))
        r = await client.post(action, data={**fields, "username": user, "password": PASSWORD}, follow_redirects=True)
        assert r.status_code == 200 and "SAMLResponse" in r.text, r.text[:1000]
        return {**_inputs(r.text), "action": html.unescape(_form_action(r.text) or "")}


def _inputs(page: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and value:
            found[html.unescape(name.group(1))] = html.unescape(value.group(1))
    return found


def _form_action(page: str) -> str | None:
    found = re.search(r'<form\b[^>]*action="([^"]*)"', page)
    return found.group(1) if found else None


def _write_config(root: Path, base: str, users: dict[str, dict[str, list[str]]]) -> None:
    for sub in ("metadata", "cert", "tmp", "log", "sessions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cert, key = new_pair("SimpleSAMLphp test IdP", time.time())
    (root / "cert" / "idp.crt").write_text(cert)
    (root / "cert" / "idp.key").write_bytes(key)
    config = {
        "baseurlpath": f"{base}/",
        "certdir": f"{root}/cert/",
        "loggingdir": f"{root}/log/",
        "tempdir": f"{root}/tmp",
        "metadatadir": f"{root}/metadata/",
        "datadir": f"{root}/tmp/",
        "secretsalt": base64.b16encode(os.urandom(16)).decode(),
        "auth.adminpassword": base64.b16encode(os.urandom(16)).decode(),
        "technicalcontact_name": "Tests",
        "technicalcontact_email": "tests@example.org",
        "timezone": "UTC",
        "logging.level": "SimpleSAML\\Logger::WARNING",
        "logging.handler": "file",
        "enable.saml20-idp": True,
        "module.enable": {"exampleauth": True, "core": True, "saml": True},
        "store.type": "phpsession",
        "session.phpsession.savepath": f"{root}/sessions",
        "admin.protectmetadata": False,
        "metadata.sources": [{"type": "flatfile"}],
    }
    body = ", ".join(f"{_php(k)} => {_php(v)}" for k, v in config.items())
    body = body.replace("'SimpleSAML\\\\Logger::WARNING'", "SimpleSAML\\Logger::WARNING")
    (root / "config.php").write_text(f"<?php\n$config = [{body}];\n")
    userpass: dict[str, object] = {f"{u}:{PASSWORD}": attrs for u, attrs in users.items()}
    sources = {"admin": ["core:AdminPassword"], "example-userpass": ["exampleauth:UserPass"]}
    text = f"<?php\n$config = {_php(sources)};\n"
    text += f"$config['example-userpass'] = array_merge($config['example-userpass'], {_php(userpass)});\n"
    (root / "authsources.php").write_text(text)
    hosted = {
        "host": "__DEFAULT__",
        "privatekey": "idp.key",
        "certificate": "idp.crt",
        "auth": "example-userpass",
        "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    }
    (root / "metadata" / "saml20-idp-hosted.php").write_text(f"<?php\n$metadata['__DYNAMIC:1__'] = {_php(hosted)};\n")
    (root / "metadata" / "saml20-sp-remote.php").write_text("<?php\n")


def missing() -> str | None:
    if shutil.which("php") is None:
        return "php-cli is not installed"
    if not (WWW / "saml2" / "idp" / "SSOService.php").exists():
        return "simplesamlphp is not installed"
    if not Path("/usr/bin/xmlsec1").exists():
        return "xmlsec1 is not installed"
    return None


@contextlib.contextmanager
def simplesamlphp(root: Path, users: dict[str, dict[str, list[str]]]) -> Iterator[SimpleSamlPhp]:
    reason = missing()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    _write_config(root, base, users)
    env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(root)}
    proc = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(WWW)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / "log" / "php-server.log").open("wb"),
    )
    try:
        started = SimpleSamlPhp(base, root)

        def answers() -> bool:
            try:
                return httpx.get(started.metadata_url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(answers, within=20, what="SimpleSAMLphp's IdP metadata")
        yield started
    finally:
        stop_process(proc)
