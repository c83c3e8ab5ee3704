"""Medusa-style API keys over real HTTP (shared/specs/medusa.md §3): create, use with Basic and
x-medusa-access-token, redaction, revocation (now and delayed), deletion, the creator's
deactivation, publishable keys on /store routes, and every refusal in Medusa's error shape."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, Server

UNAUTHORIZED = {"message": "Unauthorized"}


def _login(srv: Server, email: str = "alice@example.com", password: str = ADMIN_PASSWORD) -> str:
    r = httpx.post(f"{srv.url}/auth/user/emailpass", json={"email": email, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _admin(srv: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _create(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/admin/api-keys", json=body)
    assert r.status_code == 200, r.text
    key: dict[str, Any] = r.json()["api_key"]
    return key


def audit_events(srv: Server, event: str) -> list[dict[str, Any]]:
    out = srv.cli("audit", "search", "--event", event, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _wait_for(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_secret_key_is_shown_once_stored_redacted_and_authenticates(server: Server) -> None:
    with _admin(server, _login(server)) as admin:
        key = _create(admin, title="backend sync", type="secret")
        raw = key["token"]
        assert raw.startswith("sk_") and len(raw) == 67
        assert key["redacted"] == raw[:6] + "***" + raw[-3:]
        assert key["id"].startswith("apk_") and key["created_by"].startswith("user_")
        # Never again: retrieve and list show "" for a secret key.
        assert admin.get(f"/admin/api-keys/{key['id']}").json()["api_key"]["token"] == ""
        listed = admin.get("/admin/api-keys", params={"type": "secret"}).json()
        assert listed["limit"] == 20 and listed["offset"] == 0
        assert all(k["token"] == "" for k in listed["api_keys"])
        assert key["id"] in [k["id"] for k in listed["api_keys"]]
    # Basic base64("sk_…:"), the raw `Basic sk_…` form and x-medusa-access-token all work.
    for headers in (_basic(raw), {"Authorization": f"Basic {raw}"}, {"x-medusa-access-token": raw}):
        r = httpx.get(f"{server.url}/admin/api-keys", headers=headers, timeout=30)
        assert r.status_code == 200, (headers.keys(), r.text)
    # The key acts on Tillkey's own routes too, with the creator's grant (alice: everything).
    assert httpx.get(f"{server.url}/rest/V1/products", headers=_basic(raw), timeout=30).status_code == 200


def test_bad_and_unknown_keys_are_refused(server: Server) -> None:
    unknown = "sk_" + "0" * 64
    for headers in (
        _basic(unknown), {"x-medusa-access-token": unknown}, {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"sk_short:").decode()},
    ):  # fmt: skip
        r = httpx.get(f"{server.url}/admin/api-keys", headers=headers, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json() == UNAUTHORIZED


def test_revoked_key_is_refused_on_the_next_call_and_audited(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    with _admin(srv, _login(srv)) as admin:
        key = _create(admin, title="to revoke", type="secret")
        assert httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key["token"])).status_code == 200
        r = admin.post(f"/admin/api-keys/{key['id']}/revoke")
        assert r.status_code == 200 and r.json()["api_key"]["revoked_at"] is not None
        assert r.json()["api_key"]["revoked_by"].startswith("user_")
        r = httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key["token"]))
        assert r.status_code == 401 and r.json() == UNAUTHORIZED
        # Revoking twice, and deleting: Medusa's answers.
        r = admin.post(f"/admin/api-keys/{key['id']}/revoke")
        assert r.status_code == 400
        assert r.json() == {"type": "not_allowed", "message": "There are 1 secret keys that are already revoked."}
        other = _create(admin, title="live", type="secret")
        r = admin.delete(f"/admin/api-keys/{other['id']}")
        assert r.status_code == 400 and r.json()["type"] == "not_allowed"
        assert r.json()["message"] == f"Cannot delete api keys that are not revoked - {other['id']}"
        r = admin.delete(f"/admin/api-keys/{key['id']}")
        assert r.json() == {"id": key["id"], "object": "api_key", "deleted": True}
        assert admin.get(f"/admin/api-keys/{key['id']}").status_code == 404

        found = _wait_for(lambda: audit_events(srv, "api_key.refused"))
        assert found and found[0]["details"]["reason"] == "revoked", found
        records = audit_events(srv, "api_key.*")
        assert {"api_key.created", "api_key.revoked", "api_key.deleted"} <= {e["event"] for e in records}
        assert key["token"] not in json.dumps(records)


def test_delayed_revocation_stops_the_key_at_its_time(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    with _admin(srv, _login(srv)) as admin:
        key = _create(admin, title="rotating", type="secret")
        r = admin.post(f"/admin/api-keys/{key['id']}/revoke", json={"revoke_in": 2})
        assert r.status_code == 200
    assert httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key["token"])).status_code == 200
    time.sleep(2.2)
    assert httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key["token"])).status_code == 401


def test_key_of_a_deactivated_or_deleted_creator_stops(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    srv.cli("admin", "create", "--username", "bob", "--email", "bob@example.com", "--password", ADMIN_PASSWORD)
    with _admin(srv, _login(srv, "bob@example.com")) as bob:
        key = _create(bob, title="bob's", type="secret")["token"]
    assert httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key)).status_code == 200
    # The CLI is another process: the server learns of it through the change feed.
    srv.cli("admin", "deactivate", "bob")
    assert _wait_for(lambda: httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key)).status_code == 401)
    srv.cli("admin", "activate", "bob")
    assert _wait_for(lambda: httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key)).status_code == 200)
    srv.cli("admin", "delete", "bob")
    assert _wait_for(lambda: httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key)).status_code == 401)


def test_secret_key_never_exceeds_its_resources_or_its_creator(server: Server) -> None:
    with _admin(server, _login(server)) as alice:
        narrow = _create(alice, title="catalog only", type="secret", resources=["Magento_Catalog::catalog"])
        assert narrow["resources"] == ["Magento_Catalog::catalog"]
        r = alice.post("/admin/api-keys", json={"title": "x", "type": "secret", "resources": ["Nope::nope"]})
        assert r.status_code == 400 and r.json()["type"] == "invalid_data"
    h = _basic(narrow["token"])
    assert httpx.get(f"{server.url}/rest/V1/products", headers=h).status_code == 200
    r = httpx.get(f"{server.url}/admin/api-keys", headers=h)
    assert r.status_code == 403 and r.json()["type"] == "forbidden"
    # carol holds only the catalog: a key she makes cannot list API keys, whatever it asks for.
    with _admin(server, _login(server, "carol@example.com")) as carol:
        assert carol.get("/admin/api-keys").status_code == 403


def test_publishable_keys_gate_store_routes(server: Server) -> None:
    with _admin(server, _login(server)) as admin:
        pk = _create(admin, title="storefront", type="publishable")
        assert pk["token"].startswith("pk_")
        # Publishable tokens stay visible (they are public by design).
        assert admin.get(f"/admin/api-keys/{pk['id']}").json()["api_key"]["token"] == pk["token"]
        r = admin.post("/admin/api-keys", json={"title": "x", "type": "publishable", "resources": ["anonymous"]})
        assert r.status_code == 400
    r = httpx.get(f"{server.url}/store/customers/me")
    assert r.status_code == 400 and r.json() == {
        "type": "not_allowed",
        "message": "Publishable API key required in the request header: x-publishable-api-key. "
        "You can manage your keys in settings in the dashboard.",
    }
    r = httpx.get(f"{server.url}/store/customers/me", headers={"x-publishable-api-key": "pk_" + "1" * 64})
    assert r.status_code == 400
    assert r.json() == {
        "type": "not_allowed",
        "message": "A valid publishable key is required to proceed with the request",
    }
    # A valid publishable key only opens the gate; the customer route still wants a customer.
    r = httpx.get(f"{server.url}/store/customers/me", headers={"x-publishable-api-key": pk["token"]})
    assert r.status_code == 401 and r.json() == UNAUTHORIZED
    # A publishable key is no identity: on an admin route it is nothing (and as Basic, refused).
    r = httpx.get(f"{server.url}/admin/api-keys", headers={"x-publishable-api-key": pk["token"]})
    assert r.status_code == 401
    r = httpx.get(f"{server.url}/admin/api-keys", headers=_basic(pk["token"]))
    assert r.status_code == 401


def test_revoked_publishable_key_closes_the_store(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    with _admin(srv, _login(srv)) as admin:
        pk = _create(admin, title="storefront", type="publishable")["token"]
        h = {"x-publishable-api-key": pk}
        assert httpx.get(f"{srv.url}/store/customers/me", headers=h).status_code == 401  # gate open
        pk_id = admin.get("/admin/api-keys", params={"type": "publishable"}).json()["api_keys"][0]["id"]
        admin.post(f"/admin/api-keys/{pk_id}/revoke")
    assert httpx.get(f"{srv.url}/store/customers/me", headers=h).status_code == 400


def test_last_used_is_written_off_the_request_path(sqlite_server_factory: Any) -> None:
    srv = sqlite_server_factory(TILLKEY_LAST_USED_INTERVAL="0.5")
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    with _admin(srv, _login(srv)) as admin:
        key = _create(admin, title="used", type="secret")
        assert key["last_used_at"] is None
        httpx.get(f"{srv.url}/admin/api-keys", headers=_basic(key["token"]))
        used = _wait_for(lambda: admin.get(f"/admin/api-keys/{key['id']}").json()["api_key"]["last_used_at"])
        assert used is not None


def test_customers_cannot_manage_keys_and_bad_input_is_400(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/auth/customer/emailpass",
        json={"email": "roni_cost@example.com", "password": "Customer-pass-4-tests"},
    )
    assert r.status_code == 200, r.text
    customer = r.json()["token"]
    r = httpx.get(f"{server.url}/admin/api-keys", headers={"Authorization": f"Bearer {customer}"})
    assert r.status_code == 401 and r.json() == UNAUTHORIZED  # Medusa: wrong actor type is 401
    with _admin(server, _login(server)) as admin:
        for body in ({"title": "", "type": "secret"}, {"title": "x", "type": "other"}, {"title": 3, "type": "secret"}):
            r = admin.post("/admin/api-keys", json=body)
            assert r.status_code == 400 and r.json()["type"] == "invalid_data", r.text
        r = admin.post("/admin/api-keys", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["type"] == "invalid_data"
        assert admin.get("/admin/api-keys/apk_999999").status_code == 404
        assert admin.get("/admin/api-keys/nope").json()["type"] == "not_found"
        r = admin.post("/admin/api-keys/apk_1/revoke", json={"revoke_in": "soon"})
        assert r.status_code == 400
        assert admin.get("/admin/api-keys", params={"limit": "x"}).status_code == 400


@pytest.mark.parametrize("path", ["/admin/users/me", "/admin/api-keys"])
def test_no_credential_is_medusas_bare_401(server: Server, path: str) -> None:
    r = httpx.get(server.url + path)
    assert r.status_code == 401 and r.json() == UNAUTHORIZED


def test_cli_creates_lists_and_revokes_keys(fresh_server: Server) -> None:
    srv = fresh_server
    srv.cli("admin", "create", "--username", "ops", "--email", "ops@example.com", "--password", ADMIN_PASSWORD)
    key = srv.cli_json("api-key", "create", "--title", "warehouse", "--type", "secret", "--for", "ops",
                       "-r", "Magento_Catalog::products")  # fmt: skip
    raw = key["token"]
    assert raw.startswith("sk_") and key["resources"] == ["Magento_Catalog::products"]
    assert _wait_for(lambda: httpx.get(f"{srv.url}/rest/V1/products/24-MB01", headers=_basic(raw)).status_code != 401)
    assert httpx.get(f"{srv.url}/rest/V1/store/websites", headers=_basic(raw)).status_code == 403  # not granted
    listed = srv.cli_json("api-key", "list")["api_keys"]
    assert [k["id"] for k in listed] == [key["id"]] and listed[0]["token"] == "" and raw not in json.dumps(listed)
    srv.cli("api-key", "revoke", key["id"])
    assert _wait_for(lambda: httpx.get(f"{srv.url}/rest/V1/products/24-MB01", headers=_basic(raw)).status_code == 401)
    # A secret key acts for an admin; without one, or for one who does not exist, it is refused.
    assert "needs the admin" in srv.cli("api-key", "create", "--title", "x", "--type", "secret", check=False).stderr
    nobody = srv.cli("api-key", "create", "--title", "x", "--type", "secret", "--for", "nobody", check=False)
    assert nobody.returncode == 1 and "no admin named" in nobody.stderr
    assert srv.cli("api-key", "revoke", "apk_999", check=False).returncode == 1
