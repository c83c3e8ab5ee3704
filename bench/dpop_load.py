"""DPoP figures for `make bench`: the same protected route called with a bearer token and with a
DPoP-bound token (RFC 9449) in the same run, by the same client, so the two lines compare.

wrk cannot sign a fresh proof per request, so this drives httpx from Python: the proofs (ES256, one
per request, unique `jti`) are signed before the clock starts, and bearer and DPoP rounds alternate
(ABBA). Requests/s are this client's, lower than wrk's; the server CPU per request is the figure
that compares (what verifying the proof and writing its `jti` to the replay table cost).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tillkey.credentials.dpop import access_token_hash

CONCURRENCY = 16


class Prover:
    """A client's ES256 DPoP key and the proofs it signs."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._jwk = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = access_token_hash(token)
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self._jwk})


def tokens(base: str, client_id: str, client_secret: str, prover: Prover) -> tuple[str, str, str]:
    """(issuer, bearer token, DPoP-bound token) of the client-credentials client."""
    issuer = str(httpx.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()["issuer"])
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    form = {"grant_type": "client_credentials"}
    bearer = httpx.post(base + "/oauth2/token", data=form, headers=headers, timeout=10).json()
    bound = httpx.post(
        base + "/oauth2/token",
        data=form,
        headers={**headers, "DPoP": prover.proof("POST", issuer + "/oauth2/token")},
        timeout=10,
    ).json()
    if bearer.get("token_type") != "Bearer" or bound.get("token_type") != "DPoP":
        raise RuntimeError(f"unexpected token responses: {bearer.get('token_type')}, {bound.get('token_type')}")
    return issuer, str(bearer["access_token"]), str(bound["access_token"])


async def _round(base: str, path: str, headers: list[dict[str, str]]) -> tuple[float, list[float], int]:
    """(wall seconds, latencies in ms, non-2xx) of one request per headers entry, CONCURRENCY at a time."""
    latencies: list[float] = []
    bad = 0
    queue = iter(headers)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal bad
            for h in queue:
                t0 = time.perf_counter()
                r = await client.get(path, headers=h)
                latencies.append((time.perf_counter() - t0) * 1000)
                bad += r.status_code >= 300

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start, latencies, bad


def measure(
    base: str,
    client_id: str,
    client_secret: str,
    path: str,
    *,
    requests: int,
    rounds: int,
    cpu: Callable[[], Any],
    account: Callable[[Any, Any, int], tuple[float, float]],
) -> dict[str, dict[str, float]]:
    """Per kind ("bearer", "dpop"): medians over `rounds` of req/s, p50/p99 ms and server CPU us/req.
    `cpu()` snapshots the server's CPU; `account(before, after, n)` gives (others' share, us/req)."""
    prover = Prover()
    issuer, bearer, bound = tokens(base, client_id, client_secret, prover)
    got: dict[str, list[tuple[float, float, float, float]]] = {"bearer": [], "dpop": []}
    for i in range(rounds + 1):  # round 0 warms up (connections, the token cache)
        for kind in ("bearer", "dpop") if i % 2 == 0 else ("dpop", "bearer"):
            if kind == "bearer":
                headers = [{"Authorization": f"Bearer {bearer}"}] * requests
            else:
                url = issuer + path
                headers = [
                    {"Authorization": f"DPoP {bound}", "DPoP": prover.proof("GET", url, bound)} for _ in range(requests)
                ]
            before = cpu()
            wall, latencies, bad = asyncio.run(_round(base, path, headers))
            _, cpu_us = account(before, cpu(), requests)
            if bad:
                raise RuntimeError(f"{kind}: {bad} of {requests} responses were not 2xx")
            if i:
                q = statistics.quantiles(latencies, n=100)
                got[kind].append((requests / wall, q[49], q[98], cpu_us))
    return {
        kind: {
            "rps": statistics.median(s[0] for s in samples),
            "p50_ms": statistics.median(s[1] for s in samples),
            "p99_ms": statistics.median(s[2] for s in samples),
            "cpu_us": statistics.median(s[3] for s in samples),
        }
        for kind, samples in got.items()
    }
