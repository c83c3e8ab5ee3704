"""ID tokens an honest OpenID provider would never send, each refused (and audited) by the relying
party (federation/oidc.py): a tiny provider in this process serves discovery, JWKS and a token
endpoint answering whatever ID token the test crafts. The flow itself (state, nonce, PKCE) is
Tillkey's own, started through POST /auth/customer/{provider}."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests import inprocess
from tests.federation_support import CLIENT_ID, CLIENT_SECRET, STOREFRONT_CALLBACK
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.federation.providers import Changes, NewProvider
from tillkey.store import idps as idps_repo
from tillkey.store.audit import AuditQuery


class FakeProvider:
    """Discovery, JWKS and a token endpoint; `mint` makes the next ID token from the nonce."""

    def __init__(self) -> None:
        self.keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("a", "b")}
        self.published = ["a"]
        self.mint: Callable[[str], str] = lambda nonce: ""
        self.nonce = ""
        self.userinfo: dict[str, Any] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _json(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._json(
                        {
                            "issuer": provider.issuer,
                            "authorization_endpoint": provider.issuer + "/authorize",
                            "token_endpoint": provider.issuer + "/token",
                            "jwks_uri": provider.issuer + "/jwks",
                            "userinfo_endpoint": provider.issuer + "/userinfo",
                            "authorization_response_iss_parameter_supported": True,
                        }
                    )
                elif self.path == "/userinfo" and self.headers.get("Authorization") == "Bearer at":
                    self._json(provider.userinfo)
                elif self.path == "/jwks":
                    self._json({"keys": [provider.jwk(kid) for kid in provider.published]})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self._json({"access_token": "at", "token_type": "Bearer", "id_token": provider.mint(provider.nonce)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwk(self, kid: str) -> dict[str, Any]:
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
        return {**public, "kid": kid, "alg": "RS256", "use": "sig"}

    def claims(self, nonce: str, /, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": "user1@shop.example",
            "email_verified": True,
        }
        return {k: v for k, v in {**base, **changes}.items() if v is not None}

    def signed(self, claims: dict[str, Any], kid: str = "a", key: str | None = None) -> str:
        return jwt.encode(claims, self.keys[key or kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    try:
        yield provider
    finally:
        provider.server.shutdown()


def _none(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "a"})  # type: ignore[arg-type]


async def _attempt(
    t: inprocess.InProcess,
    fake: FakeProvider,
    mint: Callable[[str], str],
    *,
    iss: bool = True,
    back_to: str = "fake",
    wait: float = 0,
) -> int:
    """Start at provider "fake", let `mint` make its ID token, and return (after `wait` seconds)
    to provider `back_to`'s callback."""
    r = await t.client.post("/auth/customer/fake", json={})
    assert r.status_code == 200, r.text
    query = dict(parse_qsl(urlsplit(r.json()["location"]).query))
    assert query["code_challenge_method"] == "S256" and query["code_challenge"] and query["nonce"]
    fake.nonce, fake.mint = query["nonce"], mint
    params = {"code": "c0de", "state": query["state"], **({"iss": fake.issuer} if iss else {})}
    t.advance(wait)
    answer = await t.client.get(f"/auth/customer/{back_to}/callback", params=params)
    assert answer.status_code in (200, 401), answer.text  # a refusal, never a 500
    return answer.status_code


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_forged_id_tokens_are_refused(backend: str, tmp_path: Path, fake: FakeProvider) -> None:
    cases: dict[str, Callable[[str], str]] = {
        "alg none": lambda n: _none(fake.claims(n)),
        "signed by another key under the published kid": lambda n: fake.signed(fake.claims(n), kid="a", key="b"),
        "HS256 keyed with the client secret": lambda n: jwt.encode(
            fake.claims(n), CLIENT_SECRET, algorithm="HS256", headers={"kid": "a"}
        ),
        "another audience": lambda n: fake.signed(fake.claims(n, aud="someone-else")),
        "another issuer": lambda n: fake.signed(fake.claims(n, iss="https://other.example")),
        "another nonce": lambda n: fake.signed(fake.claims("not-" + n)),
        "no nonce": lambda n: fake.signed(fake.claims(n, nonce=None)),
        "expired": lambda n: fake.signed(fake.claims(n, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)),
        "azp of another client": lambda n: fake.signed(fake.claims(n, aud=[CLIENT_ID, "x"], azp="x")),
        "not a JWT": lambda n: "garbage",
    }

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True, **db) as t:
            await t.tk.services.identity_providers.add(
                OPERATOR,
                NewProvider(
                    name="fake",
                    issuer=fake.issuer,
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                    actor="customer",
                    redirect_uri=STOREFRONT_CALLBACK,
                    provisioning="jit",
                ),
            )
            checked = await t.tk.services.relying_party.check(await t.tk.services.identity_providers.get("fake"))
            assert checked["keys"] == 1 and checked["iss_parameter"] is True  # what `tillkey idp test` shows
            refused = {name: await _attempt(t, fake, mint) for name, mint in cases.items()}
            assert refused == dict.fromkeys(cases, 401)
            honest = lambda n: fake.signed(fake.claims(n))  # noqa: E731
            # RFC 9207: this provider sends iss, so a response without one is a mix-up.
            assert await _attempt(t, fake, honest, iss=False) == 401
            # A flow started at one provider, returned to another's callback (mix-up by state).
            await t.tk.services.identity_providers.add(
                OPERATOR,
                NewProvider(
                    name="other",
                    issuer=fake.issuer,
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                    actor="customer",
                    redirect_uri=STOREFRONT_CALLBACK,
                    provisioning="jit",
                ),
            )
            assert await _attempt(t, fake, honest, back_to="other") == 401
            # The same provider's honest token passes (the refusals were about the tokens).
            assert await _attempt(t, fake, lambda n: fake.signed(fake.claims(n))) == 200
            # Keys rotated at the provider: an unknown kid refetches the JWKS once, then verifies.
            fake.published = ["a", "b"]
            rotated = lambda n: fake.signed(fake.claims(n), kid="b")  # noqa: E731
            # Within TILLKEY_FEDERATION_JWKS_MIN_REFRESH of the last fetch: no refetch (no storm).
            assert await _attempt(t, fake, rotated) == 401
            t.advance(31)  # past TILLKEY_FEDERATION_JWKS_MIN_REFRESH since the last fetch
            assert await _attempt(t, fake, rotated) == 200
            # Past TILLKEY_FEDERATION_FLOW_TTL the state is dead (the last: the clock moves on).
            assert await _attempt(t, fake, honest, wait=601) == 401
            failures = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, limit=100))
            assert len(failures) == len(cases) + 4
            reasons = [json.loads(f.details or "{}") for f in failures]
            assert {r["provider"] for r in reasons} == {"fake", "other"}
            assert any("another provider's flow" in r["reason"] for r in reasons)
            assert any("expired" in r["reason"] for r in reasons)

    with inprocess.database(backend, tmp_path) as db:
        inprocess.run(body)


