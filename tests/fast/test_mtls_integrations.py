"""Integrations bound to a client certificate (issue 20, RFC 8705): `tillkey integration create
--cert-file` / `update --cert-file | --no-cert`, and the one certificate check
(credentials/binding.require_certificate) on every way an integration is accepted: OAuth 1.0a signed
calls, its access token as Bearer, and the token exchange. The certificate comes from the trusted
proxy's header (the test client is 127.0.0.1, the trusted proxy); from any other peer the header is
dropped. A stolen consumer secret and access token are useless without the certificate's key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

from tests import inprocess
from tests.inprocess import BASE_URL
from tests.mtls_support import Authority, escaped, pem
from tests.oauth1_support import Endpoint
from tests.polling import until
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.credentials.mtls import thumbprint
from tillkey.store.audit import AuditQuery

PRODUCTS = "/rest/V1/products"
HEADER = "X-SSL-Client-Cert"
REFUSED = {"message": "This integration is bound to another client certificate."}
CA = Authority()
KEY, CERT = CA.issue("erp")
_, OTHER = CA.issue("someone-else")
X5T, OTHER_X5T = thumbprint(CERT), thumbprint(OTHER)
SETTINGS: dict[str, Any] = {
    "trusted_proxies": "127.0.0.1",
    "integration_as_bearer": True,
    "integration_allow_private_endpoints": True,
    "sync_interval": 60,  # only an explicit poll of the change feed moves the app's state
}
MINE = {HEADER: escaped(CERT)}
THEIRS = {HEADER: escaped(OTHER)}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI on the app's database, and the certificate files an operator would have."""
    inprocess.cli_environment(monkeypatch, tmp_path)
    (tmp_path / "erp.crt").write_text(pem(CERT))
    (tmp_path / "other.crt").write_text(pem(OTHER))
    (tmp_path / "erp.key").write_bytes(KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    yield tmp_path


def _signed(i: dict[str, Any], tokens: dict[str, Any], method: str = "GET", path: str = PRODUCTS) -> dict[str, str]:
    """An OAuth 1.0a Authorization header as the ERP's oauthlib signs it (a fresh nonce each time)."""
    client = Client(
        i["consumer_key"],
        i["consumer_secret"],
        tokens["access_token"],
        tokens["access_token_secret"],
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    _, headers, _ = client.sign(BASE_URL + path, method)
    return dict(headers)


def _around_the_proxy(t: inprocess.InProcess) -> httpx.AsyncClient:
    """The same app reached from 10.9.9.9, not the trusted proxy: its certificate header is dropped."""
    assert t.transport is not None
    transport = httpx.ASGITransport(app=t.transport.app, client=("10.9.9.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == REFUSED, r.text


async def _refusal_reasons(t: inprocess.InProcess, integration_id: int, count: int) -> list[str]:
    async def found() -> list[str]:
        records = await t.tk.audit.search(AuditQuery(event=audit.OAUTH1_REFUSED, limit=100))
        mine = [json.loads(r.details or "{}")["reason"] for r in records if r.actor_id == integration_id]
        return mine if len(mine) >= count else []

    return await until(found, what=f"{count} oauth1.refused records")


def test_a_bound_integration_is_accepted_only_with_its_certificate(files: Path) -> None:
    async def body() -> None:
        async with inprocess.running(files, **SETTINGS) as t, _around_the_proxy(t) as around:
            made = await inprocess.cli_json(
                "integration", "create", "--name", "erp", "--all", "--cert-file", str(files / "erp.crt")
            )
            assert made["certificate"] == X5T
            tokens = await inprocess.cli_json("integration", "activate", "erp")
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

            # OAuth 1.0a signed calls: with the certificate, through the proxy, only.
            assert (await t.client.get(PRODUCTS, headers={**_signed(made, tokens), **MINE})).status_code == 200
            _refused(await t.client.get(PRODUCTS, headers=_signed(made, tokens)))
            _refused(await t.client.get(PRODUCTS, headers={**_signed(made, tokens), **THEIRS}))
            _refused(await t.client.get(PRODUCTS, headers={**_signed(made, tokens), HEADER: "garbage"}))
            _refused(await around.get(PRODUCTS, headers={**_signed(made, tokens), **MINE}))
            # The check comes after the signature: a bad signature learns nothing of the binding.
            forged = _signed({**made, "consumer_secret": "x" * 32}, tokens)
            r = await t.client.get(PRODUCTS, headers=forged)
            assert r.status_code == 401 and r.json() != REFUSED, r.text
            # ...and before the nonce: the refused request spent nothing the holder needs.
            once = _signed(made, tokens)
            _refused(await t.client.get(PRODUCTS, headers=once))
            assert (await t.client.get(PRODUCTS, headers={**once, **MINE})).status_code == 200

            # Its access token as Bearer: the same rule.
            assert (await t.client.get(PRODUCTS, headers={**bearer, **MINE})).status_code == 200
            _refused(await t.client.get(PRODUCTS, headers=bearer))
            _refused(await t.client.get(PRODUCTS, headers={**bearer, **THEIRS}))
            _refused(await around.get(PRODUCTS, headers={**bearer, **MINE}))

            reasons = await _refusal_reasons(t, made["id"], 9)
            assert reasons.count("no client certificate") == 6 and reasons.count("another client certificate") == 2

    inprocess.run(body)


def test_binding_changes_reach_the_running_server_through_the_change_feed(files: Path) -> None:
    async def body() -> None:
        async with inprocess.running(files, **SETTINGS) as t:
            made = await inprocess.cli_json("integration", "create", "--name", "erp", "--all")
            assert made["certificate"] is None
            tokens = await inprocess.cli_json("integration", "activate", "erp")
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert (await t.client.get(PRODUCTS, headers=_signed(made, tokens))).status_code == 200

            async def calls(presented: dict[str, str]) -> tuple[int, int]:
                signed = await t.client.get(PRODUCTS, headers={**_signed(made, tokens), **presented})
                as_bearer = await t.client.get(PRODUCTS, headers={**bearer, **presented})
                return signed.status_code, as_bearer.status_code

            # Bound by the CLI (another process): this server learns it from the change feed.
            shown = await inprocess.cli_json("integration", "update", "erp", "--cert-file", str(files / "erp.crt"))
            assert shown["certificate"] == X5T and shown["name"] == "erp"
            await t.tk.poll_changes()
            assert await calls({}) == (401, 401)
            assert await calls(MINE) == (200, 200)

            # Bound to another certificate: the first one no longer does.
            await inprocess.cli("integration", "update", "erp", "--cert-file", str(files / "other.crt"))
            await t.tk.poll_changes()
            assert await calls(MINE) == (401, 401)
            assert await calls(THEIRS) == (200, 200)

            # Unbound: any connection again, the tokens unchanged.
            await inprocess.cli("integration", "update", "erp", "--no-cert")
            await t.tk.poll_changes()
            assert await calls({}) == (200, 200)

            # show, list and the admin API say what the binding is; each change was audited.
            assert (await inprocess.cli_json("integration", "show", "erp"))["certificate"] is None
            await inprocess.cli("integration", "update", "erp", "--cert-file", str(files / "erp.crt"))
            listed = (await inprocess.cli_json("integration", "list"))["integrations"]
            assert [i["certificate"] for i in listed] == [X5T]
            alice_id = (await t.create_admin("alice")).id
            alice = t.bearer(await t.admin_token("alice"))
            api = (await t.client.get("/tillkey/v1/integrations", headers=alice)).json()["integrations"]
            assert [i["certificate"] for i in api] == [X5T]
            page = await (await t.console_session(alice_id)).get(f"/console/integrations/{made['id']}")
            assert page.status_code == 200 and X5T in page.text, page.text
            # The admin API changes it too (same service, same audit), and refuses what is no certificate.
            where = f"/tillkey/v1/integrations/{made['id']}/certificate"
            r = await t.client.put(where, json={"certificate": pem(OTHER)}, headers=alice)
            assert r.status_code == 200 and r.json()["certificate"] == OTHER_X5T, r.text
            r = await t.client.put(where, json={"certificate": "-----BEGIN CERTIFICATE-----\nno\n"}, headers=alice)
            assert r.status_code == 400 and "not a PEM certificate" in r.json()["message"], r.text
            assert (await t.client.put(where, json={}, headers=alice)).status_code == 400
            r = await t.client.put(where, json={"certificate": None}, headers=alice)
            assert r.status_code == 200 and r.json()["certificate"] is None, r.text
            await t.tk.poll_changes()
            assert await calls({}) == (200, 200)
            changes = await t.tk.audit.search(AuditQuery(event=audit.INTEGRATION_CHANGED, limit=10))
            said = [json.loads(r.details or "{}") for r in changes]
            assert sorted((d["change"], d["certificate"]) for d in said) == sorted(
                [
                    ("certificate bound", X5T),
                    ("certificate bound", OTHER_X5T),
                    ("certificate unbound", None),
                    ("certificate bound", X5T),
                    ("certificate bound", OTHER_X5T),
                    ("certificate unbound", None),
                ]
            )

    inprocess.run(body)


def test_a_file_that_is_not_one_pem_certificate_is_refused(files: Path) -> None:
    (files / "two.crt").write_text(pem(CERT) + pem(OTHER))
    (files / "der.crt").write_bytes(CERT.public_bytes(Encoding.DER))
    (files / "empty.crt").write_text("")

    async def body() -> None:
        async with inprocess.running(files, **SETTINGS):
            await inprocess.cli("integration", "create", "--name", "erp", "--all")
            for name in ("erp.key", "two.crt", "der.crt", "empty.crt", "missing.crt"):
                r = await inprocess.cli("integration", "update", "erp", "--cert-file", str(files / name), check=False)
                assert r.exit_code != 0, name
                assert "PEM certificate" in r.stderr + r.stdout, (name, r.stderr, r.stdout)
            r = await inprocess.cli("integration", "update", "erp", check=False)
            assert r.exit_code != 0 and "--cert-file PEM or --no-cert" in r.stderr
            bad = await inprocess.cli(
                "integration", "create", "--name", "x", "--all", "--cert-file", str(files / "erp.key"), check=False
            )
            assert bad.exit_code != 0
            assert [i["name"] for i in (await inprocess.cli_json("integration", "list"))["integrations"]] == ["erp"]
            assert (await inprocess.cli_json("integration", "show", "erp"))["certificate"] is None

    inprocess.run(body)


def test_the_token_exchange_of_a_bound_integration_needs_its_certificate(files: Path) -> None:
    endpoint = Endpoint()

    async def exchange(c: httpx.AsyncClient, path: str, signer: Client, presented: dict[str, str]) -> httpx.Response:
        _, headers, _ = signer.sign(BASE_URL + path, "POST")
        return await c.post(path, headers={**headers, **presented})

    def refused_form(r: httpx.Response) -> None:
        assert r.status_code == 401, r.text
        assert dict(parse_qsl(r.text)) == {"oauth_problem": REFUSED["message"]}

    async def body() -> None:
        async with inprocess.running(files, **SETTINGS) as t, _around_the_proxy(t) as around:
            made = await t.tk.services.integrations.create(
                OPERATOR, name="erp", all_resources=True, endpoint_url=endpoint.url, certificate_pem=pem(CERT)
            )
            await t.tk.services.integrations.activate(OPERATOR, "erp")
            [posted] = endpoint.posts
            consumer = Client(made.consumer_key, made.consumer_secret, signature_method=SIGNATURE_HMAC_SHA256)
            for presented in ({}, THEIRS):
                refused_form(await exchange(t.client, "/oauth/token/request", consumer, presented))
            r = await exchange(t.client, "/oauth/token/request", consumer, MINE)
            assert r.status_code == 200, r.text
            request_token = dict(parse_qsl(r.text))
            with_token = Client(
                made.consumer_key,
                made.consumer_secret,
                request_token["oauth_token"],
                request_token["oauth_token_secret"],
                verifier=posted["oauth_verifier"],
                signature_method=SIGNATURE_HMAC_SHA256,
            )
            for presented in ({}, THEIRS):
                refused_form(await exchange(t.client, "/oauth/token/access", with_token, presented))
            refused_form(await exchange(around, "/oauth/token/access", with_token, MINE))
            # The refusals spent neither the request token nor a nonce the holder needs.
            r = await exchange(t.client, "/oauth/token/access", with_token, MINE)
            assert r.status_code == 200, r.text
            access = dict(parse_qsl(r.text))
            tokens = {"access_token": access["oauth_token"], "access_token_secret": access["oauth_token_secret"]}
            creds = {"consumer_key": made.consumer_key, "consumer_secret": made.consumer_secret}
            assert (await t.client.get(PRODUCTS, headers={**_signed(creds, tokens), **MINE})).status_code == 200
            _refused(await t.client.get(PRODUCTS, headers=_signed(creds, tokens)))

            async def exchange_refusals() -> list[str]:
                records = await t.tk.audit.search(AuditQuery(event=audit.OAUTH1_REFUSED, limit=100))
                paths = [json.loads(r.details or "{}")["path"] for r in records]
                return paths if len(paths) >= 6 else []

            paths = await until(exchange_refusals, what="the exchange's refusals audited")
            assert paths.count("/oauth/token/request") == 2 and paths.count("/oauth/token/access") == 3

    try:
        inprocess.run(body)
    finally:
        endpoint.close()
