"""An integration's endpoint URL turned against the server's own network (SSRF): every spelling of
a loopback, private or link-local address is refused when saved, a name that resolves (or rebinds)
to one is refused when called, redirects are not followed, and activation tells nothing about what
answered there."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.oauth1.handshake import UNDELIVERED
from tillkey.security import outbound

MANAGE = "Magento_Integration::integrations"
PRODUCTS = "Magento_Catalog::products"

NON_GLOBAL = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",  # short form
    "http://2130706433/hook",  # decimal
    "http://0x7f.1/hook",  # hex
    "http://0x7f000001/hook",
    "http://017700000001/hook",  # octal
    "http://0/hook",  # unspecified
    "http://0.0.0.0:8080/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:7f00:1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata service
    "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",  # ULA (AWS's IPv6 metadata)
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://224.0.0.1/hook",  # multicast
    "http://[ff02::1]/hook",
    "http://255.255.255.255/hook",
    "http://localhost:8080/hook",
    "http://LOCALHOST./hook",
    "http://admin.localhost/hook",
    "https://127.0.0.1:443/hook",
]
MALFORMED = [
    "http://good@127.0.0.1/hook",  # user info: the host is the part after @
    "http://good.example:pw@127.0.0.1/hook",
    "http://127.0.0.1\\@good.example/hook",  # parsers disagree on backslashes
    "http://good.example\\@127.0.0.1/hook",
    "ftp://good.example/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http:///hook",
    "http://good.example/ho ok",
]


class Endpoint:
    """A loopback HTTP server that records posts and answers `status` (and a Location on 3xx)."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.hosts: list[str] = []
        self.status = 200
        self.location = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.posts.append(self.path + " " + self.rfile.read(length).decode())
                owner.hosts.append(self.headers.get("Host", ""))
                self.send_response(owner.status)
                if owner.location:
                    self.send_header("Location", owner.location)
                body = b"internal-secret-body"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


async def _manager(t: inprocess.InProcess) -> dict[str, str]:
    await t.create_admin("integrator", resources=[MANAGE, PRODUCTS])
    return t.bearer(await t.admin_token("integrator"))


async def _create(t: inprocess.InProcess, auth: dict[str, str], url: str) -> Any:
    body = {"name": f"erp-{abs(hash(url))}", "resources": [PRODUCTS], "endpoint_url": url}
    return await t.client.post("/tillkey/v1/integrations", json=body, headers=auth)


