"""DPoP at the token endpoint (RFC 9449 §5): a proof binds the access token (`token_type: DPoP`,
`cnf.jkt` in the JWT or the opaque record), a public client's refresh tokens to the same key; a
client registered `dpop_bound_access_tokens` gets nothing without a proof; bad proofs are 400
`invalid_dpop_proof`. In process, on the injected clock."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess, polling
from tests.dpop_support import Holder
from tests.oauth2_support import async_authorize, hidden_fields, pkce_pair, query, register_async, seed_oauth_app
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.credentials.dpop import thumbprint
from tillkey.store.audit import AuditQuery

TOKEN_URL = inprocess.BASE_URL + "/oauth2/token"


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


async def _two(get: Any) -> list[dict[str, Any]] | None:
    got = await get()
    return got if len(got) == 2 else None


async def _machine(t: inprocess.InProcess, *, bound: bool = False) -> dict[str, str]:
    reg = await t.tk.services.clients.create(
        OPERATOR,
        name="machine",
        client_type="confidential",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["Magento_Catalog::products"],
        dpop_bound_access_tokens=bound,
    )
    await t.tk.poll_changes()
    assert reg.secret is not None
    raw = base64.b64encode(f"{reg.client.client_id}:{reg.secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_client_credentials_with_a_proof_is_a_dpop_bound_token(tmp_path: Path, fmt: str) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path, oauth2_access_token_format=fmt) as t:
            t.freeze()
            basic, h = await _machine(t), Holder()
            r = await t.client.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                headers={**basic, "DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())},
            )
            assert r.status_code == 200, r.text
            assert r.json()["token_type"] == "DPoP"
            token = r.json()["access_token"]
            claims = await t.tk.authenticator.read(token)
            assert claims.cnf == {"jkt": thumbprint(h.public)}
            if fmt == "jwt":
                assert _claims(token)["cnf"] == {"jkt": thumbprint(h.public)}
            # Without a proof: a bearer token, as before.
            plain = await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic)
            assert plain.json()["token_type"] == "Bearer"
            assert (await t.tk.authenticator.read(plain.json()["access_token"])).cnf is None

            async def issued() -> list[dict[str, Any]]:
                found = await t.tk.audit.search(AuditQuery(event=audit.TOKEN_ISSUED))
                return [json.loads(r.details) if isinstance(r.details, str) else dict(r.details or {}) for r in found]

            records = await polling.until(lambda: _two(issued), what="both token.issued records")
            assert records is not None
            assert sorted(d["binding"] for d in records) == ["bearer", "dpop"]
            assert [d["jkt"] for d in records if d["binding"] == "dpop"] == [thumbprint(h.public)]

    inprocess.run(go)


def test_bad_proofs_are_invalid_dpop_proof(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            basic, h = await _machine(t), Holder()
            now = t.clock.now()
            form = {"grant_type": "client_credentials"}
            for proof in (
                h.proof(htu=inprocess.BASE_URL + "/oauth2/userinfo", iat=now),  # another URL
                h.proof("GET", htu=TOKEN_URL, iat=now),  # another method
                h.proof(htu=TOKEN_URL, iat=now - 3600),  # old
                h.proof(htu=TOKEN_URL, iat=now, header={"typ": "JWT"}),
                "not-a-jwt",
            ):
                r = await t.client.post("/oauth2/token", data=form, headers={**basic, "DPoP": proof})
                assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
            once = h.proof(htu=TOKEN_URL, iat=now)
            assert (await t.client.post("/oauth2/token", data=form, headers={**basic, "DPoP": once})).status_code == 200
            replay = await t.client.post("/oauth2/token", data=form, headers={**basic, "DPoP": once})
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
            two = [("DPoP", h.proof(htu=TOKEN_URL, iat=now)), ("DPoP", h.proof(htu=TOKEN_URL, iat=now))]
            r = await t.client.post("/oauth2/token", data=form, headers=[*basic.items(), *two])
            assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"

    inprocess.run(go)


def test_a_client_registered_dpop_bound_gets_no_token_without_a_proof(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            t.freeze()
            basic, h = await _machine(t, bound=True), Holder()
            form = {"grant_type": "client_credentials"}
            r = await t.client.post("/oauth2/token", data=form, headers=basic)
            assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
            ok = await t.client.post(
                "/oauth2/token", data=form, headers={**basic, "DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())}
            )
            assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"

    inprocess.run(go)


def test_nonce_required_by_the_deployment(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path, dpop_nonces=True) as t:
            t.freeze()
            basic, h = await _machine(t), Holder()
            form = {"grant_type": "client_credentials"}
            r = await t.client.post(
                "/oauth2/token", data=form, headers={**basic, "DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())}
            )
            assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
            nonce = r.headers["dpop-nonce"]
            proof = h.proof(htu=TOKEN_URL, iat=t.clock.now(), nonce=nonce)
            ok = await t.client.post("/oauth2/token", data=form, headers={**basic, "DPoP": proof})
            assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"

    inprocess.run(go)


def test_public_client_code_flow_binds_access_and_refresh_tokens_to_the_key(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            await seed_oauth_app(t)
            reg = await t.tk.services.clients.create(
                OPERATOR,
                name="spa",
                client_type="public",
                redirect_uris=["https://app.example/cb"],
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "Magento_Catalog::products"],
            )
            await t.tk.poll_changes()
            cid = reg.client.client_id
            verifier, challenge = pkce_pair()
            url = "/oauth2/authorize?" + "&".join(
                f"{k}={v}"
                for k, v in {
                    "response_type": "code",
                    "client_id": cid,
                    "redirect_uri": "https://app.example/cb",
                    "scope": "openid%20Magento_Catalog::products",
                    "state": "s1",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }.items()
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
            assert r.status_code == 200, r.text
            assert r.json()["token_type"] == "DPoP"
            assert _claims(r.json()["access_token"])["cnf"] == {"jkt": thumbprint(h.public)}
            refresh = r.json()["refresh_token"]
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": cid}
            # Another key, or no proof at all: refused, and the token is not spent.
            other = await t.client.post(
                "/oauth2/token", data=form, headers={"DPoP": Holder().proof(htu=TOKEN_URL, iat=t.clock.now())}
            )
            assert other.status_code == 400 and other.json()["error"] == "invalid_dpop_proof"
            bare = await t.client.post("/oauth2/token", data=form)
            assert bare.status_code == 400 and bare.json()["error"] == "invalid_dpop_proof"
            ok = await t.client.post(
                "/oauth2/token", data=form, headers={"DPoP": h.proof(htu=TOKEN_URL, iat=t.clock.now())}
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["token_type"] == "DPoP"
            # The successor stays bound to the same key.
            form["refresh_token"] = ok.json()["refresh_token"]
            again = await t.client.post(
                "/oauth2/token", data=form, headers={"DPoP": Holder().proof(htu=TOKEN_URL, iat=t.clock.now())}
            )
            assert again.status_code == 400

    inprocess.run(go)


def test_discovery_names_the_dpop_algorithms(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                algs = (await t.client.get(path)).json()["dpop_signing_alg_values_supported"]
                assert "ES256" in algs and "none" not in algs and not any(a.startswith("HS") for a in algs)

    inprocess.run(go)


def test_the_dpop_bound_mark_on_every_registration_surface(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("boss")
            auth = t.bearer(await t.admin_token("boss"))
            clients = "/tillkey/v1/oauth2/clients"
            base = {"name": "gw", "type": "confidential", "grant_types": ["client_credentials"]}
            r = await t.client.post(clients, json={**base, "dpop_bound_access_tokens": True}, headers=auth)
            assert r.status_code == 201 and r.json()["dpop_bound_access_tokens"] is True, r.text
            r = await t.client.post(clients, json={**base, "dpop_bound_access_tokens": "yes"}, headers=auth)
            assert r.status_code == 400
            listed = (await t.client.get(clients, headers=auth)).json()
            assert [c["dpop_bound_access_tokens"] for c in listed] == [True]
            # The operator's CLI.
            made = await register_async(
                t, "--name", "cli", "--type", "confidential", "--grant", "client_credentials", "--dpop-bound"
            )
            assert made["dpop_bound_access_tokens"] is True
            listing = await inprocess.cli_json("client", "list")
            assert {c["name"]: c["dpop_bound_access_tokens"] for c in listing["clients"]} == {"gw": True, "cli": True}
            # The audit record of the registration names the binding.
            found = await t.tk.services.clients.registered()
            assert all(c.dpop_bound_access_tokens for c in found)

    inprocess.run(go)


def test_dpop_jkt_binds_the_authorization_code_to_a_key(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            await seed_oauth_app(t)
            reg = await t.tk.services.clients.create(
                OPERATOR,
                name="spa",
                client_type="public",
                redirect_uris=["https://app.example/cb"],
                grant_types=["authorization_code"],
                scopes=["openid"],
            )
            await t.tk.poll_changes()
            cid, h = reg.client.client_id, Holder()
            browser = None

            async def code_for(jkt: str) -> tuple[str, str]:
                verifier, challenge = pkce_pair()
                url = (
                    f"/oauth2/authorize?response_type=code&client_id={cid}&redirect_uri=https://app.example/cb"
                    f"&scope=openid&code_challenge={challenge}&code_challenge_method=S256&dpop_jkt={jkt}"
                )
                return query(await async_authorize(t, url, browser=browser))["code"], verifier

            async def exchange(code: str, verifier: str, proof: str | None) -> Any:
                form = {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": "https://app.example/cb",
                    "client_id": cid,
                    "code_verifier": verifier,
                }
                return await t.client.post("/oauth2/token", data=form, headers={} if proof is None else {"DPoP": proof})

            jkt = thumbprint(h.public)
            for proof_of in (Holder(), None):
                code, verifier = await code_for(jkt)
                proof = None if proof_of is None else proof_of.proof(htu=TOKEN_URL, iat=t.clock.now())
                r = await exchange(code, verifier, proof)
                assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
            code, verifier = await code_for(jkt)
            r = await exchange(code, verifier, h.proof(htu=TOKEN_URL, iat=t.clock.now()))
            assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
            # A malformed dpop_jkt goes back to the client as invalid_request.
            _, challenge = pkce_pair()
            bad = (
                f"/oauth2/authorize?response_type=code&client_id={cid}&redirect_uri=https://app.example/cb"
                f"&scope=openid&code_challenge={challenge}&code_challenge_method=S256&dpop_jkt=short"
            )
            r = await t.client.get(bad)
            assert r.status_code in (302, 303) and "error=invalid_request" in r.headers["location"]

    inprocess.run(go)


def test_the_console_form_marks_a_dpop_bound_client(tmp_path: Path) -> None:
    async def go() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("boss")
            page = await t.client.get("/console/login")
            r = await t.client.post(
                "/console/login",
                data={**hidden_fields(page.text), "username": "boss", "password": inprocess.ADMIN_PASSWORD},
            )
            assert r.status_code == 303, r.text
            csrf = hidden_fields((await t.client.get("/console/")).text)["csrf"]
            form = {"csrf": csrf, "client_type": "confidential", "grant_type": "client_credentials", "scope": ""}
            for name, mark in (("bound", {"dpop_bound": "1"}), ("plain", {})):
                r = await t.client.post("/console/oauth-clients", data={**form, "name": name, **mark})
                assert r.status_code in (200, 303), r.text
            marked = {c.name: c.dpop_bound_access_tokens for c in await t.tk.services.clients.registered()}
            assert marked == {"bound": True, "plain": False}
            assert "DPoP-bound" in (await t.client.get("/console/oauth-clients")).text
            bound = next(c for c in await t.tk.services.clients.registered() if c.name == "bound")
            assert "DPoP required" in (await t.client.get(f"/console/oauth-clients/{bound.client_id}")).text

    inprocess.run(go)
