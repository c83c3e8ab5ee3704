"""Using a DPoP-bound token (RFC 9449 §7) through the one binding check (credentials/binding.py):
`Authorization: DPoP <token>` with a proof of its key for this method and URL is accepted on the
protected surfaces, userinfo and forward-auth; everything an attacker holding only the token (or an
old proof) tries next is refused with a `DPoP` challenge."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from jwt.algorithms import ECAlgorithm
from starlette.requests import Request

from tests import inprocess
from tests.dpop_support import Holder
from tests.oauth2_support import async_authorize, pkce_pair, query, seed_oauth_app
from tillkey.access.delegation import OPERATOR
from tillkey.credentials.dpop import access_token_hash, thumbprint

BASE = inprocess.BASE_URL
TOKEN_URL = BASE + "/oauth2/token"
PRODUCTS = "/rest/V1/products"
FORWARD = "/tillkey/v1/forward-auth"


async def _bound_token(t: inprocess.InProcess, h: Holder) -> str:
    return (await _bound_token_and_client(t, h))[0]


async def _machine(t: inprocess.InProcess) -> str:
    """A client-credentials client reaching the catalogue: its HTTP Basic credentials (base64)."""
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name="machine",
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["Magento_Catalog::products"],
    )
    await t.tk.poll_changes()
    return base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()


async def _bound_token_and_client(t: inprocess.InProcess, h: Holder) -> tuple[str, dict[str, str]]:
    raw = await _machine(t)
    r = await t.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}", "DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())},
    )
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    return str(r.json()["access_token"]), {"Authorization": f"Basic {raw}"}


def _unsigned(h: Holder, url: str, now: float, token: str) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"jti": "n1", "htm": "GET", "htu": url, "iat": int(now), "ath": access_token_hash(token)}
    return f"{b64({'typ': 'dpop+jwt', 'alg': 'none', 'jwk': h.public})}.{b64(claims)}."


def _private_jwk(h: Holder) -> dict[str, Any]:
    return dict(json.loads(ECAlgorithm.to_jwk(h.key)))


def _challenge(r: object, error: str) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == 401, r.text
    www = r.headers.get("www-authenticate", "")
    assert www.startswith("DPoP ") and f'error="{error}"' in www, www


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_a_bound_token_works_only_with_its_keys_fresh_proof(tmp_path: Path, fmt: str) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path, oauth2_access_token_format=fmt) as t:
            t.freeze()
            h = Holder()
            token = await _bound_token(t, h)
            now = t.clock.now()
            url = BASE + PRODUCTS

            def dpop(proof: str) -> dict[str, str]:
                return {"Authorization": f"DPoP {token}", "DPoP": proof}

            good = h.proof("GET", url, iat=now, token=token)
            ok = await t.client.get(PRODUCTS, headers=dpop(good))
            assert ok.status_code == 200, ok.text
            # The same token again (the token cache serves it), with a new proof.
            assert (
                await t.client.get(PRODUCTS, headers=dpop(h.proof("GET", url, iat=now, token=token)))
            ).status_code == 200
            # As a bearer token: refused, with a DPoP challenge.
            _challenge(await t.client.get(PRODUCTS, headers={"Authorization": f"Bearer {token}"}), "invalid_token")
            _challenge(
                await t.client.get(PRODUCTS, headers={"Authorization": f"bearer {token}", "DPoP": good}),
                "invalid_token",
            )
            # No proof; a replayed proof; a proof for another URL, method or query-less variant.
            _challenge(await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}"}), "invalid_dpop_proof")
            _challenge(await t.client.get(PRODUCTS, headers=dpop(good)), "invalid_dpop_proof")
            for bad in (
                h.proof("GET", BASE + "/rest/V1/orders", iat=now, token=token),
                h.proof("POST", url, iat=now, token=token),
                h.proof("GET", url + "/", iat=now, token=token),
                h.proof("GET", "https://evil.example" + PRODUCTS, iat=now, token=token),
                h.proof("GET", url, iat=now - 3600, token=token),
                h.proof("GET", url, iat=now),  # no ath
                h.proof("GET", url, iat=now, token=token + "x"),  # the hash of another token
                Holder().proof("GET", url, iat=now, token=token),  # another key
                "x.y.z",
                _unsigned(h, url, now, token),  # alg none
                h.proof("GET", url, iat=now, token=token, header={"jwk": _private_jwk(h)}),  # private key in jwk
                h.proof("GET", url, iat=now, token=token, header={"typ": "JWT"}),
            ):
                _challenge(await t.client.get(PRODUCTS, headers=dpop(bad)), "invalid_dpop_proof")
            # The query string is not part of htu.
            ok = await t.client.get(
                PRODUCTS + "?searchCriteria[pageSize]=1", headers=dpop(h.proof("GET", url, iat=now, token=token))
            )
            assert ok.status_code == 200, ok.text
            # Two DPoP headers.
            two = [
                ("Authorization", f"DPoP {token}"),
                ("DPoP", h.proof("GET", url, iat=now, token=token)),
                ("DPoP", h.proof("GET", url, iat=now, token=token)),
            ]
            _challenge(await t.client.get(PRODUCTS, headers=two), "invalid_dpop_proof")

    inprocess.run(go)


def test_an_unbound_token_is_not_accepted_as_dpop(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            alice = await t.create_admin("alice", resources=["Magento_Catalog::products"])
            token = await t.oauth_token(alice.id, ["Magento_Catalog::products"])
            h = Holder()
            proof = h.proof("GET", BASE + PRODUCTS, iat=t.clock.now(), token=token)
            _challenge(
                await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}", "DPoP": proof}), "invalid_token"
            )
            assert (await t.client.get(PRODUCTS, headers={"Authorization": f"Bearer {token}"})).status_code == 200

    inprocess.run(go)


def test_forward_auth_checks_the_proof_against_the_original_request(tmp_path: Path) -> None:
    routes = [{"path": "/rest/V1/products", "resources": ["Magento_Catalog::products"]}]

    async def go() -> None:
        async with inprocess.running(tmp_path, forward_auth_routes=routes) as t:
            t.freeze()
            h = Holder()
            token = await _bound_token(t, h)
            now = t.clock.now()
            original = "https://shop.example" + PRODUCTS
            asked = {
                "X-Forwarded-Method": "GET",
                "X-Forwarded-Uri": PRODUCTS + "?searchCriteria[pageSize]=1",
                "X-Forwarded-Host": "shop.example",
                "X-Forwarded-Proto": "https",
                "Authorization": f"DPoP {token}",
            }
            ok = await t.client.get(FORWARD, headers={**asked, "DPoP": h.proof("GET", original, iat=now, token=token)})
            assert ok.status_code == 200, ok.text
            for bad in (
                h.proof("GET", BASE + FORWARD, iat=now, token=token),  # the forward-auth URL itself
                h.proof("GET", BASE + PRODUCTS, iat=now, token=token),  # another host
                h.proof("POST", original, iat=now, token=token),  # another method
                Holder().proof("GET", original, iat=now, token=token),
            ):
                _challenge(await t.client.get(FORWARD, headers={**asked, "DPoP": bad}), "invalid_dpop_proof")
            bearer = {**asked, "Authorization": f"Bearer {token}"}
            _challenge(await t.client.get(FORWARD, headers=bearer), "invalid_token")

    inprocess.run(go)


def test_userinfo_and_medusa_with_a_bound_token_from_the_code_flow(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            await seed_oauth_app(t)
            reg = await t.tk.services.clients.create(
                OPERATOR,
                name="spa",
                client_type="public",
                redirect_uris=["https://app.example/cb"],
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "admin_self"],
            )
            await t.tk.poll_changes()
            cid = reg.client.client_id
            verifier, challenge = pkce_pair()
            url = (
                f"/oauth2/authorize?response_type=code&client_id={cid}&redirect_uri=https://app.example/cb"
                f"&scope=openid%20admin_self&state=s&code_challenge={challenge}&code_challenge_method=S256"
            )
            code = query(await async_authorize(t, url))["code"]
            t.freeze()
            h = Holder()
            r = await t.client.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": "https://app.example/cb",
                    "client_id": cid,
                    "code_verifier": verifier,
                },
                headers={"DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())},
            )
            token = r.json()["access_token"]
            info = BASE + "/oauth2/userinfo"
            ok = await t.client.get(
                "/oauth2/userinfo",
                headers={
                    "Authorization": f"DPoP {token}",
                    "DPoP": h.proof("GET", info, iat=t.clock.now(), token=token),
                },
            )
            assert ok.status_code == 200 and ok.json()["sub"], ok.text
            _challenge(
                await t.client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"}), "invalid_token"
            )
            other = Holder().proof("GET", info, iat=t.clock.now(), token=token)
            _challenge(
                await t.client.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": other}),
                "invalid_dpop_proof",
            )

            # Medusa's admin API, through the credential registry.
            me = BASE + "/admin/users/me"
            ok = await t.client.get(
                "/admin/users/me",
                headers={"Authorization": f"DPoP {token}", "DPoP": h.proof("GET", me, iat=t.clock.now(), token=token)},
            )
            assert ok.status_code == 200, ok.text
            r = await t.client.get("/admin/users/me", headers={"Authorization": f"Bearer {token}"})
            _challenge(r, "invalid_token")

    inprocess.run(go)


def test_introspection_tells_the_binding(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            h = Holder()
            token, basic = await _bound_token_and_client(t, h)
            r = await t.client.post("/oauth2/introspect", data={"token": token}, headers=basic)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["active"] is True and body["token_type"] == "DPoP"
            assert body["cnf"] == {"jkt": thumbprint(h.public)}

    inprocess.run(go)


def test_magento_graphql_with_a_bound_token(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            h = Holder()
            token = await _bound_token(t, h)
            url = BASE + "/graphql"
            query = {"query": "{ tillkey }"}
            proof = h.proof("POST", url, iat=t.clock.now(), token=token)
            ok = await t.client.post("/graphql", json=query, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
            assert ok.status_code == 200 and "errors" not in ok.json(), ok.text
            _challenge(
                await t.client.post("/graphql", json=query, headers={"Authorization": f"Bearer {token}"}),
                "invalid_token",
            )
            replayed = await t.client.post(
                "/graphql", json=query, headers={"Authorization": f"DPoP {token}", "DPoP": proof}
            )
            _challenge(replayed, "invalid_dpop_proof")

    inprocess.run(go)


def test_logout_revokes_a_bound_token_presented_with_its_proof(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            h = Holder()
            token = await _bound_token(t, h)
            logout = BASE + "/tillkey/v1/logout"
            r = await t.client.post("/tillkey/v1/logout", headers={"Authorization": f"Bearer {token}"})
            _challenge(r, "invalid_token")
            proof = h.proof("POST", logout, iat=t.clock.now(), token=token)
            r = await t.client.post("/tillkey/v1/logout", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
            assert r.status_code == 200 and r.json() == {"revoked": True}, r.text
            proof = h.proof("GET", BASE + PRODUCTS, iat=t.clock.now(), token=token)
            r = await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
            assert r.status_code == 401

    inprocess.run(go)


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_magento_customer_token_with_a_proof_is_bound_and_so_is_its_refresh_cookie(tmp_path: Path, fmt: str) -> None:
    """Tillkey's extension: Magento's customer token endpoint with a DPoP proof."""

    async def go() -> None:
        async with inprocess.running(tmp_path, token_format=fmt) as t:
            await t.create_customer("ada@example.com")
            t.freeze()
            h = Holder()
            login = "/rest/V1/integration/customer/token"
            creds = {"username": "ada@example.com", "password": inprocess.CUSTOMER_PASSWORD}
            bad = await t.client.post(
                login, json=creds, headers={"DPoP": h.proof(htu=BASE + "/oauth2/token", iat=t.clock.now())}
            )
            assert bad.status_code == 400, bad.text
            r = await t.client.post(login, json=creds, headers={"DPoP": h.proof(htu=BASE + login, iat=t.clock.now())})
            assert r.status_code == 200, r.text
            token = r.json()
            assert (await t.tk.authenticator.read(token)).cnf == {"jkt": thumbprint(h.public)}
            me = BASE + "/rest/V1/customers/me"
            ok = await t.client.get(
                "/rest/V1/customers/me",
                headers={"Authorization": f"DPoP {token}", "DPoP": h.proof("GET", me, iat=t.clock.now(), token=token)},
            )
            assert ok.status_code == 200 and ok.json()["email"] == "ada@example.com", ok.text
            _challenge(
                await t.client.get("/rest/V1/customers/me", headers={"Authorization": f"Bearer {token}"}),
                "invalid_token",
            )
            # The refresh cookie's family is bound too: no proof or another key's is refused (unspent).
            cookie = {"Cookie": f"tillkey_refresh={r.cookies['tillkey_refresh']}"}
            refresh = "/rest/V1/integration/token/refresh"
            assert (await t.client.post(refresh, headers=cookie)).status_code == 400
            other = Holder().proof(htu=BASE + refresh, iat=t.clock.now())
            assert (await t.client.post(refresh, headers={**cookie, "DPoP": other})).status_code == 400
            renewed = await t.client.post(
                refresh, headers={**cookie, "DPoP": h.proof(htu=BASE + refresh, iat=t.clock.now())}
            )
            assert renewed.status_code == 200, renewed.text
            assert (await t.tk.authenticator.read(renewed.json())).cnf == {"jkt": thumbprint(h.public)}

    inprocess.run(go)


def test_htu_names_the_path_as_sent(tmp_path: Path) -> None:
    """A percent-escaped slash stays escaped: the proof must name the path the client sent, under
    the issuer's origin, without the query."""

    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/rest/V1/products/24/MB01",
                "raw_path": b"/rest/V1/products/24%2FMB01",
                "query_string": b"x=1",
                "headers": [(b"host", b"evil.example")],
                "scheme": "http",
                "server": ("evil.example", 80),
            }
            assert t.tk.binding.urls_of(Request(scope)) == (BASE + "/rest/V1/products/24%2FMB01",)

    inprocess.run(go)


