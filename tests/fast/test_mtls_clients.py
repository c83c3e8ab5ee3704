"""Client authentication by mutual TLS (RFC 8705 §2) in the one owner, Clients.authenticate:
tls_client_auth (a certificate the proxy validated, with the registered subject DN or SAN) and
self_signed_tls_client_auth (a certificate whose key the client registered); every failure is the
same invalid_client."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests import inprocess
from tests.mtls_support import Authority, escaped, self_signed
from tests.oauth2_support import hidden_fields, register_async
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.errors import InvalidRequest
from tillkey.store.audit import AuditQuery

HEADER, VERIFY = "X-SSL-Client-Cert", "X-SSL-Client-Verify"
CA = Authority()
_, CERT = CA.issue("client-1", dns="shop.example")
_, OTHER = CA.issue("client-2", dns="evil.example")
DN = CERT.subject.rfc4514_string()


async def _register(t: inprocess.InProcess, **kw: object) -> str:
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name="machine",
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["Magento_Catalog::products"],
        **kw,  # type: ignore[arg-type]
    )
    await t.tk.poll_changes()
    assert reg.secret is None
    return reg.client.client_id


async def _ask(t: inprocess.InProcess, client_id: str, headers: dict[str, str]) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": client_id}
    return await t.client.post("/oauth2/token", data=data, headers=headers)


def _invalid_client(r: httpx.Response) -> None:
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def _cert(cert: object, verdict: str | None = "SUCCESS") -> dict[str, str]:
    return {HEADER: escaped(cert), **({} if verdict is None else {VERIFY: verdict})}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject_dn", DN), ("subject_dn", "2.5.4.3=client-1,O=Tillkey tests"), ("san_dns", "SHOP.example")],
)
def test_tls_client_auth(tmp_path: Path, field: str, value: str) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            cid = await _register(
                t,
                auth_method="tls_client_auth",
                tls_client_auth=(field, value),
                tls_client_certificate_bound_access_tokens=True,
            )
            r = await _ask(t, cid, _cert(CERT))
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await t.client.get("/rest/V1/products", headers={**bearer, **_cert(CERT)})).status_code == 200
            assert (await t.client.get("/rest/V1/products", headers={**bearer, **_cert(OTHER)})).status_code == 401
            for refused in (
                {},  # no certificate
                _cert(OTHER),  # another certificate (another name)
                _cert(CERT, None),  # the proxy did not validate its chain
                _cert(CERT, "FAILED:unable to verify the first certificate"),
                {HEADER: "garbage", VERIFY: "SUCCESS"},
                {**_cert(CERT), "Authorization": "Basic " + base64.b64encode(f"{cid}:x".encode()).decode()},
            ):
                _invalid_client(await _ask(t, cid, refused))
            # A secret client does not become a certificate client by presenting one.
            secret_client = await t.tk.services.clients.create(
                OPERATOR,
                name="s",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=[],
            )
            await t.tk.poll_changes()
            _invalid_client(await _ask(t, secret_client.client.client_id, _cert(CERT)))

    inprocess.run(go)


def test_self_signed_tls_client_auth(tmp_path: Path) -> None:
    key, cert = self_signed("device-7")
    jwks = json.dumps({"keys": [json.loads(ECAlgorithm.to_jwk(key.public_key()))]})
    other_key, other = self_signed("device-7")  # same name, another key

    async def go() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            cid = await _register(t, auth_method="self_signed_tls_client_auth", jwks=jwks)
            # No chain to validate: nginx says FAILED (optional_no_ca) or nothing; the key decides.
            assert (await _ask(t, cid, _cert(cert, None))).status_code == 200
            assert (await _ask(t, cid, _cert(cert, "FAILED:self-signed certificate"))).status_code == 200
            _invalid_client(await _ask(t, cid, _cert(other, None)))
            _invalid_client(await _ask(t, cid, _cert(CERT)))
            _invalid_client(await _ask(t, cid, {}))
        # The same certificate sent around the proxy proves nothing.
        async with inprocess.running(tmp_path, trusted_proxies="10.9.9.9") as t:
            _invalid_client(await _ask(t, cid, _cert(cert, None)))
        assert other_key is not key

    inprocess.run(go)


def test_registration_is_checked(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            jwks = json.dumps(
                {"keys": [json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))]}
            )
            for bad in (
                {"auth_method": "tls_client_auth"},  # no name
                {"auth_method": "tls_client_auth", "tls_client_auth": ("subject_dn", "not a dn")},
                {"auth_method": "tls_client_auth", "tls_client_auth": ("san_ip", "10.0.0.1")},
                {"auth_method": "tls_client_auth", "tls_client_auth": ("subject_dn", DN), "jwks": jwks},
                {"tls_client_auth": ("subject_dn", DN)},  # a name without the method
                {"auth_method": "self_signed_tls_client_auth"},  # no keys
                {"auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://keys.example/jwks"},
            ):
                with pytest.raises(InvalidRequest):
                    await _register(t, **bad)
            with pytest.raises(InvalidRequest):
                await t.tk.services.clients.create(
                    OPERATOR,
                    name="p",
                    client_type="public",
                    redirect_uris=["https://app.example/cb"],
                    grant_types=["authorization_code"],
                    scopes=[],
                    auth_method="tls_client_auth",
                    tls_client_auth=("subject_dn", DN),
                )
            with pytest.raises(InvalidRequest, match="public clients use DPoP"):
                await t.tk.services.clients.create(
                    OPERATOR,
                    name="p",
                    client_type="public",
                    redirect_uris=["https://app.example/cb"],
                    grant_types=["authorization_code"],
                    scopes=[],
                    tls_client_certificate_bound_access_tokens=True,
                )

    inprocess.run(go)


def test_discovery_and_every_registration_surface(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            meta = (await t.client.get("/.well-known/openid-configuration")).json()
            # No trusted TLS proxy: no mutual TLS advertised.
            assert meta["tls_client_certificate_bound_access_tokens"] is False
            assert "tls_client_auth" not in meta["token_endpoint_auth_methods_supported"]
        async with inprocess.running(tmp_path, trusted_proxies="10.0.0.1") as t:
            for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                meta = (await t.client.get(path)).json()
                assert meta["tls_client_certificate_bound_access_tokens"] is True
                for method in ("tls_client_auth", "self_signed_tls_client_auth"):
                    assert method in meta["token_endpoint_auth_methods_supported"]
            await t.create_admin("boss")
            auth = t.bearer(await t.admin_token("boss"))
            clients = "/tillkey/v1/oauth2/clients"
            base = {"name": "gw", "type": "confidential", "grant_types": ["client_credentials"]}
            body = {
                **base,
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_san_dns": "shop.example",
                "tls_client_certificate_bound_access_tokens": True,
            }
            r = await t.client.post(clients, json=body, headers=auth)
            assert r.status_code == 201 and "client_secret" not in r.json(), r.text
            assert r.json()["tls_client_auth_san_dns"] == "shop.example" and r.json()["binding"] == "mtls"
            for bad in (
                {**body, "tls_client_auth_subject_dn": DN},  # two names
                {**body, "tls_client_certificate_bound_access_tokens": "yes"},
                {**base, "token_endpoint_auth_method": "tls_client_auth"},
            ):
                assert (await t.client.post(clients, json=bad, headers=auth)).status_code == 400
            made = await register_async(
                t,
                "--name",
                "cli",
                "--type",
                "confidential",
                "--grant",
                "client_credentials",
                "--auth-method",
                "tls_client_auth",
                "--tls-subject-dn",
                DN,
                "--cert-bound",
            )
            assert made["token_endpoint_auth_method"] == "tls_client_auth" and made["tls_client_auth_subject_dn"] == DN
            found = await t.tk.audit.search(AuditQuery(event=audit.OAUTH2_CLIENT_CREATED))
            details = [json.loads(r.details) if isinstance(r.details, str) else dict(r.details or {}) for r in found]
            assert any(d.get("tls_client_auth_subject_dn") == DN and d["binding"] == "mtls" for d in details), details
            listing = await inprocess.cli_json("client", "list")
            assert {c["name"]: c["binding"] for c in listing["clients"]} == {"gw": "mtls", "cli": "mtls"}
            # The test client (127.0.0.1) is not the trusted proxy: its certificate header proves nothing.
            _invalid_client(await _ask(t, made["client_id"], _cert(CERT)))
            # The console shows the binding and the method.
            page = await t.client.get("/console/login")
            r = await t.client.post(
                "/console/login",
                data={**hidden_fields(page.text), "username": "boss", "password": inprocess.ADMIN_PASSWORD},
            )
            assert r.status_code == 303, r.text
            listed = (await t.client.get("/console/oauth-clients")).text
            assert "certificate-bound" in listed and "tls_client_auth" in listed
            detail = (await t.client.get(f"/console/oauth-clients/{made['client_id']}")).text
            assert "client certificate (mTLS) required" in detail

    inprocess.run(go)
