"""Mutual TLS through a real nginx (Debian's package) running examples/nginx/tillkey-mtls.conf,
with a CA, a server certificate and client certificates made at test time: a tls_client_auth client
gets a certificate-bound token (RFC 8705) and that token works only with its certificate; an
integration bound to a certificate is accepted (requests-oauthlib's signed calls) only with it."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1Session

from tests.conftest import Server, free_port, stop_process
from tests.mtls_support import Authority, pem
from tests.oauth2_support import register, start_oauth_server
from tests.test_forward_auth import Upstream, nginx_binary, start_nginx, wait_for_nginx

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nginx" / "tillkey-mtls.conf"
FORWARD_AUTH_EXAMPLE = EXAMPLE.parent / "tillkey-forward-auth.conf"
PRODUCTS = "/rest/V1/products"
ROUTES = [{"methods": ["GET"], "path": "/api/products/**", "resources": ["Magento_Catalog::products"]}]


class Front:
    def __init__(self, tmp: Path, url: str, ca: Authority, tillkey: Server) -> None:
        self.tmp, self.url, self.ca, self.tillkey = tmp, url, ca, tillkey
        self.forward_auth_url = ""  # the forward-auth TLS nginx in front of `app`, once started
        self.app: Upstream | None = None

    def client(self, name: str | None, url: str | None = None) -> httpx.Client:
        """An HTTPS client trusting the test CA, presenting `name`'s certificate (None: none)."""
        ctx = ssl.create_default_context(cafile=str(self.tmp / "ca.crt"))
        if name is not None:
            ctx.load_cert_chain(str(self.tmp / f"{name}.crt"), str(self.tmp / f"{name}.key"))
        return httpx.Client(base_url=url or self.url, verify=ctx, timeout=10)


def _write(tmp: Path, name: str, key: object, cert: object) -> None:
    (tmp / f"{name}.crt").write_text(pem(cert))  # type: ignore[arg-type]
    (tmp / f"{name}.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))  # type: ignore[attr-defined]


def nginx_config(tmp: Path, port: int, tillkey_port: int) -> Path:
    site = EXAMPLE.read_text()
    for pattern, value in [
        (r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{tillkey_port};"),
        (r"/etc/tillkey/tls/server\.crt", str(tmp / "server.crt")),
        (r"/etc/tillkey/tls/server\.key", str(tmp / "server.key")),
        (r"/etc/tillkey/tls/client-ca\.crt", str(tmp / "ca.crt")),
    ]:
        site, n = re.subn(pattern, value, site)
        assert n == 1, f"the example no longer has {pattern!r}"
    return _wrap(tmp, site)


def forward_auth_tls_config(tmp: Path, port: int, tillkey_port: int, app_port: int) -> Path:
    """examples/nginx/tillkey-forward-auth.conf on a TLS server asking for client certificates, as
    its comments say: the TLS lines of tillkey-mtls.conf, and its commented certificate lines
    enabled in place of the two that clear the headers."""
    certs = "\n".join(
        [
            f"listen 127.0.0.1:{port} ssl;",
            f"    ssl_certificate {tmp / 'server.crt'};",
            f"    ssl_certificate_key {tmp / 'server.key'};",
            f"    ssl_client_certificate {tmp / 'ca.crt'};",
            "    ssl_verify_client optional;",
        ]
    )
    site = FORWARD_AUTH_EXAMPLE.read_text()
    for pattern, value in [
        (r"listen 80;", certs),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{tillkey_port};"),
        (r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{app_port};"),
        (r'\n *proxy_set_header X-SSL-Client-Cert "";', ""),
        (r'\n *proxy_set_header X-SSL-Client-Verify "";', ""),
        (r"# (proxy_set_header X-SSL-Client-Cert \$ssl_client_escaped_cert;)", r"\1"),
        (r"# (proxy_set_header X-SSL-Client-Verify \$ssl_client_verify;)", r"\1"),
    ]:
        site, n = re.subn(pattern, value, site)
        assert n == 1, f"the forward-auth example no longer has {pattern!r}"
    return _wrap(tmp, site)


def _wrap(tmp: Path, site: str) -> Path:
    (tmp / "site.conf").write_text(site)
    temp = tmp / "temp"
    temp.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp}/site.conf;
}}
""")
    return conf


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    nginx = nginx_binary()
    tmp = tmp_path_factory.mktemp("mtls")
    ca = Authority()
    (tmp / "ca.crt").write_text(pem(ca.cert))
    _write(tmp, "server", *ca.issue("127.0.0.1", dns="localhost", server=True, ip="127.0.0.1"))
    _write(tmp, "machine", *ca.issue("machine"))
    _write(tmp, "other", *ca.issue("other"))
    tk = start_oauth_server(
        tmp / "tillkey", "sqlite", TILLKEY_TRUSTED_PROXIES="127.0.0.1", TILLKEY_FORWARD_AUTH_ROUTES=json.dumps(ROUTES)
    )
    app = Upstream()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        procs.append(start_nginx(nginx, tmp, nginx_config(tmp, port, tk.port)))
        front = Front(tmp, f"https://127.0.0.1:{port}", ca, tk)
        _wait(front, procs[-1], tmp, front.url)
        # The forward-auth example on TLS with client certificates, in front of a small app.
        fa = tmp / "forward-auth"
        fa.mkdir()
        for name in ("server.crt", "server.key", "ca.crt"):
            (fa / name).write_bytes((tmp / name).read_bytes())
        fa_port = free_port()
        procs.append(start_nginx(nginx, fa, forward_auth_tls_config(fa, fa_port, tk.port, app.port)))
        front.forward_auth_url, front.app = f"https://127.0.0.1:{fa_port}", app
        _wait(front, procs[-1], fa, front.forward_auth_url)
        yield front
    finally:
        for proc in procs:
            stop_process(proc)
        app.close()
        tk.stop()


def _wait(front: Front, proc: subprocess.Popen[bytes], prefix: Path, url: str) -> None:
    def probe() -> None:
        with front.client(None, url) as c:
            c.get("/.well-known/openid-configuration")

    wait_for_nginx(proc, prefix, probe)


def _tls_machine(front: Front, name: str) -> dict[str, str]:
    """A tls_client_auth client known by the "machine" certificate's subject, its tokens bound to it."""
    return register(
        front.tillkey,
        "--name",
        name,
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
        "--auth-method",
        "tls_client_auth",
        "--tls-subject-dn",
        "CN=machine,O=Tillkey tests",
        "--cert-bound",
    )


