"""Library mode: examples/library_app.py, guarded by tillkey.guard, against a live Tillkey server.

Everything goes over real HTTP on loopback: the example app runs as its own uvicorn process,
verifies tokens with the server's JWKS and polls the server's auth-state feed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import tests.conftest as conftest_module
from tests.conftest import ADMIN_PASSWORD, CUSTOMER_PASSWORD, VENV_BIN, Server, free_port, start_server, stop_process
from tests.polling import eventually
from tillkey.guard import Guard, GuardError

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "http://tillkey.test"  # what conftest's servers put in "iss"
GUARD_PASSWORD = "Feed-pass-4-tests"
INVENTORY = "Magento_CatalogInventory::cataloginventory"
NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."
CHALLENGE = 'Bearer realm="tillkey"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="tillkey", error="invalid_token"'
POLL = 0.3  # the example app's auth-state poll interval in these tests


# --- helpers ------------------------------------------------------------------------------------


def cli_batch(srv: Server, *commands: list[str]) -> None:
    for args in commands:
        srv.cli(*args)


def admin(username: str, role: str | None, password: str = ADMIN_PASSWORD) -> list[str]:
    cmd = ["admin", "create", "--username", username, "--email", f"{username}@example.com", "--password", password]
    return [*cmd, "--role", role] if role else cmd


def prepare(srv: Server, *commands: list[str]) -> None:
    """The feed account (role Guards: Tillkey::auth_state only), the demo data, and more."""
    cli_batch(
        srv,
        ["role", "create", "Guards", "--resource", "Tillkey::auth_state"],
        admin("guard", "Guards", GUARD_PASSWORD),
        ["demo", "seed", "--customer-password", CUSTOMER_PASSWORD],
        *commands,
    )


@dataclass
class GuardedApp:
    """examples/library_app.py running as its own process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        stop_process(self.proc)


