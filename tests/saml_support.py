"""A SAML identity provider built with pysaml2, in-process, for the SP tests (tests/test_saml_*.py):
it signs, encrypts and answers as a real IdP would, and its responses are then bent the way an
attacker bends them."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

from tillkey.federation.saml_keys import new_pair

IDP_ENTITY = "https://idp.test/saml"
SSO_URL = "https://idp.test/sso"


@dataclass
class SamlIdP:
    server: Server
    metadata: str
    key_file: str
    cert_file: str

    def respond(
        self,
        *,
        sp_entity: str,
        destination: str,
        in_response_to: str | None,
        name_id: str,
        attributes: dict[str, list[str]] | None = None,
        sign_response: bool = True,
        sign_assertion: bool = False,
        encrypt: bool = False,
    ) -> str:
        """A Response as XML text (pysaml2 signs and encrypts it)."""
        kwargs: dict[str, Any] = {}
        if encrypt:
            kwargs = {"encrypt_assertion": True, "encrypt_assertion_self_contained": True}
        answer = self.server.create_authn_response(
            identity=attributes or {},
            in_response_to=in_response_to,
            destination=destination,
            sp_entity_id=sp_entity,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            **kwargs,
        )
        return str(answer)

    def load_sp(self, sp_metadata: str) -> None:
        self.server.metadata.load("inline", sp_metadata)


def make_idp(directory: Path, sp_metadata: list[str] | None = None) -> SamlIdP:
    cert, key = new_pair("test idp", time.time())
    key_file, cert_file = directory / "idp.key", directory / "idp.crt"
    key_file.write_bytes(key)
    cert_file.write_text(cert)
    conf = IdPConfig()
    conf.load(
        {
            "entityid": IDP_ENTITY,
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "key_file": str(key_file),
            "cert_file": str(cert_file),
            "metadata": {"inline": sp_metadata or []},
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                }
            },
        }
    )
    server = Server(config=conf)
    metadata = create_metadata_string(None, config=conf, sign=False).decode()
    return SamlIdP(server, metadata, str(key_file), str(cert_file))


def request_id(location: str) -> str:
    """The ID of the AuthnRequest in an HTTP-Redirect URL."""
    from urllib.parse import parse_qs, urlsplit
    from zlib import decompress

    query = parse_qs(urlsplit(location).query)
    xml = decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    found = re.search(r'\bID="([^"]+)"', xml)
    assert found is not None
    return found.group(1)


def relay_state(location: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(location).query)["RelayState"][0]


def post_form(response_xml: str, relay: str | None) -> dict[str, str]:
    form = {"SAMLResponse": base64.b64encode(response_xml.encode()).decode()}
    if relay is not None:
        form["RelayState"] = relay
    return form
