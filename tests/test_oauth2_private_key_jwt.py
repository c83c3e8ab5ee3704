"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) in process: a client
registered with its JWKS (inline, or at a jwks_uri on loopback) signs its assertion; every
refusal is the same invalid_client (wrong key, expired, replayed jti, wrong aud, alg none, HS256
keyed with the public key, a secret sent by a private_key_jwt client, an assertion from a secret
client); jwks_uri on a private address and oversize JWKS are refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import inprocess
from tests.inprocess import BASE_URL, InProcess
from tests.oauth2_support import basic, register_async
from tillkey.access.delegation import OPERATOR
from tillkey.errors import InvalidRequest
from tillkey.oauth2.client_assertion import ASSERTION_TYPE

TOKEN_URL = f"{BASE_URL}/oauth2/token"
SCOPE = "Magento_Catalog::products"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        text = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())
    else:
        text = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())
    jwk: dict[str, Any] = json.loads(text)
    return {**jwk, "kid": kid, "use": "sig"}


def assertion(
    key: Any, client_id: str, now: float, *, alg: str = "RS256", kid: str | None = "k1", **claims: Any
) -> str:
    body = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "iat": int(now), "exp": int(now) + 60}
    body["jti"] = secrets.token_urlsafe(16)
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(client_id: str, now: float, alg: str, secret: bytes = b"") -> str:
    """A JWT with alg none, or HS256 keyed with `secret` (the public key: the confusion attack)."""
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": int(now) + 60, "jti": secrets.token_hex(8)}
    head = b64(json.dumps({"alg": alg, "kid": "k1"}).encode()) + "." + b64(json.dumps(claims).encode())
    if alg == "none":
        return head + "."
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def form(client_id: str | None, token: str, **extra: str) -> dict[str, str]:
    out = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
    if client_id is not None:
        out["client_id"] = client_id
    return {**out, **extra}