def app_env(srv: Server, **knobs: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLKEY_")}
    env.update(
        {
            "TILLKEY_URL": srv.url,
            "TILLKEY_GUARD_USERNAME": "guard",
            "TILLKEY_GUARD_PASSWORD": GUARD_PASSWORD,
            "TILLKEY_GUARD_ISSUER": ISSUER,
            "TILLKEY_GUARD_POLL_INTERVAL": str(POLL),
            "TILLKEY_GUARD_MAX_STALENESS": "30",
        }
    )
    env.update(knobs)
    return env


def launch_app(srv: Server, log_dir: Path, *, as_script: bool = False, **knobs: str) -> GuardedApp:
    """Start the example app; `uvicorn examples.library_app:app`, or `python examples/library_app.py`."""
    port = free_port()
    if as_script:
        cmd = [sys.executable, str(ROOT / "examples" / "library_app.py"), "--port", str(port)]
    else:
        cmd = [str(VENV_BIN / "uvicorn"), "examples.library_app:app", "--host", "127.0.0.1", "--port", str(port)]
    log_path = log_dir / f"app-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=app_env(srv, **knobs), stdout=log, stderr=subprocess.STDOUT)
    return GuardedApp(proc, port, log_path)


def start_app(srv: Server, log_dir: Path, *, as_script: bool = False, **knobs: str) -> GuardedApp:
    app = launch_app(srv, log_dir, as_script=as_script, **knobs)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            raise AssertionError(f"example app exited ({app.proc.returncode}):\n{app.log()}")
        try:
            if app.get("/public/ping").status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    app.stop()
    raise AssertionError(f"example app did not start:\n{app.log()}")


def wait_for_status(probe: Callable[[], httpx.Response], status: int, within: float) -> httpx.Response:
    """Call probe until it answers `status`; fail if that takes longer than `within` seconds."""

    def answered() -> tuple[httpx.Response]:
        r = probe()
        assert r.status_code == status, f"expected {status}, still {r.status_code}: {r.text}"
        return (r,)

    return eventually(answered, within=within, what=f"status {status}")[0]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(uid: int, utype: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "uid": uid,
        "utypid": utype,
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_hex(16),
        "iss": ISSUER,
        "amr": ["pwd"],
    }


def unverified(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def jwks(srv: Server) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = httpx.get(srv.url + "/.well-known/jwks.json").json()["keys"]
    return keys


def restart_on_same_port(srv: Server, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The guard knows the server by URL, so a restarted server must come back where it was."""
    port = srv.port
    monkeypatch.setattr(conftest_module, "free_port", lambda: port)
    srv.restart(**env)


# --- one server and one guarded app for the tests that only add state of their own -------------


@dataclass
class World:
    srv: Server
    app: GuardedApp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("guard")
    # The access log (off by default) counts the guard's JWKS fetches in test_unknown_kids_….
    srv = start_server(tmp / "srv", TILLKEY_ACCESS_LOG="true")
    try:
        prepare(
            srv,
            ["role", "create", "Inventory", "--resource", INVENTORY],
            ["role", "create", "Catalog", "--resource", "Magento_Catalog::catalog"],
            ["role", "create", "Stock", "--resource", INVENTORY],
            admin("alice", None),
            admin("ivan", "Inventory"),
            admin("carol", "Catalog"),
            admin("dave", "Inventory"),
            admin("sam", "Stock"),
        )
        app = start_app(srv, tmp)
        try:
            yield World(srv, app)
        finally:
            app.stop()
    finally:
        srv.stop()


# --- admitted and refused callers ---------------------------------------------------------------


def test_granted_admins_reach_the_route(world: World) -> None:
    for username in ("alice", "ivan"):  # everything, and exactly the inventory resource
        token = world.srv.token("admin", username, ADMIN_PASSWORD)
        r = world.app.get("/inventory/report", token)
        assert r.status_code == 200, r.text
        assert r.json()["requested_by_admin"] == unverified(token)["uid"]


def test_known_callers_without_the_resource_get_403(world: World) -> None:
    body = {"message": NOT_AUTHORIZED, "parameters": {"resources": INVENTORY}}
    carol = world.srv.token("admin", "carol", ADMIN_PASSWORD)  # Catalog role: no inventory config
    customer = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    for token in (carol, customer):
        r = world.app.get("/inventory/report", token)
        assert r.status_code == 403
        assert r.json() == body
        assert "www-authenticate" not in r.headers
    # `self` is a customer's own data: admins are refused it, as on the server.
    r = world.app.get("/me", carol)
    assert r.status_code == 403
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "self"}}


def test_customer_reaches_their_own_route(world: World) -> None:
    token = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    r = world.app.get("/me", token)
    assert r.status_code == 200
    assert r.json() == {"customer_id": unverified(token)["uid"], "token_expires_at": unverified(token)["exp"]}


def test_no_token_is_401_with_a_bearer_challenge(world: World) -> None:
    r = world.app.get("/inventory/report")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == CHALLENGE
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": INVENTORY}}
    r = world.app.get("/me")
    assert r.status_code == 401
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "self"}}


def test_the_guard_answers_like_the_server(world: World) -> None:
    """Same declaration, same answer: the server's own /V1/customers/me also requires `self`."""
    carol = world.srv.token("admin", "carol", ADMIN_PASSWORD)
    for token in (None, "garbage", carol):
        ours = world.app.get("/me", token)
        theirs = httpx.get(
            world.srv.url + "/rest/V1/customers/me", headers={"Authorization": f"Bearer {token}"} if token else {}
        )
        assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())
        assert ours.headers.get("www-authenticate") == theirs.headers.get("www-authenticate")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "eyJhbGciOiJub25lIn0.eyJ1aWQiOjEsInV0eXBpZCI6MiwiaWF0IjoxLCJqdGkiOiJ4In0.",
        "tk_at_" + "x" * 43,  # an opaque token: only the server can look those up
        "x" * 10000,
    ],
)
def test_unreadable_tokens_are_401_invalid_token(world: World, token: str) -> None:
    r = world.app.get("/inventory/report", token)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": INVENTORY}}


def test_anonymous_route_serves_everyone_and_bad_tokens_as_guests(world: World) -> None:
    assert world.app.get("/public/ping").json() == {"pong": True, "caller_type": 4}
    assert world.app.get("/public/ping", "garbage").json() == {"pong": True, "caller_type": 4}
    customer = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert world.app.get("/public/ping", customer).json() == {"pong": True, "caller_type": 3}


