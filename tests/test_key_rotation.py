"""Signing-key rotation: publish ahead, sign, verify through a grace period, then leave the JWKS.

The verifier here is PyJWT's PyJWKClient, a JWKS-caching verifier nobody here wrote, holding the
key set it fetched before the rotation.
"""

from __future__ import annotations

import json

import httpx
import jwt

from tests.conftest import ADMIN_PASSWORD, Server
from tests.polling import eventually

ROUTE = "/rest/V1/store/websites"


def _kids(srv: Server) -> set[str]:
    return {k["kid"] for k in httpx.get(f"{srv.url}/.well-known/jwks.json").json()["keys"]}


def _status(srv: Server, token: str) -> int:
    return httpx.get(srv.url + ROUTE, headers={"Authorization": f"Bearer {token}"}).status_code


def test_rotation_keeps_cached_verifiers_working_and_retires_the_old_key(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    old_token = srv.token("admin", "alice", ADMIN_PASSWORD)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    # A verifier that refreshes its cached key set only when it ages out (3 s here, 300 s as the
    # JWKS's max-age says in real life), never on an unknown kid: rotation must publish ahead.
    verifier = jwt.PyJWKClient(f"{srv.url}/.well-known/jwks.json", lifespan=3, cooldown_duration=3600)
    verifier.get_signing_key(old_kid)  # the verifier's cache now holds the pre-rotation key set

    rotated = srv.cli_json("keys", "rotate", "--publish-ahead", "4", "--grace", "4")
    new_kid = rotated["kid"]
    assert rotated["replaced"] == [old_kid] and new_kid != old_kid
    # Published at once (within the sync interval), while the old key still signs.
    eventually(lambda: _kids(srv) == {old_kid, new_kid}, within=3)
    states = {k["kid"]: k["state"] for k in srv.cli_json("keys", "list")["keys"]}
    assert states == {old_kid: "signing", new_kid: "pending"}

    # Once the new key signs, new tokens carry its kid; the old token still works (grace).
    eventually(
        lambda: jwt.get_unverified_header(srv.token("admin", "alice", ADMIN_PASSWORD))["kid"] == new_kid, within=8
    )
    new_token = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert _status(srv, old_token) == 200 and _status(srv, new_token) == 200
    for token in (old_token, new_token):
        kid = jwt.get_unverified_header(token)["kid"]
        key = verifier.get_signing_key(kid).key
        claims = jwt.decode(token, key, algorithms=["ES256"], options={"verify_iss": False})
        assert claims["uid"] > 0

    # After the grace period the old key leaves the JWKS and its tokens are refused.
    eventually(lambda: _status(srv, old_token) == 401, within=8)
    assert _kids(srv) == {new_kid}
    assert _status(srv, new_token) == 200
    states = {k["kid"]: k["state"] for k in srv.cli_json("keys", "list")["keys"]}
    assert states == {old_kid: "retired", new_kid: "signing"}
    lines = srv.cli("audit", "search", "--event", "key.rotated", "--json").stdout.splitlines()
    assert [json.loads(line)["details"]["kid"] for line in lines] == [new_kid]


def test_retiring_the_signing_key_ends_its_tokens_at_once_and_a_new_key_signs(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    token = srv.token("admin", "alice", ADMIN_PASSWORD)
    kid = jwt.get_unverified_header(token)["kid"]
    assert _status(srv, token) == 200  # and now it sits in the verified-token cache

    retired = srv.cli_json("keys", "retire", kid)
    assert retired["replacement"] and retired["replacement"] != kid
    eventually(lambda: _status(srv, token) == 401, within=3)
    assert kid not in _kids(srv)
    fresh = srv.token("admin", "alice", ADMIN_PASSWORD)
    assert jwt.get_unverified_header(fresh)["kid"] == retired["replacement"]
    assert _status(srv, fresh) == 200

    r = srv.cli("keys", "retire", "no-such-kid", check=False)
    assert r.returncode == 1 and "no-such-kid" in r.stderr
