"""Forward-auth (GET /tillkey/v1/forward-auth): asked directly, as nginx and Traefik ask it, and
through a real nginx (Debian's package) running examples/nginx/tillkey-forward-auth.conf in front
of a small app on loopback that echoes the identity headers it receives."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from oauthlib.oauth1 import Client as OAuth1Client

from tests.conftest import (
    ADMIN_PASSWORD,
    CUSTOMER_PASSWORD,
    REQUIRE_SERVICES,
    TILLKEY,
    Server,
    free_port,
    stop_process,
)
from tests.dpop_support import Holder
from tests.mtls_support import Authority, escaped
from tests.oauth2_support import basic, register, start_oauth_server
from tests.polling import eventually

ENDPOINT = "/tillkey/v1/forward-auth"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nginx" / "tillkey-forward-auth.conf"
ROUTES: list[dict[str, Any]] = [
    {"path": "/public/**", "resources": ["anonymous"]},
    {"methods": ["GET"], "path": "/api/products/**", "resources": ["Magento_Catalog::products"]},
    {"methods": ["POST", "PUT", "DELETE"], "path": "/api/products/**", "resources": ["Magento_Backend::all"]},
    {"path": "/api/orders/*", "resources": ["Magento_Sales::actions_view"]},
    {"path": "/api/me/**", "resources": ["self"]},
]
# The same table as the operator's TOML file (TILLKEY_FORWARD_AUTH_ROUTES_FILE), for the nginx server.
ROUTES_TOML = """
[[route]]
path = "/public/**"
resources = ["anonymous"]

[[route]]
methods = ["GET"]
path = "/api/products/**"
resources = ["Magento_Catalog::products"]

[[route]]
methods = ["POST", "PUT", "DELETE"]
path = "/api/products/**"
resources = ["Magento_Backend::all"]

[[route]]
path = "/api/orders/*"
resources = ["Magento_Sales::actions_view"]