def test_tokens_signed_by_another_key_are_rejected(world: World) -> None:
    alice = world.srv.token("admin", "alice", ADMIN_PASSWORD)
    uid = unverified(alice)["uid"]
    kid = jwt.get_unverified_header(alice)["kid"]
    assert world.app.get("/inventory/report", alice).status_code == 200

    # Right kid, right claims, wrong private key.
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims(uid, 2), impostor, algorithm="ES256", headers={"kid": kid})
    # Algorithm confusion: HS256 "signed" with the server's public key as the HMAC secret.
    public = jwt.PyJWK(next(k for k in jwks(world.srv) if k["kid"] == kid)).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "."
    signing_input += b64(json.dumps(claims(uid, 2)).encode())
    confused = signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    for token in (forged, confused):
        r = world.app.get("/inventory/report", token)
        assert r.status_code == 401, token
        assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


def test_customer_revocation_reaches_the_guard(world: World) -> None:
    john = world.srv.token("customer", "john.smith@example.com", CUSTOMER_PASSWORD)
    roni = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert world.app.get("/me", john).status_code == 200

    with world.srv.client(john) as c:
        r = c.post("/rest/V1/integration/customer/revoke-customer-token")
        assert r.status_code == 200, r.text
    r = wait_for_status(lambda: world.app.get("/me", john), 401, within=2)
    assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": "self"}}
    # Nobody else is signed out, and John can sign in again.
    assert world.app.get("/me", roni).status_code == 200
    again = world.srv.token("customer", "john.smith@example.com", CUSTOMER_PASSWORD)
    assert world.app.get("/me", again).status_code == 200


def test_per_token_logout_reaches_the_guard(world: World) -> None:
    phone = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    laptop = world.srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
    assert world.app.get("/me", phone).status_code == 200
    with world.srv.client(phone) as c:
        assert c.post("/tillkey/v1/logout").json() == {"revoked": True}
    wait_for_status(lambda: world.app.get("/me", phone), 401, within=2)
    assert world.app.get("/me", laptop).status_code == 200  # only that one token is revoked


def test_deactivated_admin_is_refused_within_seconds(world: World) -> None:
    dave = world.srv.token("admin", "dave", ADMIN_PASSWORD)
    assert world.app.get("/inventory/report", dave).status_code == 200
    world.srv.cli("admin", "deactivate", "dave")
    r = wait_for_status(lambda: world.app.get("/inventory/report", dave), 401, within=2)
    assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


def test_role_changes_reach_the_guard_without_a_new_login(world: World) -> None:
    sam = world.srv.token("admin", "sam", ADMIN_PASSWORD)
    assert world.app.get("/inventory/report", sam).status_code == 200
    world.srv.cli("role", "revoke", "Stock", "--resource", INVENTORY)
    r = wait_for_status(lambda: world.app.get("/inventory/report", sam), 403, within=2)
    assert r.json() == {"message": NOT_AUTHORIZED, "parameters": {"resources": INVENTORY}}
    world.srv.cli("role", "grant", "Stock", "--resource", INVENTORY)
    wait_for_status(lambda: world.app.get("/inventory/report", sam), 200, within=2)


# --- failing closed, recovering, following key rotation -----------------------------------------


