"""DPoP proof verification (RFC 9449, credentials/dpop.py): every check a proof must pass, the
variants an attacker tries, and the replay cache shared through the database (store/replay.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from tests import inprocess
from tests.dpop_support import Holder
from tillkey.credentials.dpop import (
    DPoPVerifier,
    InvalidDPoPProof,
    Nonces,
    UseDPoPNonce,
    normalise_htu,
    thumbprint,
)
from tillkey.store.replay import DatabaseReplayCache

URL = "https://auth.example.com/oauth2/token"
NOW = 1_800_000_000.0


class MemoryReplay:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    async def first_sight(self, key: str, expires_at: float) -> bool:
        if key in self.seen:
            return False
        self.seen[key] = expires_at
        return True


def verifier(**kw: Any) -> DPoPVerifier:
    return DPoPVerifier(MemoryReplay(), lambda: NOW, **kw)


def refused(v: DPoPVerifier, proof: str, method: str = "POST", url: str = URL, **kw: Any) -> InvalidDPoPProof:
    with pytest.raises(InvalidDPoPProof) as info:
        asyncio.run(v.verify(proof, method, url, **kw))
    return info.value


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("kind", ["EC", "OKP", "RSA"])
def test_a_valid_proof_yields_the_keys_thumbprint(kind: str) -> None:
    h = Holder(kind)
    proof = asyncio.run(verifier().verify(h.proof(), "POST", URL))
    assert proof.jkt == thumbprint(h.public) and proof.alg == h.alg


def test_rfc7638_thumbprint_vector() -> None:
    # RFC 7638 §3.1's example key and thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajr"
        "n1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    assert thumbprint({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}) == (
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    )


def test_the_method_and_url_must_be_this_requests() -> None:
    h, v = Holder(), verifier()
    assert "htm" in (refused(v, h.proof(htm="GET")).detail or "")
    assert "htu" in (refused(v, h.proof(htu="https://auth.example.com/oauth2/userinfo")).detail or "")
    assert "htu" in (refused(v, h.proof(htu="https://evil.example.com/oauth2/token")).detail or "")
    assert "htu" in (refused(v, h.proof(htu="http://auth.example.com/oauth2/token")).detail or "")
    # A trailing slash is another resource.
    assert "htu" in (refused(v, h.proof(htu=URL + "/")).detail or "")


def test_htu_is_compared_normalised_without_query_and_fragment() -> None:
    h, v = Holder(), verifier()
    for htu in (
        "HTTPS://Auth.Example.COM:443/oauth2/token",
        URL + "?x=1",
        URL + "#frag",
        "https://auth.example.com/oauth2/%74oken",
    ):
        asyncio.run(v.verify(h.proof(htu=htu), "POST", URL + "?grant=1"))
    assert normalise_htu("http://h:80") == "http://h/"
    assert normalise_htu("http://h:8080/a%2fb") == "http://h:8080/a%2Fb"
    with pytest.raises(ValueError):
        normalise_htu("/oauth2/token")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_no_unsigned_or_symmetric_proof(alg: str) -> None:
    h = Holder()
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": h.public}
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": int(NOW)}
    forged = f"{_b64(header)}.{_b64(claims)}." + ("" if alg == "none" else "c2ln")
    assert "alg" in (refused(verifier(), forged).detail or "")
    # An HS256 proof keyed with a symmetric jwk is refused the same way.
    hs = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "cw"}})
    assert "alg" in (refused(verifier(), hs).detail or "")


def test_the_header_must_be_a_dpop_proof_with_a_public_jwk() -> None:
    h, v = Holder(), verifier()
    assert "typ" in (refused(v, h.proof(header={"typ": "JWT"})).detail or "")
    assert "jwk" in (refused(v, h.proof(header={"jwk": None})).detail or "")
    private = json.loads(ECAlgorithm.to_jwk(h.key))
    assert "private" in (refused(v, h.proof(header={"jwk": private})).detail or "")
    # Signed by another key than the one embedded.
    other = Holder()
    assert "rejected" in (refused(v, other.proof(header={"jwk": h.public})).detail or "")
    # The header's alg must fit the key (EC key, RSA algorithm).
    rsa_holder = Holder("RSA")
    assert "rejected" in (refused(v, rsa_holder.proof(header={"jwk": h.public})).detail or "")


def test_small_rsa_keys_are_refused() -> None:
    h = Holder("RSA")
    h.key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key under test
    h.public = json.loads(RSAAlgorithm.to_jwk(h.key.public_key()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        proof = h.proof()
    refused(verifier(), proof)


def test_claims_are_required_and_iat_within_the_window() -> None:
    h, v = Holder(), verifier()
    for name in ("jti", "htm", "htu", "iat"):
        refused(v, h.proof(drop=(name,)))
    assert "iat" in (refused(v, h.proof(iat=NOW - 61)).detail or "")
    assert "iat" in (refused(v, h.proof(iat=NOW + 30)).detail or "")
    asyncio.run(v.verify(h.proof(iat=NOW - 59), "POST", URL))
    asyncio.run(v.verify(h.proof(iat=NOW + 4), "POST", URL))


def test_a_replayed_proof_is_refused() -> None:
    h, v = Holder(), verifier()
    p = h.proof()
    asyncio.run(v.verify(p, "POST", URL))
    assert "replayed" in (refused(v, p).detail or "")
    # The same jti under another key is another proof.
    asyncio.run(
        v.verify(Holder().proof(jti=json.loads(base64.urlsafe_b64decode(p.split(".")[1] + "=="))["jti"]), "POST", URL)
    )


def test_ath_binds_the_proof_to_the_access_token() -> None:
    h, v = Holder(), verifier()
    asyncio.run(v.verify(h.proof("GET", token="tok-1"), "GET", URL, access_token="tok-1"))
    assert "ath" in (refused(v, h.proof("GET"), "GET", access_token="tok-1").detail or "")
    assert "ath" in (refused(v, h.proof("GET", token="tok-2"), "GET", access_token="tok-1").detail or "")


def test_server_nonces_when_the_deployment_asks_for_them() -> None:
    now = [NOW]
    nonces = Nonces(b"k" * 32, lambda: now[0], slot=300)
    v = DPoPVerifier(MemoryReplay(), lambda: now[0], nonces=nonces)
    h = Holder()
    with pytest.raises(UseDPoPNonce) as info:
        asyncio.run(v.verify(h.proof(), "POST", URL))
    fresh = info.value.headers["DPoP-Nonce"]
    assert info.value.oauth_error == "use_dpop_nonce" and info.value.status_code == 400
    asyncio.run(v.verify(h.proof(nonce=fresh), "POST", URL))
    with pytest.raises(UseDPoPNonce):
        asyncio.run(v.verify(h.proof(nonce="made-up"), "POST", URL))
    now[0] += 900  # two slots later the old nonce is stale
    with pytest.raises(UseDPoPNonce):
        asyncio.run(v.verify(h.proof(iat=now[0], nonce=fresh), "POST", URL))


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_replay_cache_is_shared_through_the_database_and_cleaned_by_expiry(tmp_path: Path, backend: str) -> None:
    async def go() -> None:
        with inprocess.database(backend, tmp_path) as settings:
            async with inprocess.running(tmp_path, **settings) as t:
                await _replay_cache_checks(t)

    inprocess.run(go)


async def _replay_cache_checks(t: inprocess.InProcess) -> None:
    t.freeze()
    first = DatabaseReplayCache(t.tk.db, t.clock.now)
    second = DatabaseReplayCache(t.tk.db, t.clock.now)  # as another process would
    until = t.clock.now() + 65
    assert await first.first_sight("dpop:k:j1", until)
    assert not await second.first_sight("dpop:k:j1", until)
    # Two processes racing for one value: exactly one wins.
    results = await asyncio.gather(*(c.first_sight("dpop:k:race", until) for c in (first, second)))
    assert sorted(results) == [False, True]
    # Many values in one group commit, one of them twice: the second of the pair is a replay.
    keys = [f"dpop:k:g{i}" for i in range(20)] + ["dpop:k:g3"]
    got = await asyncio.gather(*(first.first_sight(k, until) for k in keys))
    assert got == [True] * 20 + [False]
    t.advance(66)
    assert await second.first_sight("dpop:k:j1", t.clock.now() + 65)  # the old row was purged


def test_verification_cost_is_small() -> None:
    """Measured, not asserted tightly: an ES256 proof's verification (the per-request price)."""
    h, v = Holder(), verifier()
    proofs = [h.proof() for _ in range(200)]
    start = time.perf_counter()
    for p in proofs:
        asyncio.run(v.verify(p, "POST", URL))
    per = (time.perf_counter() - start) / len(proofs)
    print(f"DPoP ES256 proof verification: {per * 1e6:.0f} µs")
    assert per < 0.02
