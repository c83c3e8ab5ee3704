"""Sender-constrained tokens in library mode (issue 20): a host app's route guarded by
`guard.requires(...)` accepts a DPoP-bound token (RFC 9449) only with a fresh proof of its key for
this method and URL, and a certificate-bound token (RFC 8705) only with its certificate passed by a
trusted TLS proxy, through the server's own binding check (credentials/binding.py). Every misuse
gets the server's 401 and challenge. Tokens come from a real in-process Tillkey; the guard reaches
it, and the test reaches the host app, through httpx.ASGITransport; everyone shares the clock."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from tests import inprocess
from tests.dpop_support import Holder
from tests.guard_support import in_process_guard
from tests.inprocess import InProcess
from tests.mtls_support import Authority, escaped
from tillkey.access.delegation import OPERATOR
from tillkey.errors import Unavailable
from tillkey.guard import Guard, MemoryReplayCache
from tillkey.principal import Principal

PRODUCTS = "Magento_Catalog::products"
HOST = "http://backoffice"  # where the test reaches the host app (its own scheme and Host)
CERT_HEADER = "X-SSL-Client-Cert"
CA = Authority()
_, CERT = CA.issue("client-1")
_, OTHER = CA.issue("client-2")
_GUARDS = itertools.count(1)


async def _guard(t: InProcess, **options: Any) -> Guard:
    return await in_process_guard(t, f"guard-{next(_GUARDS)}", **options)


def _host_app(guard: Guard) -> FastAPI:
    """A shop's own catalogue service, protected by the guard."""
    app = FastAPI()
    guard.install(app, lifespan=False)

    @app.get("/catalog/items")
    async def items(who: Principal = Depends(guard.requires(PRODUCTS))) -> dict[str, Any]:  # noqa: B008
        return {"by": who.user_id, "type": int(who.user_type)}

    @app.get("/catalog/public")
    async def public(who: Principal = Depends(guard.requires("anonymous"))) -> dict[str, int]:  # noqa: B008
        return {"type": int(who.user_type)}

    @app.post("/catalog/items")
    async def add(who: Principal = Depends(guard.requires(PRODUCTS))) -> dict[str, bool]:  # noqa: B008
        return {"added": True}

    return app


@asynccontextmanager
async def _serving(guard: Guard, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    await guard.start()
    try:
        transport = httpx.ASGITransport(app=_host_app(guard), client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=HOST) as host:
            yield host
    finally:
        await guard.stop()


async def _machine(t: InProcess, *, cert_bound: bool = False) -> dict[str, str]:
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name=f"machine-{cert_bound}",
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=[PRODUCTS],
        tls_client_certificate_bound_access_tokens=cert_bound,
    )
    await t.tk.poll_changes()
    raw = base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def _token(t: InProcess, basic: dict[str, str], **headers: str) -> str:
    r = await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers={**basic, **headers})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _refused(r: httpx.Response, error: str, message: str | None = None) -> None:
    """The server's refusal: 401, its DPoP challenge, Magento's error body."""
    assert r.status_code == 401, r.text
    assert (
        r.headers["www-authenticate"]
        == f'DPoP algs="ES256 ES384 ES512 EdDSA RS256 RS384 RS512 PS256 PS384 PS512", error="{error}"'
    )
    if message is not None:
        assert r.json() == {"message": message}