@pytest.mark.serial  # bounds how long it serves stale: alone, not beside the parallel pass
def test_fails_closed_after_max_staleness_and_recovers(
    sqlite_server_factory: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    max_staleness = 3.0
    srv = sqlite_server_factory()
    prepare(srv)
    app = start_app(srv, tmp_path, as_script=True, TILLKEY_GUARD_MAX_STALENESS=str(max_staleness))
    try:
        roni = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
        assert app.get("/me", roni).status_code == 200

        stop_began = time.monotonic()
        srv.stop()
        stopped = time.monotonic()
        # Until the bound, the guard keeps answering from memory...
        seen: list[tuple[float, int]] = []
        while True:
            r = app.get("/me", roni)
            seen.append((time.monotonic(), r.status_code))
            if r.status_code != 200 or time.monotonic() > stopped + max_staleness + 3:
                break
            time.sleep(0.05)
        first_refusal, status = seen[-1]
        assert status == 503, f"expected 503 after the bound, got {status}: {r.text}"
        # ...not a moment less than max_staleness after the last feed request that could have
        # succeeded (at most one poll before the stop began), and promptly after the bound.
        assert first_refusal >= stop_began + max_staleness - POLL - 0.5, seen
        assert first_refusal <= stopped + max_staleness + 1.0, seen
        assert r.json() == {"message": "The service is temporarily unavailable. Please try again later."}
        assert r.headers["retry-after"] == "1"
        # Every protected route fails closed, whatever the credential; public ones still answer.
        assert app.get("/inventory/report").status_code == 503
        assert app.get("/me", "garbage").status_code == 503
        assert app.get("/public/ping", roni).json() == {"pong": True, "caller_type": 4}

        restart_on_same_port(srv, monkeypatch)
        wait_for_status(lambda: app.get("/me", roni), 200, within=3)
    finally:
        app.stop()
    assert "protected routes answer 503 until it is refreshed" in app.log()
    assert "auth-state feed reachable again" in app.log()


def test_follows_key_rotation_on_the_server(
    sqlite_server_factory: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = sqlite_server_factory()
    prepare(srv)
    app = start_app(srv, tmp_path)
    try:
        before = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
        assert app.get("/me", before).status_code == 200
        # A new algorithm means a new signing key: tokens from now on name a kid the guard has not seen.
        restart_on_same_port(srv, monkeypatch, TILLKEY_JWT_ALG="EdDSA")
        after = srv.token("customer", "roni_cost@example.com", CUSTOMER_PASSWORD)
        assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
        assert app.get("/me", after).status_code == 200
        assert app.get("/me", before).status_code == 200  # the old key is still published
    finally:
        app.stop()


# --- refusing to start --------------------------------------------------------------------------


def test_refuses_to_start_against_an_hs256_server(sqlite_server_factory: Callable[..., Server], tmp_path: Path) -> None:
    srv = sqlite_server_factory(TILLKEY_JWT_ALG="HS256")
    app = launch_app(srv, tmp_path)
    try:
        app.proc.wait(30)
    finally:
        app.stop()
    assert app.proc.returncode != 0
    assert "publishes no public keys" in app.log()
    assert "HS256" in app.log()


def start_guard(url: str, **kwargs: Any) -> None:
    options: dict[str, Any] = {"issuer": ISSUER, "feed_username": "guard", "feed_password": GUARD_PASSWORD}
    options.update(kwargs)
    guard = Guard(url, **options)

    async def go() -> None:
        await guard.start()
        await guard.stop()

    asyncio.run(go())


def test_start_succeeds_with_the_feed_account(world: World) -> None:
    start_guard(world.srv.url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"feed_password": "wrong-password"}, "cannot log in the feed account 'guard': HTTP 401"),
        ({"feed_username": "ivan", "feed_password": ADMIN_PASSWORD}, "its role must grant Tillkey::auth_state"),
        ({"issuer": None}, "carry iss='http://tillkey.test'"),
    ],
)
def test_start_fails_loudly_on_a_bad_setup(world: World, options: dict[str, Any], message: str) -> None:
    with pytest.raises(GuardError, match=re.escape(message)):
        start_guard(world.srv.url, **options)


def test_start_fails_loudly_when_the_server_is_unreachable() -> None:
    with pytest.raises(GuardError, match="cannot fetch the signing keys"):
        start_guard(f"http://127.0.0.1:{free_port()}")


def test_declarations_are_checked_like_the_servers() -> None:
    guard = Guard("http://127.0.0.1:1", feed_username="guard", feed_password="x")
    with pytest.raises(ValueError, match="Magento_Nope::nothing"):
        guard.requires("Magento_Nope::nothing")
    with pytest.raises(ValueError, match="anonymous"):
        guard.requires()
    with pytest.raises(ValueError, match="max_staleness"):
        Guard("http://127.0.0.1:1", feed_username="guard", feed_password="x", poll_interval=5, max_staleness=5)