[[route]]
path = "/api/me/**"
resources = ["self"]
"""


def uid(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["uid"])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """alice (everything), carol (catalog only), the demo customers; the route table above."""
    server = start_oauth_server(
        tmp_path_factory.mktemp(f"fwd-{request.param}"), request.param, TILLKEY_FORWARD_AUTH_ROUTES=json.dumps(ROUTES)
    )
    try:
        yield server
    finally:
        server.stop()
        server.database.drop()


def ask(
    srv: Server, method: str, uri: str, token: str | None = None, *, traefik: bool = False, **headers: str
) -> httpx.Response:
    """What the proxy sends: a GET carrying the original method and URI in headers."""
    sent = (
        {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri}
        if traefik
        else {
            "X-Original-Method": method,
            "X-Original-URI": uri,
        }
    )
    if token:
        sent["Authorization"] = f"Bearer {token}"
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return httpx.get(srv.url + ENDPOINT, headers=sent)


# --- asked directly ------------------------------------------------------------------------------


@pytest.mark.parametrize("traefik", [False, True], ids=["nginx-headers", "traefik-headers"])
def test_allowed_request_gets_200_and_identity_headers(srv: Server, traefik: bool) -> None:
    token = srv.token("admin", "carol", ADMIN_PASSWORD)
    r = ask(srv, "GET", "/api/products/24-MB01?fields=sku", token, traefik=traefik)
    assert r.status_code == 200, r.text
    assert r.content == b""
    assert r.headers["x-tillkey-user-id"] == uid(token)
    assert r.headers["x-tillkey-user-type"] == "admin"
    assert r.headers["x-tillkey-credential"] == "bearer"
    assert "x-tillkey-client-id" not in r.headers and "x-tillkey-scopes" not in r.headers
    # Nobody caches an identity answer: a revocation must apply on the next request.
    assert r.headers["cache-control"] == "no-store"
    # Only the proxy reads a 200 (auth_request_set / authResponseHeaders pick the identity): no
    # browser-facing headers on it. Refusals, which Traefik hands to the browser, keep them.
    assert "x-frame-options" not in r.headers and "content-security-policy" not in r.headers


def test_no_or_bad_credential_is_401_with_a_bearer_challenge(srv: Server) -> None:
    r = ask(srv, "GET", "/api/orders/1")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tillkey"'
    assert r.json()["message"] == "The consumer isn't authorized to access %resources."
    assert r.json()["parameters"] == {"resources": "Magento_Sales::actions_view"}
    bad = ask(srv, "GET", "/api/orders/1", "not-a-token")
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'
    assert "x-tillkey-user-id" not in bad.headers
    for refused in (r, bad):
        assert refused.headers["x-frame-options"] == "DENY" and refused.headers["cache-control"] == "no-store"


def test_known_caller_without_the_resource_is_403(srv: Server) -> None:
    carol = srv.token("admin", "carol", ADMIN_PASSWORD)
    r = ask(srv, "GET", "/api/orders/1", carol)
    assert r.status_code == 403
    assert r.json()["parameters"] == {"resources": "Magento_Sales::actions_view"}
    assert "x-tillkey-user-id" not in r.headers
    customer = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert ask(srv, "GET", "/api/products/24-MB01", customer).status_code == 403


def test_self_routes_admit_customers_and_name_them(srv: Server) -> None:
    roni = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    r = ask(srv, "GET", "/api/me/orders", roni)
    assert r.status_code == 200
    assert (r.headers["x-tillkey-user-type"], r.headers["x-tillkey-user-id"]) == ("customer", uid(roni))
    # `self` is a customer's own records; admins are refused it, as on Tillkey's own routes.
    assert ask(srv, "GET", "/api/me", srv.token("admin", "alice", ADMIN_PASSWORD)).status_code == 403


def test_anonymous_routes_admit_guests_without_an_identity(srv: Server) -> None:
    r = ask(srv, "GET", "/public/catalog.html")
    assert r.status_code == 200
    assert r.headers["x-tillkey-user-type"] == "guest"
    assert "x-tillkey-user-id" not in r.headers
    # A bad token on an anonymous route is a guest, as on Tillkey's own anonymous routes.
    assert ask(srv, "GET", "/public/", "not-a-token").headers["x-tillkey-user-type"] == "guest"
    # A valid one is still named there.
    token = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert ask(srv, "GET", "/public/x", token).headers["x-tillkey-user-id"] == uid(token)


def test_a_request_no_rule_matches_is_403_for_everyone(srv: Server) -> None:
    alice = srv.token("admin", "alice", ADMIN_PASSWORD)
    for caller in (None, alice):
        for uri in ("/", "/admin", "/publicity", "/api/orders/1/items"):
            r = ask(srv, "GET", uri, caller)
            assert r.status_code == 403, (uri, r.text)
            assert r.json()["message"] == "No forward-auth route matches this request."


def test_the_original_method_selects_the_rule(srv: Server) -> None:
    carol = srv.token("admin", "carol", ADMIN_PASSWORD)
    alice = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert ask(srv, "GET", "/api/products/24-MB01", carol).status_code == 200
    assert ask(srv, "HEAD", "/api/products/24-MB01", carol).status_code == 200  # GET rules cover HEAD
    assert ask(srv, "POST", "/api/products", carol).status_code == 403
    assert ask(srv, "delete", "/api/products/24-MB01", carol).status_code == 403
    assert ask(srv, "POST", "/api/products", alice).status_code == 200
    assert ask(srv, "PATCH", "/api/products/24-MB01", alice).status_code == 403  # no rule for PATCH


@pytest.mark.parametrize(
    "uri",
    [
        "/public/../api/orders/1",
        "/public/..%2Fapi/orders/1",
        "/public/%2e%2e/api/orders/1",
        "//api//orders/./1",
        "/api/orders/1/",
        "http://shop.test/api/orders/1?x=/public/a",
    ],
)
def test_paths_are_judged_as_the_proxy_routes_them(srv: Server, uri: str) -> None:
    # Each spelling reaches /api/orders/1, so it needs that route's resource, never /public's anonymous.
    r = ask(srv, "GET", uri)
    assert r.status_code == 401, r.text
    assert r.json()["parameters"] == {"resources": "Magento_Sales::actions_view"}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "needs the original request"),
        ({"X-Original-URI": "/public/x"}, "needs the original request"),
        ({"X-Original-Method": "GET"}, "needs the original request"),
        ({"X-Original-URI": "/public/x", "X-Forwarded-Method": "GET"}, "needs the original request"),
        # A client's own X-Forwarded-* (or X-Original-*) beside the proxy's, naming another request.
        ({"X-Original-Method": "POST", "X-Original-URI": "/p/x", "X-Forwarded-Method": "GET"}, "two different"),
        ({"X-Original-Method": "GET", "X-Original-URI": "/a", "X-Forwarded-Uri": "/public/a"}, "two different"),
        ({"X-Original-Method": "G(T", "X-Original-URI": "/public/x"}, "not an HTTP method"),
        ({"X-Original-Method": "GET", "X-Original-URI": "public/x"}, "must be a path starting with /"),
        ({"X-Original-Method": "GET", "X-Original-URI": "/public/../../etc"}, "climbs above the root"),
        ({"X-Original-Method": "GET", "X-Original-URI": "/public/a%00b"}, "control characters"),
        ({"X-Original-Method": "GET", "X-Original-URI": "/public/%ff"}, "not UTF-8"),
    ],
)
def test_a_missing_or_unusable_original_request_is_400(srv: Server, headers: dict[str, str], why: str) -> None:
    r = httpx.get(srv.url + ENDPOINT, headers=headers)
    assert r.status_code == 400
    assert why in r.json()["message"]


def test_api_keys_and_oauth_clients_are_named_too(srv: Server) -> None:
    key = srv.cli_json(
        "api-key",
        "create",
        "--title",
        "feed",
        "--type",
        "secret",
        "--for",
        "alice",
        "--resource",
        "Magento_Catalog::products",
    )
    sk = {"Authorization": "Basic " + base64.b64encode(f"{key['token']}:".encode()).decode()}
    r = ask(srv, "GET", "/api/products/x", **sk)
    assert r.status_code == 200, r.text
    assert r.headers["x-tillkey-user-type"] == "api_key"
    assert r.headers["x-tillkey-credential"] == "api_key"
    assert ask(srv, "GET", "/api/orders/1", **sk).status_code == 403

    client = register(
        srv,
        "--name",
        "Feed",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
    )
    tok = httpx.post(
        srv.url + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client["client_id"], client["client_secret"]),
    ).json()["access_token"]
    r = ask(srv, "GET", "/api/products/x", tok)
    assert r.status_code == 200, r.text
    assert r.headers["x-tillkey-user-type"] == "oauth_client"
    assert r.headers["x-tillkey-client-id"] == client["client_id"]
    assert r.headers["x-tillkey-scopes"] == "Magento_Catalog::products"
    assert ask(srv, "GET", "/api/orders/1", tok).status_code == 403


def test_session_cookies_work_through_forward_auth(srv: Server) -> None:
    carol = {"email": "carol@example.com", "password": ADMIN_PASSWORD}
    login = httpx.post(f"{srv.url}/auth/user/emailpass", json=carol)
    assert login.status_code == 200, login.text
    made = httpx.post(f"{srv.url}/auth/session", headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert made.status_code == 200, made.text
    cookie = {"Cookie": f"connect.sid={made.cookies['connect.sid']}"}
    r = ask(srv, "GET", "/api/products/24-MB01", **cookie)
    assert r.status_code == 200, r.text
    assert (r.headers["x-tillkey-user-type"], r.headers["x-tillkey-credential"]) == ("admin", "session")
    assert ask(srv, "GET", "/api/orders/1", **cookie).status_code == 403
    # Logged out: the cookie is nobody's any more.
    assert httpx.delete(f"{srv.url}/auth/session", headers=cookie).status_code == 200
    assert ask(srv, "GET", "/api/products/24-MB01", **cookie).status_code == 401


def test_oauth1_signatures_are_checked_against_the_original_request(srv: Server) -> None:
    made = srv.cli_json("integration", "create", "--name", "erp-fwd", "--resource", "Magento_Catalog::products")
    tokens = srv.cli_json("integration", "activate", "erp-fwd")
    signer = OAuth1Client(
        made["consumer_key"],
        made["consumer_secret"],
        tokens["access_token"],
        tokens["access_token_secret"],
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    _, signed, _ = signer.sign("https://shop.test:8443/api/products/24-MB01?fields=sku", "GET")
    proxy = {"X_Forwarded_Host": "shop.test:8443", "X_Forwarded_Proto": "https", **signed}

    # Signed for another path (the proxy's idea of the request differs): refused.
    other = ask(srv, "GET", "/api/products/24-MB02?fields=sku", **proxy)
    assert other.status_code == 401

    r = ask(srv, "GET", "/api/products/24-MB01?fields=sku", **proxy)
    assert r.status_code == 200, r.text
    assert (r.headers["x-tillkey-user-type"], r.headers["x-tillkey-user-id"]) == ("integration", str(made["id"]))
    # The nonce is spent: the same signed request again is a replay.
    assert ask(srv, "GET", "/api/products/24-MB01?fields=sku", **proxy).status_code == 401


def test_denials_are_audited_with_the_original_request(srv: Server) -> None:
    carol = srv.token("admin", "carol", ADMIN_PASSWORD)
    assert ask(srv, "DELETE", "/api/products/MH01-XS-Black", carol).status_code == 403
    alice = srv.client(srv.token("admin", "alice", ADMIN_PASSWORD))

    def found() -> bool:
        items = alice.get("/tillkey/v1/audit", params={"event": "access.denied", "limit": 50}).json()["events"]
        return any(
            i["details"].get("path") == "/api/products/MH01-XS-Black" and i["details"].get("method") == "DELETE"
            for i in items
        )

    eventually(found, within=10, what="the denial reaching the audit log")


def test_the_endpoint_is_documented(srv: Server) -> None:
    op = httpx.get(srv.url + "/openapi.json").json()["paths"][ENDPOINT]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"X-Original-Method", "X-Original-URI", "X-Forwarded-Uri"}
    assert set(op["responses"]["200"]["headers"]) >= {"X-Tillkey-User-Id", "X-Tillkey-User-Type"}


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ('[{"path": "/x", "resources": ["Magento_Nope::x"]}]', "unknown resource id(s) Magento_Nope::x"),
        ('[{"path": "x/*", "resources": ["anonymous"]}]', "must start with /"),
        ('[{"path": "/a/**/b", "resources": ["anonymous"]}]', "** may only be the last segment"),
        ('[{"path": "/a", "resources": []}]', "forward_auth_routes.0.resources"),
        ('[{"path": "/a", "resource": ["anonymous"]}]', "forward_auth_routes.0.resource"),
    ],
)
def test_a_bad_route_table_stops_the_server_with_a_clear_error(tmp_path: Path, routes: str, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")}
    env.update(TILLKEY_DATA_DIR=str(tmp_path), TILLKEY_FORWARD_AUTH_ROUTES=routes)
    res = subprocess.run(
        [TILLKEY, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


# --- through a real nginx ------------------------------------------------------------------------


class Upstream:
    """The protected app: answers every request with what it saw (method, path, X-Tillkey-* headers)."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        seen = self.hits

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                hit = {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "tillkey": {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-tillkey-")},
                }
                seen.append(hit)
                out = json.dumps(hit).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        reason = "nginx is not installed (apt-get install -y nginx)"
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    return found


def nginx_config(tmp: Path, port: int, tillkey_port: int, app_port: int) -> Path:
    """The example, unchanged but for its addresses, inside an http block whose files live in tmp."""
    site = EXAMPLE.read_text()
    for pattern, value in [
        (r"listen 80;", f"listen 127.0.0.1:{port};"),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{tillkey_port};"),
        (r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{app_port};"),
    ]:
        site, n = re.subn(pattern, value, site)
        assert n == 1, f"the example no longer has {pattern!r}"
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


def start_nginx(nginx: str, prefix: Path, conf: Path) -> subprocess.Popen[bytes]:
    """nginx in the foreground on `conf`, its prefix (temp files, error.log) under `prefix`."""
    return subprocess.Popen(
        [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_nginx(proc: subprocess.Popen[bytes], prefix: Path, probe: Callable[[], object]) -> None:
    """Until `probe` (a request through nginx) gets any answer; nginx's output if it exits first."""
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"nginx exited: {out}\n{(prefix / 'error.log').read_text(errors='replace')}")
        try:
            probe()
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)


class Front:
    def __init__(self, tillkey: Server, upstream: Upstream, url: str) -> None:
        self.tillkey = tillkey
        self.upstream = upstream
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request("GET", self.url + path, headers={k.replace("_", "-"): v for k, v in headers.items()})


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    nginx = nginx_binary()
    tmp = tmp_path_factory.mktemp("nginx")
    (tmp / "routes.toml").write_text(ROUTES_TOML)
    tk = start_oauth_server(
        tmp / "tillkey",
        "sqlite",
        TILLKEY_FORWARD_AUTH_ROUTES_FILE=str(tmp / "routes.toml"),
        TILLKEY_TRUSTED_PROXIES="127.0.0.1",
    )
    app = Upstream()
    port = free_port()
    proc = start_nginx(nginx, tmp, nginx_config(tmp, port, tk.port, app.port))
    try:
        wait_for_nginx(proc, tmp, lambda: httpx.get(f"http://127.0.0.1:{port}/public/ping", timeout=1))
        yield Front(tk, app, f"http://127.0.0.1:{port}")
    finally:
        stop_process(proc)
        app.close()
        tk.stop()


def test_nginx_passes_an_allowed_request_with_the_identity_not_the_forged_one(front: Front) -> None:
    token = front.tillkey.token("admin", "carol", ADMIN_PASSWORD)
    r = front.get("/api/products/24-MB01?fields=sku", token, X_Tillkey_User_Id="1", X_Tillkey_Scopes="everything")
    assert r.status_code == 200, r.text
    seen = r.json()
    assert (seen["method"], seen["path"]) == ("GET", "/api/products/24-MB01?fields=sku")
    assert seen["tillkey"] == {
        "x-tillkey-user-id": uid(token),
        "x-tillkey-user-type": "admin",
        "x-tillkey-credential": "bearer",
    }
    assert uid(token) != "1"


def test_nginx_answers_401_without_a_credential_and_the_app_never_sees_it(front: Front) -> None:
    before = len(front.upstream.hits)
    r = front.get("/api/orders/1")
    assert r.status_code == 401
    # nginx hands Tillkey's challenge to the client.
    assert r.headers["www-authenticate"] == 'Bearer realm="tillkey"'
    bad = front.get("/api/orders/1", "not-a-token")
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer realm="tillkey", error="invalid_token"'
    assert len(front.upstream.hits) == before


def test_nginx_answers_403_to_a_limited_admin(front: Front) -> None:
    carol = front.tillkey.token("admin", "carol", ADMIN_PASSWORD)
    before = len(front.upstream.hits)
    assert front.get("/api/orders/1", carol).status_code == 403
    assert front.get("/somewhere/else", carol).status_code == 403
    assert len(front.upstream.hits) == before


def test_nginx_guest_on_a_public_route_carries_no_forged_identity(front: Front) -> None:
    r = front.get("/public/index.html", X_Tillkey_User_Id="1", X_Tillkey_User_Type="admin", X_Tillkey_Credential="x")
    assert r.status_code == 200
    assert r.json()["tillkey"] == {"x-tillkey-user-type": "guest"}


def test_nginx_judges_the_original_method(front: Front) -> None:
    carol = front.tillkey.token("admin", "carol", ADMIN_PASSWORD)
    alice = front.tillkey.token("admin", "alice", ADMIN_PASSWORD)
    body = {"product": {"sku": "X1"}}
    refused = httpx.post(front.url + "/api/products", json=body, headers={"Authorization": f"Bearer {carol}"})
    assert refused.status_code == 403
    r = httpx.post(front.url + "/api/products", json=body, headers={"Authorization": f"Bearer {alice}"})
    assert r.status_code == 200
    assert (r.json()["method"], json.loads(r.json()["body"])) == ("POST", body)
    assert r.json()["tillkey"]["x-tillkey-user-id"] == uid(alice)
    # Traefik's headers, forged by the client, cannot make nginx's question about another request:
    # Tillkey answers 400, which nginx turns into a 500, and the app is not reached.
    before = len(front.upstream.hits)
    forged = {"Authorization": f"Bearer {carol}", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/products/x"}
    assert httpx.post(front.url + "/api/products", json=body, headers=forged).status_code == 500
    assert len(front.upstream.hits) == before


def test_nginx_dot_segments_do_not_borrow_a_public_rule(front: Front) -> None:
    # Sent as is (httpx would resolve the dots first): nginx routes /api/orders/1, Tillkey judges it.
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        conn.request("GET", "/public/../api/orders/1")
        assert conn.getresponse().status == 401
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        # nginx routes these by a literal match (none is /api/orders/ to nginx) and passes them on
        # as sent; an app may serve each as /api/orders/1, so Tillkey judges them as that (401).
        ("/api/orders;x=1/1", 401),
        ("/API/Orders/1", 401),
        ("/api/orders./1", 401),
        ("/api/orders%20/1", 401),
        ("/public/..;/api/orders/1", 401),
        ("/api/orders;jsessionid=x/1?a=/public/b", 401),
        # Refused by Tillkey (400), which nginx turns into a 500; the app never sees them.
        ("/public/..%252Fapi/orders/1", 500),
        ("/api\\orders/1", 500),
        ("/public/..%5Capi/orders/1", 500),
        ("/public/.../api/orders/1", 500),
        ("/public/" + "a/" * 70, 500),
        ("/public/" + "a" * 5000, 500),
    ],
)
def test_nginx_path_spellings_are_judged_as_the_protected_route_or_refused(front: Front, uri: str, status: int) -> None:
    before = len(front.upstream.hits)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        conn.request("GET", uri)
        assert conn.getresponse().status == status
    finally:
        conn.close()
    assert len(front.upstream.hits) == before


def test_nginx_refuses_a_token_as_soon_as_it_is_revoked(front: Front) -> None:
    token = front.tillkey.token("admin", "alice", ADMIN_PASSWORD)
    assert front.get("/api/orders/1", token).status_code == 200
    logout = httpx.post(front.tillkey.url + "/tillkey/v1/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 200
    assert front.get("/api/orders/1", token).status_code == 401


# --- sender-constrained tokens through nginx (issue 20) ------------------------------------------


def _machine(front: Front, name: str, *extra: str) -> dict[str, str]:
    made = register(
        front.tillkey,
        "--name",
        name,
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "Magento_Catalog::products",
        *extra,
    )
    return basic(made["client_id"], made["client_secret"])


def test_nginx_passes_the_dpop_proof_and_tillkey_checks_it_against_the_original_request(front: Front) -> None:
    holder = Holder()
    token_url = front.tillkey.url + "/oauth2/token"  # the issuer is the server's own URL
    r = httpx.post(
        token_url,
        data={"grant_type": "client_credentials"},
        headers={**_machine(front, "DPoP feed"), "DPoP": holder.proof(htu=token_url, iat=time.time())},
    )
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    token = r.json()["access_token"]
    url = front.url + "/api/products/24-MB01"  # what the client asks nginx for
    sent = {"Authorization": f"DPoP {token}", "DPoP": holder.proof("GET", url, iat=time.time(), token=token)}
    ok = httpx.get(url + "?fields=sku", headers=sent)
    assert ok.status_code == 200, ok.text
    assert ok.json()["tillkey"]["x-tillkey-user-type"] == "oauth_client"
    # The same proof again, and a proof for another path: Tillkey's DPoP challenge reaches the client.
    other = holder.proof("GET", front.url + "/api/products/other", iat=time.time(), token=token)
    for headers in (sent, {**sent, "DPoP": other}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401, r.text
        assert (
            r.headers["www-authenticate"].startswith("DPoP ")
            and 'error="invalid_dpop_proof"' in r.headers["www-authenticate"]
        )


def test_a_plain_nginx_never_lets_a_client_send_its_own_certificate_header(front: Front) -> None:
    """Tillkey believes X-SSL-Client-Cert from nginx (TILLKEY_TRUSTED_PROXIES). A certificate is no
    secret: with only the stolen token and the certificate, a client sending the header itself
    through this proxy (which asks for no certificate, so clears the header) still gets 401."""
    _, cert = Authority().issue("machine")
    # The token, as the mTLS proxy would have asked for it (from a trusted peer, with the certificate).
    r = httpx.post(
        front.tillkey.url + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={**_machine(front, "Cert feed", "--cert-bound"), "X-SSL-Client-Cert": escaped(cert)},
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    direct = httpx.get(
        front.tillkey.url + ENDPOINT,
        headers={
            "X-Original-Method": "GET",
            "X-Original-URI": "/api/products/x",
            "Authorization": f"Bearer {token}",
            "X-SSL-Client-Cert": escaped(cert),
        },
    )
    assert direct.status_code == 200, direct.text  # the header, from the trusted proxy, is what binds
    before = len(front.upstream.hits)
    forged = front.get("/api/products/x", token, X_SSL_Client_Cert=escaped(cert), X_SSL_Client_Verify="SUCCESS")
    assert forged.status_code == 401, forged.text
    assert forged.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert len(front.upstream.hits) == before
