"""Provider presets (issue 14): `tillkey idp add --preset google|entra|apple|github` fills the
endpoints; Apple's client secret is an ES256 JWT made from the team id, key id and .p8 key;
GitHub's plain OAuth 2 flow runs against a small fake GitHub in this process (GitHub Enterprise
Server's layout: /login/oauth/* and the REST API under /api/v3)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import inprocess
from tests.federation_support import STOREFRONT_CALLBACK
from tillkey.access.delegation import OPERATOR
from tillkey.errors import InvalidRequest
from tillkey.federation import presets
from tillkey.federation.providers import NewProvider
from tillkey.store import idps as repo

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GH_ID, GH_SECRET = "Iv1.tillkeytest", "gh-secret-0123456789"


def _new(**fields: Any) -> NewProvider:
    base = {
        "name": "p",
        "issuer": "",
        "client_id": "shop-client",
        "client_secret": "s",
        "actor": "customer",
        "redirect_uri": STOREFRONT_CALLBACK,
        "provisioning": "jit",
    }
    return NewProvider(**{**base, **fields})


def test_presets_fill_the_endpoints(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            providers = t.tk.services.identity_providers
            google = await providers.add(OPERATOR, _new(name="google", preset="google"))
            assert (google.issuer, google.protocol, google.display_name) == (
                "https://accounts.google.com",
                "oidc",
                "Google",
            )
            # Google's documentation: its ID tokens say "accounts.google.com" or the https form.
            assert presets.issuers(google) == ["https://accounts.google.com", "accounts.google.com"]
            entra = await providers.add(OPERATOR, _new(name="entra", preset="entra", settings={"tenant": TENANT}))
            assert entra.issuer == f"https://login.microsoftonline.com/{TENANT}/v2.0" and entra.settings == {
                "tenant": TENANT
            }
            for tenant in ("common", "organizations", "contoso.onmicrosoft.com", ""):
                with pytest.raises(InvalidRequest, match="tenant"):
                    await providers.add(OPERATOR, _new(name="e2", preset="entra", settings={"tenant": tenant}))
            with pytest.raises(InvalidRequest, match="leave --issuer out"):
                await providers.add(OPERATOR, _new(name="g2", preset="google", issuer="https://evil.example"))
            gh = await providers.add(OPERATOR, _new(name="gh", preset="github"))
            assert (gh.issuer, gh.protocol, gh.scope) == ("https://github.com", "github", "read:user user:email")
            assert presets.issuers(entra) == [entra.issuer] and presets.issuers(gh) == [gh.issuer]
            assert await t.tk.services.relying_party.check(gh) == {
                "issuer": "https://github.com",
                "authorization_endpoint": "https://github.com/login/oauth/authorize",
                "token_endpoint": "https://github.com/login/oauth/access_token",
                "user_api": "https://api.github.com",
            }
            with pytest.raises(InvalidRequest, match="preset must be one of"):
                await providers.add(OPERATOR, _new(name="x", preset="okta"))

    inprocess.run(body)


def _p8() -> tuple[str, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode(), key.public_key()


def test_apple_client_secret_is_a_jwt_signed_with_the_p8_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)
    pem, public = _p8()
    p8 = tmp_path / "AuthKey_ABC123DEFG.p8"
    p8.write_text(pem)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            added = await inprocess.cli_json(
                "idp",
                "add",
                "--name",
                "apple",
                "--preset",
                "apple",
                "--client-id",
                "com.shop.signin",
                "--team-id",
                "TEAM123456",
                "--key-id",
                "ABC123DEFG",
                "--private-key-file",
                str(p8),
                "--actor",
                "customer",
                "--redirect-uri",
                "https://shop.example/auth/apple",
            )
            assert added["issuer"] == "https://appleid.apple.com" and added["scope"] == "openid email name"
            assert added["settings"] == {"team_id": "TEAM123456", "key_id": "ABC123DEFG"}
            assert added["has_client_secret"] is True and "PRIVATE KEY" not in json.dumps(added)
            provider = await t.tk.services.identity_providers.get("apple")
            assert provider.client_secret_enc is not None and b"PRIVATE KEY" not in provider.client_secret_enc

            secret = t.tk.services.identity_providers.client_secret(provider)
            assert secret is not None
            assert jwt.get_unverified_header(secret) == {"alg": "ES256", "kid": "ABC123DEFG", "typ": "JWT"}
            claims = jwt.decode(
                secret,
                public,
                algorithms=["ES256"],
                audience="https://appleid.apple.com",
                issuer="TEAM123456",
                options={"verify_exp": False},
            )
            assert claims["sub"] == "com.shop.signin" and claims["iat"] == t.tk.clock.now_int()
            assert 0 < claims["exp"] - claims["iat"] <= 3600
            with pytest.raises(jwt.InvalidSignatureError):
                jwt.decode(
                    secret,
                    ec.generate_private_key(ec.SECP256R1()).public_key(),
                    algorithms=["ES256"],
                    audience="https://appleid.apple.com",
                )

            # What Apple needs, refused clearly: an admin provider, a key that is no P-256 key, no ids.
            bad = await inprocess.cli(
                "idp",
                "add",
                "--name",
                "apple2",
                "--preset",
                "apple",
                "--client-id",
                "c",
                "--team-id",
                "TEAM123456",
                "--key-id",
                "ABC123DEFG",
                "--private-key-file",
                str(p8),
                "--actor",
                "admin",
                check=False,
            )
            assert bad.exit_code == 1 and "for customers" in bad.stderr
            for settings, secret_text, words in (
                ({"team_id": "TEAM123456", "key_id": "ABC123DEFG"}, "not a key", "PEM"),
                ({"team_id": "x", "key_id": "ABC123DEFG"}, pem, "--team-id"),
            ):
                with pytest.raises(InvalidRequest, match=words):
                    await t.tk.services.identity_providers.add(
                        OPERATOR, _new(name="apple3", preset="apple", settings=settings, client_secret=secret_text)
                    )

    inprocess.run(body)


class FakeGitHub:
    """GitHub's OAuth app endpoints and the two REST calls Tillkey makes, as GitHub answers them
    (errors from the token endpoint come with HTTP 200, as GitHub sends them)."""

    def __init__(self) -> None:
        self.emails: list[dict[str, Any]] = []
        self.codes: dict[str, str] = {}  # code -> PKCE challenge
        self.token = "gho_fake0123456789"
        gh = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _json(self, doc: Any, status: int = 200) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                if url.path == "/login/oauth/authorize":
                    assert query["client_id"] == GH_ID and query["code_challenge_method"] == "S256"
                    code = f"code-{len(gh.codes)}"
                    gh.codes[code] = query["code_challenge"]
                    back = {"code": code, "state": query["state"]}
                    self.send_response(302)
                    self.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
                    self.end_headers()
                elif self.headers.get("Authorization") != f"Bearer {gh.token}":
                    self._json({"message": "Bad credentials"}, 401)
                elif url.path == "/api/v3/user":
                    self._json({"login": "octo", "id": 4242, "name": "Octo Cat", "email": None})
                elif url.path == "/api/v3/user/emails":
                    self._json(gh.emails)
                else:
                    self._json({"message": "Not Found"}, 404)

            def do_POST(self) -> None:
                form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
                challenge = gh.codes.pop(form.get("code", ""), None)
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                verified = base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
                if self.path != "/login/oauth/access_token" or "json" not in self.headers.get("Accept", ""):
                    self._json({"message": "Not Found"}, 404)
                elif (form.get("client_id"), form.get("client_secret")) != (GH_ID, GH_SECRET):
                    self._json({"error": "incorrect_client_credentials"})
                elif challenge is None or not verified:
                    self._json({"error": "bad_verification_code"})
                else:
                    self._json({"access_token": gh.token, "token_type": "bearer", "scope": "read:user,user:email"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    try:
        yield gh
    finally:
        gh.server.shutdown()


async def _github_callback(t: inprocess.InProcess) -> dict[str, str]:
    """Storefront: POST /auth/customer/gh → location; the browser at GitHub comes back with code and state."""
    r = await t.client.post("/auth/customer/gh", json={})
    assert r.status_code == 200, r.text
    location = r.json()["location"]
    assert "nonce=" not in location  # no ID token to carry one back
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        back = await browser.get(location)
    assert back.status_code == 302 and back.headers["location"].startswith(STOREFRONT_CALLBACK)
    return dict(parse_qsl(urlsplit(back.headers["location"]).query))


def test_github_sign_in_trusts_only_a_verified_primary_email(tmp_path: Path, github: FakeGitHub) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, federation_allow_private_endpoints=True) as t:
            await t.tk.services.identity_providers.add(
                OPERATOR,
                _new(
                    name="gh",
                    preset="github",
                    issuer=github.url,
                    client_id=GH_ID,
                    client_secret=GH_SECRET,
                ),
            )
            # The primary address is unverified (a verified one that is not primary does not count).
            github.emails = [
                {"email": "octo@shop.example", "primary": True, "verified": False, "visibility": "private"},
                {"email": "other@shop.example", "primary": False, "verified": True, "visibility": None},
            ]
            query = await _github_callback(t)
            assert (await t.client.get("/auth/customer/gh/callback", params=query)).status_code == 401

            github.emails[0]["verified"] = True
            query = await _github_callback(t)
            r = await t.client.get("/auth/customer/gh/callback", params=query)
            assert r.status_code == 200, r.text
            registration = r.json()["token"]
            claims = jwt.decode(registration, options={"verify_signature": False})
            assert claims["idp"] == "gh" and "fed" in claims["amr"]
            # The same state again (a replayed callback): nothing found.
            assert (await t.client.get("/auth/customer/gh/callback", params=query)).status_code == 401
            provider = await t.tk.services.identity_providers.get("gh")
            async with t.tk.db.session() as s:
                linked = await repo.identity(s, provider.id, "4242")  # GitHub's numeric id, not the login
            assert linked is not None and linked.email == "octo@shop.example"

            key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
            shop = {"x-publishable-api-key": key.token}
            r = await t.client.post(
                "/store/customers", json={"first_name": "Octo"}, headers={**t.bearer(registration), **shop}
            )
            assert r.status_code == 200 and r.json()["customer"]["email"] == "octo@shop.example", r.text

            # A code GitHub refuses (wrong secret stored): a 401, never a 500.
            await t.tk.services.identity_providers.remove("gh")
            await t.tk.services.identity_providers.add(
                OPERATOR,
                _new(
                    name="gh",
                    preset="github",
                    issuer=github.url,
                    client_id=GH_ID,
                    client_secret="wrong",
                ),
            )
            query = await _github_callback(t)
            assert (await t.client.get("/auth/customer/gh/callback", params=query)).status_code == 401

    inprocess.run(body)
