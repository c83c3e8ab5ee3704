"""The library guard follows the server's keys without letting made-up key ids reach the server."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI

from tests import inprocess
from tests.guard_support import in_process_guard
from tillkey.principal import Principal

INVALID_TOKEN_CHALLENGE = 'Bearer realm="tillkey", error="invalid_token"'


class CountsKeyReads(httpx.AsyncBaseTransport):
    """Passes requests on to the app and counts the JWKS reads."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.jwks_reads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            self.jwks_reads += 1
        return await self.inner.handle_async_request(request)


def test_unknown_kids_refresh_the_keys_at_most_once_per_interval(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            assert t.transport is not None
            transport = CountsKeyReads(t.transport)
            guard = await in_process_guard(t, "guard", transport=transport, jwks_refresh_interval=30.0)
            app = FastAPI()
            guard.install(app, lifespan=False)

            @app.get("/report")
            async def report(who: Principal = Depends(guard.requires("Magento_Sales::sales"))) -> dict[str, int]:  # noqa: B008
                return {"uid": who.user_id}

            await guard.start()
            try:
                at_start = transport.jwks_reads
                assert at_start == 1
                now = int(time.time())
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
                    for _ in range(5):
                        impostor = ec.generate_private_key(ec.SECP256R1())
                        claims = {
                            "uid": 1,
                            "utypid": 2,
                            "iat": now,
                            "exp": now + 3600,
                            "jti": secrets.token_hex(16),
                            "iss": inprocess.BASE_URL,
                        }
                        token = jwt.encode(claims, impostor, algorithm="ES256", headers={"kid": secrets.token_hex(8)})
                        r = await client.get("/report", headers={"Authorization": f"Bearer {token}"})
                        assert r.status_code == 401
                        assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE
                # The first unknown kid re-read the keys (a rotation would be found); the next four did not.
                assert transport.jwks_reads == at_start + 1
            finally:
                await guard.stop()

    inprocess.run(body)
