"""The client-certificate header (credentials/mtls.py): believed only from a trusted proxy, parsed
to the certificate and its x5t#S256 thumbprint; from anyone else, or malformed, it is no certificate
and is never visible to the application as a header."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.types import Receive, Scope, Send

from tests.mtls_support import Authority, escaped, pem
from tillkey.credentials.mtls import ClientCertHeader, TrustedPeers, parse_header, presented

HEADER = "X-SSL-Client-Cert"


async def _seen(scope: Scope, receive: Receive, send: Send) -> None:
    cert = presented(scope)
    raw = [v for k, v in scope["headers"] if k == HEADER.lower().encode()]
    body = f"{cert.thumbprint if cert else '-'} {len(raw)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _get(peer: str, trusted: str, headers: list[tuple[str, str]]) -> str:
    app = ClientCertHeader(_seen, header=HEADER, trusted=trusted)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tillkey") as c:
        return (await c.get("/", headers=headers)).text


CA = Authority()
_, CERT = CA.issue("client-1")
_, OTHER = CA.issue("client-2")


def test_thumbprint_is_base64url_sha256_of_der() -> None:
    parsed = parse_header(escaped(CERT))
    assert parsed is not None
    digest = hashlib.sha256(CERT.public_bytes(Encoding.DER)).digest()
    assert parsed.thumbprint == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert parse_header(pem(CERT)) is not None  # not escaped at all: still PEM
    assert parse_header(escaped(OTHER)).thumbprint != parsed.thumbprint  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "-----BEGIN CERTIFICATE-----%0Anot base64%0A-----END CERTIFICATE-----", "%FF%FE", "x" * 200_000],
)
def test_malformed_is_no_certificate(value: str) -> None:
    assert parse_header(value) is None


def test_believed_from_a_trusted_peer_only() -> None:
    asyncio.run(_trusted_only())


async def _trusted_only() -> None:
    tp = parse_header(escaped(CERT)).thumbprint  # type: ignore[union-attr]
    assert await _get("10.0.0.5", "10.0.0.0/24", [(HEADER, escaped(CERT))]) == f"{tp} 0"
    # Around the proxy: the same header from an untrusted peer is dropped, not read.
    assert await _get("10.0.1.5", "10.0.0.0/24", [(HEADER, escaped(CERT))]) == "- 0"
    assert await _get("10.0.0.5", "", [(HEADER, escaped(CERT))]) == "- 0"
    # Two headers: ambiguous, none believed.
    assert await _get("10.0.0.5", "10.0.0.5", [(HEADER, escaped(CERT)), (HEADER, escaped(OTHER))]) == "- 0"
    # Malformed from a trusted proxy: no certificate.
    assert await _get("10.0.0.5", "10.0.0.5", [(HEADER, "not-a-cert")]) == "- 0"
    assert await _get("10.0.0.5", "10.0.0.5", []) == "- 0"


def test_trusted_peers() -> None:
    peers = TrustedPeers("127.0.0.1, 10.1.0.0/16,::1")
    assert "127.0.0.1" in peers and "10.1.2.3" in peers and "::1" in peers
    assert "10.2.0.1" not in peers and None not in peers and "name" not in peers
    assert "anything" in TrustedPeers("*")