def test_userinfo_is_merged_only_for_the_same_subject(tmp_path: Path, fake: FakeProvider) -> None:
    """--userinfo: the userinfo endpoint's claims (asked with the access token) fill in what the ID
    token lacks; an answer about another `sub` is refused whole (OpenID Connect Core §5.3.4)."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await t.tk.services.identity_providers.add(
                OPERATOR,
                NewProvider(
                    name="fake",
                    issuer=fake.issuer,
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                    actor="customer",
                    redirect_uri=STOREFRONT_CALLBACK,
                    provisioning="jit",
                    userinfo=True,
                ),
            )
            bare = lambda n: fake.signed(fake.claims(n, email=None, email_verified=None))  # noqa: E731
            fake.userinfo = {"sub": "user-2", "email": "ui@shop.example", "email_verified": True}
            assert await _attempt(t, fake, bare) == 401  # another user's claims
            # Entra ID's "groups overage": the groups are elsewhere (a distributed claim), so no
            # role could be mapped from them; refused rather than mapped to the default.
            await t.tk.services.identity_providers.update(OPERATOR, "fake", Changes(groups_claim="groups"))
            overage = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://x"}}}
            fake.userinfo = {"sub": "user-1"}
            assert await _attempt(t, fake, lambda n: fake.signed(fake.claims(n, **overage))) == 401
            await t.tk.services.identity_providers.update(OPERATOR, "fake", Changes(groups_claim=""))
            # The ID token's email, unverified, is not made verified by the userinfo's answer.
            fake.userinfo = {"sub": "user-1", "email": "other@shop.example", "email_verified": True}
            unverified = lambda n: fake.signed(fake.claims(n, email_verified=False))  # noqa: E731
            assert await _attempt(t, fake, unverified) == 401
            fake.userinfo = {"sub": "user-1", "email": "ui@shop.example", "email_verified": True, "name": "U I"}
            assert await _attempt(t, fake, bare) == 200
            provider = await t.tk.services.identity_providers.get("fake")
            async with t.tk.db.session() as s:
                linked = await idps_repo.identity(s, provider.id, "user-1")
            assert linked is not None and linked.email == "ui@shop.example"
            failures = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, limit=10))
            reasons = sorted(json.loads(f.details or "{}")["reason"] for f in failures)
            assert any("userinfo sub 'user-2'" in r for r in reasons) and any("not verified" in r for r in reasons)
            assert any("distributed claim" in r for r in reasons)

    inprocess.run(body)


def test_a_customer_with_a_second_factor_is_refused_not_failed(tmp_path: Path, fake: FakeProvider) -> None:
    """A redirect flow has no step to ask for a code: a customer who set up a second factor signs in
    through a provider only when it is trusted to check one (amr), else a clear 401, never a 500."""

    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True, customer_2fa="optional") as t:
            await t.tk.services.identity_providers.add(
                OPERATOR,
                NewProvider(
                    name="fake",
                    issuer=fake.issuer,
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                    actor="customer",
                    redirect_uri=STOREFRONT_CALLBACK,
                    allowed_domains=["shop.example"],
                    trust_email_domains=True,
                    mfa_from_amr=True,
                ),
            )
            await t.create_customer("user1@shop.example")
            r = await t.client.post(
                "/auth/customer/emailpass",
                json={"email": "user1@shop.example", "password": inprocess.CUSTOMER_PASSWORD},
            )
            token = r.json()["token"]
            r = await t.client.post("/auth/mfa/factors", json={"provider": "totp"}, headers=t.bearer(token))
            factor, secret = r.json()["mfa_factor"]["id"], r.json()["secret"]
            r = await t.client.post(
                f"/auth/mfa/factors/{factor}/verify", json={"code": t.totp_code(secret)}, headers=t.bearer(token)
            )
            assert r.status_code == 200, r.text
            assert await _attempt(t, fake, lambda n: fake.signed(fake.claims(n))) == 401
            failures = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, limit=10))
            assert any("second factor due" in (f.details or "") for f in failures)
            # The provider checked a second factor and is trusted to say so: signed in.
            assert await _attempt(t, fake, lambda n: fake.signed(fake.claims(n, amr=["pwd", "mfa"]))) == 200

    inprocess.run(body)
