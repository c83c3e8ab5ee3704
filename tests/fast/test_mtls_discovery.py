"""RFC 8705 §5 `mtls_endpoint_aliases`: with TILLKEY_MTLS_BASE_URL (where the TLS proxy that asks for
client certificates serves Tillkey), both discovery documents send certificate-using clients there
for the token, revocation, introspection, userinfo and PAR endpoints; the issuer and the plain
endpoints stay. Without it there are no aliases (the mTLS proxy fronts the issuer's own address)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests import inprocess
from tillkey.settings import Settings

DOCUMENTS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
ALIASED = (
    "token_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "pushed_authorization_request_endpoint",
)


def test_discovery_lists_the_mtls_aliases_under_the_mtls_base_url(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(
            tmp_path, trusted_proxies="127.0.0.1", mtls_base_url="https://mtls.auth.example:8443/"
        ) as t:
            for path in DOCUMENTS:
                meta = (await t.client.get(path)).json()
                assert meta["issuer"] == inprocess.BASE_URL
                assert meta["tls_client_certificate_bound_access_tokens"] is True
                aliases = meta["mtls_endpoint_aliases"]
                assert set(aliases) == set(ALIASED)
                for name in ALIASED:
                    # The same endpoint, at the proxy's address: the plain one is still the issuer's.
                    assert meta[name].startswith(inprocess.BASE_URL + "/")
                    assert aliases[name] == meta[name].replace(inprocess.BASE_URL, "https://mtls.auth.example:8443")
                assert "authorization_endpoint" not in aliases and "jwks_uri" not in aliases
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            for path in DOCUMENTS:
                meta = (await t.client.get(path)).json()
                assert "mtls_endpoint_aliases" not in meta
                assert meta["tls_client_certificate_bound_access_tokens"] is True

    inprocess.run(go)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"mtls_base_url": "https://mtls.auth.example"}, "needs TILLKEY_TRUSTED_PROXIES"),
        ({"mtls_base_url": "mtls.auth.example", "trusted_proxies": "10.0.0.1"}, "absolute http"),
        ({"mtls_base_url": "https://mtls.auth.example/?x=1", "trusted_proxies": "10.0.0.1"}, "absolute http"),
    ],
)
def test_an_unusable_mtls_base_url_stops_the_start(knobs: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate(knobs)