def test_tls_client_auth_gets_a_bound_token_usable_only_with_its_certificate(front: Front) -> None:
    made = _tls_machine(front, "machine")
    ask = {"grant_type": "client_credentials", "client_id": made["client_id"]}
    with front.client("machine") as mine, front.client("other") as other, front.client(None) as none:
        meta = none.get("/.well-known/oauth-authorization-server").json()
        assert meta["tls_client_certificate_bound_access_tokens"] is True
        # Another certificate of the same CA, none, or a forged header: no token.
        assert other.post("/oauth2/token", data=ask).json()["error"] == "invalid_client"
        assert none.post("/oauth2/token", data=ask).json()["error"] == "invalid_client"
        mine_pem = (front.tmp / "machine.crt").read_text()
        forged = {"X-SSL-Client-Cert": mine_pem.replace("\n", "%0A"), "X-SSL-Client-Verify": "SUCCESS"}
        assert none.post("/oauth2/token", data=ask, headers=forged).status_code == 401
        r = mine.post("/oauth2/token", data=ask)
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert mine.get(PRODUCTS, headers=bearer).status_code == 200
        for c in (other, none):
            r = c.get(PRODUCTS, headers=bearer)
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], r.text
        assert none.get(PRODUCTS, headers={**bearer, **forged}).status_code == 401


def test_forward_auth_on_tls_passes_the_certificate_a_bound_token_needs(front: Front) -> None:
    """tillkey-forward-auth.conf with its certificate lines enabled (a TLS server asking for client
    certificates): the app behind it is reached with a certificate-bound token only on a connection
    made with that certificate."""
    made = _tls_machine(front, "forward-auth machine")
    with front.client("machine") as mine:
        r = mine.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": made["client_id"]})
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    app = front.app
    assert app is not None
    url = front.forward_auth_url
    with front.client("machine", url) as mine, front.client("other", url) as other, front.client(None, url) as none:
        ok = mine.get("/api/products/24-MB01", headers=bearer)
        assert ok.status_code == 200, ok.text
        assert ok.json()["tillkey"]["x-tillkey-user-type"] == "oauth_client"
        before = len(app.hits)
        mine_pem = (front.tmp / "machine.crt").read_text()
        forged = {"X-SSL-Client-Cert": mine_pem.replace("\n", "%0A"), "X-SSL-Client-Verify": "SUCCESS"}
        for client, extra in ((other, {}), (none, {}), (none, forged)):
            r = client.get("/api/products/24-MB01", headers={**bearer, **extra})
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert len(app.hits) == before


def test_an_integration_bound_to_a_certificate_signs_calls_that_work_only_with_it(front: Front) -> None:
    made = front.tillkey.cli_json(
        "integration", "create", "--name", "erp", "--all", "--cert-file", str(front.tmp / "machine.crt")
    )
    tokens = front.tillkey.cli_json("integration", "activate", "erp")
    erp = OAuth1Session(
        made["consumer_key"],
        made["consumer_secret"],
        tokens["access_token"],
        tokens["access_token_secret"],
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    ca, url = str(front.tmp / "ca.crt"), front.url + PRODUCTS
    with erp:
        r = erp.get(url, cert=(str(front.tmp / "machine.crt"), str(front.tmp / "machine.key")), verify=ca, timeout=10)
        assert r.status_code == 200, r.text
        assert "items" in r.json()
        # The consumer secret and access token alone (stolen): another certificate, or none.
        for cert in ((str(front.tmp / "other.crt"), str(front.tmp / "other.key")), None):
            r = erp.get(url, cert=cert, verify=ca, timeout=10)
            assert r.status_code == 401, r.text
            assert r.json() == {"message": "This integration is bound to another client certificate."}
