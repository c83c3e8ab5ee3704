"""Certificate-bound access tokens (RFC 8705 §3): a client registered with
`tls_client_certificate_bound_access_tokens` that asks for a token with a client certificate (passed
by a trusted proxy) gets one carrying `cnf.x5t#S256`; the one binding check (credentials/binding.py)
accepts it only with that certificate — on the protected surfaces, introspection and forward-auth —
and refuses it with another certificate, none, a malformed one or one sent around the proxy."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import jwt
import pytest

from tests import inprocess
from tests.mtls_support import Authority, escaped
from tillkey.access.delegation import OPERATOR
from tillkey.credentials.mtls import parse_header

PRODUCTS = "/rest/V1/products"
FORWARD = "/tillkey/v1/forward-auth"
HEADER = "X-SSL-Client-Cert"
CA = Authority()
_, CERT = CA.issue("client-1")
_, OTHER = CA.issue("client-2")
X5T = parse_header(escaped(CERT)).thumbprint  # type: ignore[union-attr]


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r.headers
    assert "Traceback" not in r.text


async def _client(t: inprocess.InProcess, bound: bool = True) -> dict[str, str]:
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name="machine",
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["Magento_Catalog::products"],
        tls_client_certificate_bound_access_tokens=bound,
    )
    await t.tk.poll_changes()
    raw = base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def _token(t: inprocess.InProcess, basic: dict[str, str], cert: str | None = escaped(CERT)) -> httpx.Response:
    headers = {**basic, **({} if cert is None else {HEADER: cert})}
    return await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=headers)


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_a_bound_token_works_only_with_its_certificate(tmp_path: Path, fmt: str) -> None:
    routes = [{"path": PRODUCTS, "resources": ["Magento_Catalog::products"]}]

    async def go() -> None:
        async with inprocess.running(
            tmp_path, oauth2_access_token_format=fmt, trusted_proxies="127.0.0.1", forward_auth_routes=routes
        ) as t:
            basic = await _client(t)
            r = await _token(t, basic)
            assert r.status_code == 200 and r.json()["token_type"] == "Bearer", r.text
            token = r.json()["access_token"]
            if fmt == "jwt":
                assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"x5t#S256": X5T}
            bearer = {"Authorization": f"Bearer {token}"}
            ok = await t.client.get(PRODUCTS, headers={**bearer, HEADER: escaped(CERT)})
            assert ok.status_code == 200, ok.text
            for presented in ({}, {HEADER: escaped(OTHER)}, {HEADER: "garbage"}, {HEADER: escaped(CERT)[:-40]}):
                _refused(await t.client.get(PRODUCTS, headers={**bearer, **presented}))
            # As DPoP: still the certificate's token, and no DPoP key: refused.
            assert (
                await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}", HEADER: escaped(CERT)})
            ).status_code == 401
            # Introspection tells the resource server the binding.
            info = await t.client.post("/oauth2/introspect", data={"token": token}, headers=basic)
            assert info.json()["cnf"] == {"x5t#S256": X5T} and info.json()["token_type"] == "Bearer", info.text
            # Forward-auth: nginx passes the certificate header on the auth subrequest.
            asked = {
                "X-Forwarded-Method": "GET",
                "X-Forwarded-Uri": PRODUCTS,
                "X-Forwarded-Host": "shop.example",
                **bearer,
            }
            assert (await t.client.get(FORWARD, headers={**asked, HEADER: escaped(CERT)})).status_code == 200
            _refused(await t.client.get(FORWARD, headers=asked))
            _refused(await t.client.get(FORWARD, headers={**asked, HEADER: escaped(OTHER)}))
            # A bound client asking without a certificate gets no token.
            r = await _token(t, basic, None)
            assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
            # An unbound client's token is plain bearer, certificate or not.
            plain = (await _token(t, await _client(t, bound=False))).json()["access_token"]
            assert (await t.client.get(PRODUCTS, headers={"Authorization": f"Bearer {plain}"})).status_code == 200

    inprocess.run(go)


def test_the_header_from_an_untrusted_peer_binds_nothing_and_proves_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        # The test client is 127.0.0.1; only 10.9.9.9 is the proxy: every header here goes around it.
        async with inprocess.running(tmp_path, trusted_proxies="10.9.9.9") as t:
            basic = await _client(t)
            r = await _token(t, basic)
            assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            token = (await _token(t, await _client(t))).json()["access_token"]
        async with inprocess.running(tmp_path, trusted_proxies="10.9.9.9") as t:
            _refused(await t.client.get(PRODUCTS, headers={"Authorization": f"Bearer {token}", HEADER: escaped(CERT)}))

    inprocess.run(go)