def test_a_dpop_bound_token_works_on_a_guarded_route_only_with_a_fresh_proof_of_its_key(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            h = Holder()
            basic = await _machine(t)
            token = await _token(t, basic, DPoP=h.proof(htu=inprocess.BASE_URL + "/oauth2/token", iat=t.clock.now()))
            plain = await _token(t, basic)  # the same client, no proof: an unbound token
            async with _serving(await _guard(t)) as host:
                now = t.clock.now()
                url = HOST + "/catalog/items"

                def dpop(proof: str, tok: str = token) -> dict[str, str]:
                    return {"Authorization": f"DPoP {tok}", "DPoP": proof}

                good = h.proof("GET", url, iat=now, token=token)
                ok = await host.get("/catalog/items", headers=dpop(good))
                assert ok.status_code == 200, ok.text
                assert (
                    await host.get("/catalog/items?page=2", headers=dpop(h.proof("GET", url, iat=now, token=token)))
                ).status_code == 200
                assert (
                    await host.post("/catalog/items", headers=dpop(h.proof("POST", url, iat=now, token=token)))
                ).status_code == 200

                # The same proof again: replayed.
                _refused(
                    await host.get("/catalog/items", headers=dpop(good)),
                    "invalid_dpop_proof",
                    "The DPoP proof is invalid.",
                )
                # As a bearer token: refused as the server refuses it, with the very same body.
                as_bearer = {"Authorization": f"Bearer {token}"}
                on_guard = await host.get("/catalog/items", headers=as_bearer)
                _refused(on_guard, "invalid_token", "This access token is bound: present it as DPoP.")
                on_server = await t.client.get("/rest/V1/products", headers=as_bearer)
                _refused(on_server, "invalid_token")
                assert on_guard.json() == on_server.json()
                # An unbound token presented as DPoP (with a good proof of some key).
                _refused(
                    await host.get("/catalog/items", headers=dpop(h.proof("GET", url, iat=now, token=plain), plain)),
                    "invalid_token",
                    "This access token is not DPoP-bound.",
                )
                # No proof; a proof for another URL, method, host or time; another key; another token.
                _refused(
                    await host.get("/catalog/items", headers={"Authorization": f"DPoP {token}"}), "invalid_dpop_proof"
                )
                for bad in (
                    h.proof("GET", HOST + "/catalog/other", iat=now, token=token),
                    h.proof("POST", url, iat=now, token=token),
                    h.proof("GET", "https://backoffice/catalog/items", iat=now, token=token),
                    h.proof("GET", inprocess.BASE_URL + "/catalog/items", iat=now, token=token),
                    h.proof("GET", url, iat=now - 3600, token=token),
                    h.proof("GET", url, iat=now),  # no ath
                    h.proof("GET", url, iat=now, token=plain),  # the hash of another token
                    Holder().proof("GET", url, iat=now, token=token),  # another key
                ):
                    _refused(await host.get("/catalog/items", headers=dpop(bad)), "invalid_dpop_proof")
                # On a public route too, as on the server: a misused bound token is refused, not ignored.
                _refused(await host.get("/catalog/public", headers=as_bearer), "invalid_token")
                assert (await host.get("/catalog/public")).status_code == 200
                # The plain token still works as Bearer: unbound tokens never meet the check.
                assert (
                    await host.get("/catalog/items", headers={"Authorization": f"Bearer {plain}"})
                ).status_code == 200

    inprocess.run(body)


def test_proofs_name_the_public_url_when_the_guard_is_given_one(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            h = Holder()
            token = await _token(
                t, await _machine(t), DPoP=h.proof(htu=inprocess.BASE_URL + "/oauth2/token", iat=t.clock.now())
            )
            # Behind a TLS proxy: the app receives http://backoffice, the client addresses https://shop.example.
            async with _serving(await _guard(t, public_url="HTTPS://Shop.Example:443/")) as host:
                now = t.clock.now()
                public = h.proof("GET", "https://shop.example/catalog/items", iat=now, token=token)
                r = await host.get("/catalog/items", headers={"Authorization": f"DPoP {token}", "DPoP": public})
                assert r.status_code == 200, r.text
                internal = h.proof("GET", HOST + "/catalog/items", iat=now, token=token)
                _refused(
                    await host.get("/catalog/items", headers={"Authorization": f"DPoP {token}", "DPoP": internal}),
                    "invalid_dpop_proof",
                )
            # A guard whose replay cache is full answers 503 rather than forget a proof.
            async with _serving(await _guard(t, dpop_replay_cache_size=1)) as small:
                now = t.clock.now()
                url = HOST + "/catalog/items"
                for status in (200, 503):
                    proof = h.proof("GET", url, iat=now, token=token)
                    r = await small.get("/catalog/items", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
                    assert r.status_code == status, r.text
                t.advance(70)  # past the first proof's window: room again
                proof = h.proof("GET", url, iat=t.clock.now(), token=token)
                r = await small.get("/catalog/items", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
                assert r.status_code == 200, r.text
            with pytest.raises(ValueError, match="without a path"):
                await _guard(t, public_url="https://shop.example/api")
            with pytest.raises(ValueError, match="absolute http"):
                await _guard(t, public_url="shop.example")

    inprocess.run(body)


def _cert_refused(r: httpx.Response, message: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert r.json() == {"message": message}


def test_a_certificate_bound_token_works_only_with_its_certificate_from_the_trusted_proxy(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, trusted_proxies="127.0.0.1") as t:
            token = await _token(t, await _machine(t, cert_bound=True), **{CERT_HEADER: escaped(CERT)})
            bearer = {"Authorization": f"Bearer {token}"}
            another = "This access token is bound to another client certificate."
            guard = await _guard(t, trusted_proxies="127.0.0.1")
            async with _serving(guard) as host:
                ok = await host.get("/catalog/items", headers={**bearer, CERT_HEADER: escaped(CERT)})
                assert ok.status_code == 200, ok.text
                _cert_refused(
                    await host.get("/catalog/items", headers={**bearer, CERT_HEADER: escaped(OTHER)}), another
                )
                _cert_refused(await host.get("/catalog/items", headers=bearer), another)
                _cert_refused(await host.get("/catalog/items", headers={**bearer, CERT_HEADER: "garbage"}), another)
            # The same guard's app, reached from a peer that is not the proxy: the header is dropped.
            async with _serving(await _guard(t, trusted_proxies="127.0.0.1"), peer="10.1.2.3") as around:
                _cert_refused(
                    await around.get("/catalog/items", headers={**bearer, CERT_HEADER: escaped(CERT)}), another
                )
            # A guard told of no TLS proxy reads no certificate, and says so.
            async with _serving(await _guard(t)) as blind:
                _cert_refused(
                    await blind.get("/catalog/items", headers={**bearer, CERT_HEADER: escaped(CERT)}),
                    "This access token is bound to a client certificate, and this service reads none "
                    "(no trusted TLS proxy is configured).",
                )

    inprocess.run(body)


def test_the_replay_cache_forgets_expired_proofs_and_refuses_when_full() -> None:
    async def body() -> None:
        now = [1000.0]
        cache = MemoryReplayCache(lambda: now[0], max_entries=2)
        assert await cache.first_sight("a", 1065.0)
        assert not await cache.first_sight("a", 1065.0)
        assert await cache.first_sight("b", 1070.0)
        with pytest.raises(Unavailable):
            await cache.first_sight("c", 1070.0)
        now[0] = 1065.0  # a's time is over: room again, b still remembered
        assert await cache.first_sight("c", 1080.0)
        assert not await cache.first_sight("b", 1070.0)
        assert len(cache) == 2

    asyncio.run(body())
