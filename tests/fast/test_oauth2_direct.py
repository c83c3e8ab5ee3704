"""`POST /oauth2/token` and `POST /oauth2/introspect` are served by the edge directly (web/edge.py,
web/routing.fast_routes, `reads_own_body`), past FastAPI's router: the OAuth 2 tests
(tests/test_oauth2.py, tests/attacks/, the interop tests) hold their wire; this checks that the
requests they make really take the direct path, with the same answers on it: form rules, client
authentication both ways, RFC 6749 errors, no-store."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests import inprocess
from tillkey.access.delegation import OPERATOR
from tillkey.web import edge


def test_token_and_introspection_are_served_directly_with_the_same_wire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[str, str]] = []
    serve = edge.Edge._serve

    async def spy(self: edge.Edge, endpoint: Any, scope: Any, receive: Any, send: Any) -> None:
        served.append((scope["method"], scope["path"]))
        await serve(self, endpoint, scope, receive, send)

    monkeypatch.setattr(edge.Edge, "_serve", spy)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            reg = await t.tk.services.clients.create(
                OPERATOR,
                name="gateway",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=["Magento_Catalog::products"],
                resource_server=True,
            )
            cid, secret = reg.client.client_id, reg.secret
            assert secret is not None
            basic = {"Authorization": "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()}
            form = {"Content-Type": "application/x-www-form-urlencoded"}

            by_basic = await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic)
            assert by_basic.status_code == 200 and by_basic.headers["cache-control"] == "no-store"
            by_post = await t.client.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
            )
            assert by_post.status_code == 200 and by_post.json()["token_type"] == "Bearer"
            info = await t.client.post(
                "/oauth2/introspect", data={"token": by_post.json()["access_token"]}, headers=basic
            )
            assert info.status_code == 200 and info.json()["active"] is True
            assert info.headers["cache-control"] == "no-store"

            twice = await t.client.post(
                "/oauth2/token",
                content=b"grant_type=client_credentials&grant_type=client_credentials",
                headers={**basic, **form},
            )
            assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"
            wrong = {"Authorization": "Basic " + base64.b64encode(f"{cid}:nope".encode()).decode()}
            refused = await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=wrong)
            assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert refused.headers["cache-control"] == "no-store"
            as_json = await t.client.post("/oauth2/token", json={"grant_type": "client_credentials"}, headers=basic)
            assert as_json.status_code == 415 and as_json.json()["error"] == "invalid_request"
            assert (await t.client.get("/oauth2/token")).status_code == 405  # other methods: FastAPI, as before

        assert served.count(("POST", "/oauth2/token")) == 5
        assert served.count(("POST", "/oauth2/introspect")) == 1

    inprocess.run(body)