def test_a_proof_may_name_the_mtls_alias_of_the_same_endpoint(tmp_path: Path) -> None:
    """RFC 8705 §5 + RFC 9449 §4.3: a client sent to the mTLS alias (TILLKEY_MTLS_BASE_URL) by
    discovery signs that URL; the token endpoint and every protected route accept a proof naming
    either of this server's origins for the request's path, and nothing else."""
    alias = "https://mtls.auth.example:8443"

    async def go() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="10.9.9.9", mtls_base_url=alias + "/") as t:
            t.freeze()
            h = Holder()
            raw = await _machine(t)
            now = t.clock.now()

            async def token_with(htu: str) -> Any:
                return await t.client.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {raw}", "DPoP": h.proof(htu=htu, iat=now)},
                )

            r = await token_with(alias + "/oauth2/token")
            assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
            token = r.json()["access_token"]
            for other in ("https://mtls.auth.example/oauth2/token", "https://evil.example:8443/oauth2/token"):
                bad = await token_with(other)
                assert bad.status_code == 400 and bad.json()["error"] == "invalid_dpop_proof", bad.text
            for origin in (alias, BASE):
                proof = h.proof("GET", origin + PRODUCTS, iat=now, token=token)
                ok = await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
                assert ok.status_code == 200, ok.text
            wrong = h.proof("GET", alias + "/rest/V1/orders", iat=now, token=token)
            _challenge(
                await t.client.get(PRODUCTS, headers={"Authorization": f"DPoP {token}", "DPoP": wrong}),
                "invalid_dpop_proof",
            )

    inprocess.run(go)