async def pkjwt_client(t: InProcess, jwks: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / f"jwks-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(jwks))
    args = ["--name", "ERP", "--type", "confidential", "--grant", "client_credentials", "--scope", SCOPE]
    return await register_async(t, *args, "--auth-method", "private_key_jwt", "--jwks-file", str(path))


def refused(r: httpx.Response) -> bool:
    return r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_private_key_jwt_client_credentials_and_every_refusal(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            alice = await t.create_admin("alice")
            key, other = rsa_key(), rsa_key()
            client = await pkjwt_client(t, {"keys": [public_jwk(key, "k1")]}, tmp_path)
            cid = client["client_id"]
            assert "client_secret" not in client and client["token_endpoint_auth_method"] == "private_key_jwt"
            assert client["jwks"]["keys"][0]["kid"] == "k1"
            now = t.clock.now()

            good = assertion(key, cid, now)
            r = await t.client.post("/oauth2/token", data=form(cid, good))
            assert r.status_code == 200, r.text
            assert r.json()["scope"] == SCOPE
            # The same assertion again: its jti is spent.
            assert refused(await t.client.post("/oauth2/token", data=form(cid, good)))
            # The same assertion sent twice at once: the database lets exactly one through.
            twice = assertion(key, cid, now)
            answers = await asyncio.gather(*(t.client.post("/oauth2/token", data=form(cid, twice)) for _ in range(2)))
            assert sorted(a.status_code for a in answers) == [200, 401]
            # client_id may be left out (the assertion's sub names the client); the issuer is an audience too.
            r = await t.client.post("/oauth2/token", data=form(None, assertion(key, cid, now, aud=[BASE_URL])))
            assert r.status_code == 200, r.text

            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            bad = {
                "another key": assertion(other, cid, now),
                "an unknown kid": assertion(key, cid, now, kid="k2"),
                "expired": assertion(key, cid, now - 600, exp=int(now) - 120),
                "no exp": assertion(key, cid, now, exp=None),
                "too long a lifetime": assertion(key, cid, now, exp=int(now) + 7200),
                "issued in the future": assertion(key, cid, now, iat=int(now) + 600, exp=int(now) + 660),
                "iat long before exp": assertion(key, cid, now, iat=int(now) - 7000, exp=int(now) + 60),
                "not yet valid": assertion(key, cid, now, nbf=int(now) + 120),
                "another audience": assertion(key, cid, now, aud="https://elsewhere.example/token"),
                "no jti": assertion(key, cid, now, jti=None),
                "another issuer": assertion(key, cid, now, iss="tkc_someone"),
                "alg none": unsigned(cid, now, "none"),
                "HS256 keyed with the public key": unsigned(cid, now, "HS256", public_pem),
                "garbage": "not.a.jwt",
            }
            for what, token in bad.items():
                r = await t.client.post("/oauth2/token", data=form(cid, token))
                assert refused(r), (what, r.status_code, r.text)
                assert "www-authenticate" not in r.headers  # no Basic challenge to an assertion

            # The wrong assertion type, and a client_id that is not the assertion's sub.
            r = await t.client.post(
                "/oauth2/token", data=form(cid, assertion(key, cid, now), client_assertion_type="urn:x")
            )
            assert refused(r)
            assert refused(await t.client.post("/oauth2/token", data=form("tkc_other", assertion(key, cid, now))))
            # A private_key_jwt client cannot use a secret (it has none; a guess is refused the same way).
            secret_try = {"grant_type": "client_credentials", "client_id": cid, "client_secret": "tk_cs_guess"}
            assert refused(await t.client.post("/oauth2/token", data=secret_try))
            assert refused(
                await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"} | basic(cid, "x"))
            )
            # ... and a secret client cannot authenticate with an assertion.
            args = ["--name", "S", "--type", "confidential", "--grant", "client_credentials", "--scope", SCOPE]
            secret_client = await register_async(t, *args)
            scid = secret_client["client_id"]
            assert secret_client["token_endpoint_auth_method"] == "client_secret_basic"
            assert refused(await t.client.post("/oauth2/token", data=form(scid, assertion(key, scid, now))))
            # Two methods at once is a malformed request.
            both = await t.client.post(
                "/oauth2/token", data=form(cid, assertion(key, cid, now)), headers=basic(scid, "x")
            )
            assert both.status_code == 400

            # Introspection and revocation authenticate the same way.
            token = (await t.client.post("/oauth2/token", data=form(cid, assertion(key, cid, now)))).json()
            auth = {"client_assertion_type": ASSERTION_TYPE}
            r = await t.client.post(
                "/oauth2/introspect",
                data={"token": token["access_token"], **auth, "client_assertion": assertion(key, cid, now)},
            )
            assert r.status_code == 200 and r.json()["active"] is True, r.text
            r = await t.client.post(
                "/oauth2/revoke", data={"token": token["access_token"], **auth, "client_assertion": good}
            )
            assert refused(r)  # the spent jti again
            r = await t.client.post(
                "/oauth2/revoke",
                data={"token": token["access_token"], **auth, "client_assertion": assertion(key, cid, now)},
            )
            assert r.status_code == 200

            metadata = (await t.client.get("/.well-known/openid-configuration")).json()
            assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
            assert "RS256" in metadata["token_endpoint_auth_signing_alg_values_supported"]
            assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]

            # The console and the CLI show each client's auth method.
            console = await t.console_session(alice.id)
            page = (await console.get(f"/console/oauth-clients/{cid}")).text
            assert "Token endpoint auth method" in page and "private_key_jwt" in page
            listing = (await inprocess.cli_json("client", "list"))["clients"]
            assert {c["token_endpoint_auth_method"] for c in listing} == {"private_key_jwt", "client_secret_basic"}

    inprocess.run(body)


def test_registration_refuses_bad_keys_and_private_jwks_uris(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            clients = t.tk.services.clients
            key = rsa_key()

            async def create(**kw: Any) -> None:
                await clients.create(
                    OPERATOR,
                    name="x",
                    client_type=kw.pop("client_type", "confidential"),
                    redirect_uris=[],
                    grant_types=["client_credentials"],
                    scopes=[],
                    **kw,
                )

            jwks = json.dumps({"keys": [public_jwk(key, "k1")]})
            private = jwt.algorithms.RSAAlgorithm.to_jwk(key)
            cases: list[dict[str, Any]] = [
                {"auth_method": "private_key_jwt"},  # no keys
                {"auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://keys.example/jwks"},
                {"auth_method": "private_key_jwt", "jwks": "{"},
                {"auth_method": "private_key_jwt", "jwks": json.dumps({"keys": [json.loads(private)]})},
                {"auth_method": "private_key_jwt", "jwks": json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})},
                {"auth_method": "private_key_jwt", "jwks": json.dumps({"keys": [public_jwk(key, "a" * 70000)]})},
                {"auth_method": "private_key_jwt", "jwks_uri": "https://127.0.0.1/jwks"},
                {"auth_method": "private_key_jwt", "jwks_uri": "https://10.1.2.3/jwks"},
                {"auth_method": "private_key_jwt", "jwks_uri": "http://keys.example/jwks"},
                {"auth_method": "private_key_jwt", "jwks_uri": "https://localhost/jwks"},
                {"auth_method": "private_key_jwt", "jwks": jwks, "client_type": "public"},
                {"jwks": jwks},  # keys without the method
                {"auth_method": "tls_client_auth"},
            ]
            for case in cases:
                with pytest.raises(InvalidRequest):
                    await create(**case)
            await create(auth_method="private_key_jwt", jwks_uri="https://keys.example/jwks")

            # The admin API: the same fields, the same refusals.
            await t.create_admin("alice")
            headers = t.bearer(await t.admin_token("alice"))
            body = {"name": "ERP", "type": "confidential", "grant_types": ["client_credentials"]}
            body |= {"token_endpoint_auth_method": "private_key_jwt", "jwks": json.loads(jwks)}
            r = await t.client.post("/tillkey/v1/oauth2/clients", json=body, headers=headers)
            assert r.status_code == 201, r.text
            made = r.json()
            assert made["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in made
            assert made["jwks"]["keys"][0]["kid"] == "k1" and made["require_pushed_authorization_requests"] is False
            private_uri = {**body, "jwks": None, "jwks_uri": "https://169.254.169.254/jwks"}
            r = await t.client.post("/tillkey/v1/oauth2/clients", json=private_uri, headers=headers)
            assert r.status_code == 400 and "private" in r.text

    inprocess.run(body)


@asynccontextmanager
async def jwks_server(documents: dict[str, bytes]) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A client's key server on loopback: GET /NAME answers documents[NAME] (changeable), and counts."""
    import socket

    import uvicorn

    hits: dict[str, int] = {}

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        hits[name] = hits.get(name, 0) + 1
        return Response(documents.get(name, b"{}"), media_type="application/json")

    app = Starlette(routes=[Route("/{name}", serve)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("the JWKS server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", hits
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_jwks_uri_is_fetched_cached_refetched_on_a_new_kid_and_bounded(tmp_path: Path) -> None:
    async def body() -> None:
        key, rotated = rsa_key(), ec.generate_private_key(ec.SECP256R1())
        docs = {"jwks": json.dumps({"keys": [public_jwk(key, "k1")]}).encode()}
        async with (
            jwks_server(docs) as (base, hits),
            inprocess.running(tmp_path, client_jwks_allow_private_endpoints=True) as t,
        ):
            t.freeze()
            clients = t.tk.services.clients

            async def register(uri: str) -> str:
                done = await clients.create(
                    OPERATOR,
                    name="ERP",
                    client_type="confidential",
                    redirect_uris=[],
                    grant_types=["client_credentials"],
                    scopes=[SCOPE],
                    auth_method="private_key_jwt",
                    jwks_uri=uri,
                )
                await t.tk.poll_changes()
                return done.client.client_id

            cid = await register(f"{base}/jwks")
            now = t.clock.now()
            for _ in range(3):
                r = await t.client.post("/oauth2/token", data=form(cid, assertion(key, cid, now)))
                assert r.status_code == 200, r.text
            assert hits["jwks"] == 1  # cached

            # The client rotates to an EC key: an unknown kid refetches once (no sooner than the
            # minimum refresh interval), then the new key works.
            docs["jwks"] = json.dumps({"keys": [public_jwk(rotated, "k2")]}).encode()
            t.advance(31)
            now = t.clock.now()
            r = await t.client.post(
                "/oauth2/token", data=form(cid, assertion(rotated, cid, now, alg="ES256", kid="k2"))
            )
            assert r.status_code == 200, r.text
            assert hits["jwks"] == 2
            # An unknown kid at once again does not refetch (no refetch storm).
            assert refused(await t.client.post("/oauth2/token", data=form(cid, assertion(key, cid, now, kid="k9"))))
            assert hits["jwks"] == 2
            # ES256 is pinned to the EC P-256 key: an RS256 header naming it is refused.
            assert refused(await t.client.post("/oauth2/token", data=form(cid, assertion(key, cid, now, kid="k2"))))

            # An oversize JWKS is refused (read no further than the limit).
            docs["big"] = json.dumps({"keys": [public_jwk(key, "k1")], "pad": "x" * 100_000}).encode()
            big = await register(f"{base}/big")
            assert refused(await t.client.post("/oauth2/token", data=form(big, assertion(key, big, now))))

        # Without the setting, a loopback jwks_uri is refused when called too (as when registered).
        async with inprocess.running(tmp_path / "strict", client_jwks_allow_private_endpoints=False) as strict:
            keys = strict.tk.services.clients.keys
            from tillkey.oauth2.client_assertion import Rejected

            with pytest.raises(Rejected):
                await keys.keys("http://127.0.0.1:9/jwks")

    inprocess.run(body)