def test_every_spelling_of_a_non_global_address_is_refused_when_saved(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            auth = await _manager(t)
            for url in NON_GLOBAL + MALFORMED:
                r = await _create(t, auth, url)
                assert r.status_code == 400, (url, r.status_code, r.text)
                assert "message" in r.json()
            # The identity link is opened by the admin's browser, never fetched by Tillkey: an
            # intranet address is fine there, but not the parser tricks.
            for link, status in (("http://good@127.0.0.1/", 400), ("http://10.0.0.5/erp/login", 201)):
                body = {"name": f"link-{status}", "resources": [PRODUCTS], "identity_link_url": link}
                r = await t.client.post("/tillkey/v1/integrations", headers=auth, json=body)
                assert r.status_code == status, r.text
            # The service the CLI and the console call refuses too.
            with pytest.raises(Exception, match="loopback, private or link-local"):
                await t.tk.services.integrations.create(
                    OPERATOR, name="cli", resources=[PRODUCTS], endpoint_url="http://[::1]/"
                )
            # A public name or address is fine.
            for url in ("https://erp.example.com/tillkey", "http://93.184.216.34:8080/hook"):
                r = await _create(t, auth, url)
                assert r.status_code == 201, r.text
            listed = (await t.client.get("/tillkey/v1/integrations", headers=auth)).json()["integrations"]
            assert {i["endpoint_url"] for i in listed} == {
                None,  # the one with an intranet identity link and no endpoint
                "https://erp.example.com/tillkey",
                "http://93.184.216.34:8080/hook",
            }

    inprocess.run(body)


def _resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to `addresses` (what a rebinding DNS server answers at call time);
    answers the list of names looked up."""
    asked: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(str(host))
        out = []
        for a in addresses:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, int(port or 80), 0, 0) if family == socket.AF_INET6 else (a, int(port or 80))
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_the_call_goes_to_the_address_checked_with_the_name_in_host(
    tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One resolution, then a connection to that address: no second lookup a rebinding DNS
    server could answer differently."""

    async def body() -> None:
        async with inprocess.running(tmp_path, integration_allow_private_endpoints=True) as t:
            auth = await _manager(t)
            created = (await _create(t, auth, f"http://erp.example.com:{endpoint.port}/hook")).json()
            asked = _resolving_to(monkeypatch, "127.0.0.1")
            r = await t.client.post(f"/tillkey/v1/integrations/{created['id']}/activate", headers=auth)
            assert r.status_code == 200, r.text
            assert asked == ["erp.example.com"]
            assert endpoint.hosts == [f"erp.example.com:{endpoint.port}"]
            assert endpoint.posts[0].startswith("/hook ")

    inprocess.run(body)


@pytest.mark.parametrize(
    "answers", [("127.0.0.1",), ("93.184.216.34", "127.0.0.1"), ("::ffff:127.0.0.1",), ("169.254.169.254",)]
)
def test_a_name_that_rebinds_to_loopback_is_refused_when_called(
    tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, answers: tuple[str, ...]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            auth = await _manager(t)
            # Saved while the name pointed elsewhere (the name is not resolved when saved).
            created = await _create(t, auth, f"http://erp.example.com:{endpoint.port}/hook")
            assert created.status_code == 201, created.text
            _resolving_to(monkeypatch, *answers)
            r = await t.client.post(f"/tillkey/v1/integrations/{created.json()['id']}/activate", headers=auth)
            assert r.status_code == 502, r.text
            assert r.json()["message"] == UNDELIVERED
            assert endpoint.posts == []  # nothing reached the loopback listener

    inprocess.run(body)


def test_activation_tells_nothing_about_what_answered(tmp_path: Path, endpoint: Endpoint) -> None:
    """With private endpoints allowed (a test listener on loopback), the caller still learns only
    "delivered" or one failure: not the status, the body, or whether anything listened."""

    async def body() -> None:
        async with inprocess.running(tmp_path, integration_allow_private_endpoints=True) as t:
            auth = await _manager(t)
            hook = f"http://127.0.0.1:{endpoint.port}/hook"
            created = (await _create(t, auth, hook)).json()
            ok = await t.client.post(f"/tillkey/v1/integrations/{created['id']}/activate", headers=auth)
            assert ok.status_code == 200 and ok.json()["status"] == "handshake_started"
            answers = []
            for status in (500, 404, 401, 418):
                endpoint.status = status
                r = await t.client.post(f"/tillkey/v1/integrations/{created['id']}/activate", headers=auth)
                answers.append((r.status_code, r.text))
            endpoint.status = 302
            endpoint.location = f"http://127.0.0.1:{endpoint.port}/redirected"
            r = await t.client.post(f"/tillkey/v1/integrations/{created['id']}/activate", headers=auth)
            answers.append((r.status_code, r.text))
            assert not any(p.startswith("/redirected") for p in endpoint.posts)  # redirects are not followed
            closed = (await _create(t, auth, "http://127.0.0.1:9/nothing-listens")).json()
            r = await t.client.post(f"/tillkey/v1/integrations/{closed['id']}/activate", headers=auth)
            answers.append((r.status_code, r.text))
            failures = [a for a in answers if a[0] != 200]
            assert len(failures) == 6
            assert len(set(failures)) == 1, failures  # one and the same answer
            status, text = failures[0]
            assert status == 502 and "internal-secret-body" not in text
            assert all(code not in text for code in ("500", "404", "401", "302", "Connect"))

    inprocess.run(body)


def test_call_time_check_judges_literals_and_embedded_ipv4() -> None:
    async def body() -> None:
        for url in ("http://[::ffff:10.0.0.1]/", "http://0x7f.1/", "http://[fe80::1]/"):
            with pytest.raises(outbound.Undeliverable):
                await outbound.post_form(url, {}, allow_private=False, seconds=1)

    asyncio.run(body())
    # Internationalised names pass in either spelling (the parsers agree once IDNA is applied).
    for idn in ("http://b\u00fccher.example/hook", "http://xn--bcher-kva.example/hook"):
        assert outbound.check_url(idn, allow_private=False) == idn
    public, mapped = outbound.literal_address("93.184.216.34"), outbound.literal_address("[::ffff:192.168.0.1]")
    assert public is not None and outbound.is_public(public)
    assert mapped is not None and not outbound.is_public(mapped)
