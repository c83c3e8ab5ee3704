"""Medusa-style API keys over HTTP (shared/specs/medusa.md §3): create, use with Basic and
x-medusa-access-token, redaction, revocation (now and delayed), deletion, the creator's
deactivation, publishable keys on /store routes, and every refusal in Medusa's error shape.

The app runs in this process (tests/inprocess.py) on SQLite and PostgreSQL; the operator's CLI
through CliRunner on the same database, the app following its changes through the change feed."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import inprocess
from tests.inprocess import ADMIN_PASSWORD, CUSTOMER_PASSWORD, InProcess
from tests.polling import until
from tillkey.storeapi.seed import seed

UNAUTHORIZED = {"message": "Unauthorized"}
# The CLI writes to the database; the app polls the change feed this often (the servers' setting).
FEED = {"sync_interval": 0.2}


@pytest.fixture
def db(scaleout_db: dict[str, Any]) -> dict[str, Any]:
    return scaleout_db  # conftest's: on PostgreSQL with Redis, as the scale-out servers ran


@asynccontextmanager
async def seeded(tmp_path: Path, db: dict[str, Any], **settings: Any) -> AsyncIterator[InProcess]:
    """What the shared server held: admin `alice` (Administrators), admin `carol` (a role with the
    catalog only), the demo data (customer roni_cost@example.com)."""
    async with inprocess.running(tmp_path, **db, **FEED, **settings) as t:
        await t.create_admin("alice")
        await t.create_admin("carol", resources=["Magento_Catalog::catalog"])
        await seed(t.tk, CUSTOMER_PASSWORD)
        yield t


async def _login(t: InProcess, email: str = "alice@example.com", password: str = ADMIN_PASSWORD) -> str:
    r = await t.client.post("/auth/user/emailpass", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _admin(t: InProcess, token: str) -> httpx.AsyncClient:
    """A client of the app that sends `token` as a bearer on every call."""
    c = t.browser()
    c.headers.update(t.bearer(token))
    return c


_basic = InProcess.basic


async def _create(c: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await c.post("/admin/api-keys", json=body)
    assert r.status_code == 200, r.text
    key: dict[str, Any] = r.json()["api_key"]
    return key


async def audit_events(event: str) -> list[dict[str, Any]]:
    out = (await inprocess.cli("audit", "search", "--event", event, "--json")).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _status_is(
    t: InProcess, path: str, headers: dict[str, str], wanted: Callable[[int], bool]
) -> Callable[[], Awaitable[bool]]:
    """A check for `until`: the app answers `path` with a status `wanted` accepts."""

    async def check() -> bool:
        return wanted((await t.client.get(path, headers=headers)).status_code)

    return check


def test_secret_key_is_shown_once_stored_redacted_and_authenticates(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            async with _admin(t, await _login(t)) as admin:
                key = await _create(admin, title="backend sync", type="secret")
                raw = key["token"]
                assert raw.startswith("sk_") and len(raw) == 67
                assert key["redacted"] == raw[:6] + "***" + raw[-3:]
                assert key["id"].startswith("apk_") and key["created_by"].startswith("user_")
                # Never again: retrieve and list show "" for a secret key.
                assert (await admin.get(f"/admin/api-keys/{key['id']}")).json()["api_key"]["token"] == ""
                listed = (await admin.get("/admin/api-keys", params={"type": "secret"})).json()
                assert listed["limit"] == 20 and listed["offset"] == 0
                assert all(k["token"] == "" for k in listed["api_keys"])
                assert key["id"] in [k["id"] for k in listed["api_keys"]]
            # Basic base64("sk_…:"), the raw `Basic sk_…` form and x-medusa-access-token all work.
            for headers in (_basic(raw), {"Authorization": f"Basic {raw}"}, {"x-medusa-access-token": raw}):
                r = await t.client.get("/admin/api-keys", headers=headers)
                assert r.status_code == 200, (headers.keys(), r.text)
            # The key acts on Tillkey's own routes too, with the creator's grant (alice: everything).
            assert (await t.client.get("/rest/V1/products", headers=_basic(raw))).status_code == 200

    inprocess.run(body)


def test_bad_and_unknown_keys_are_refused(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            unknown = "sk_" + "0" * 64
            for headers in (
                _basic(unknown),
                {"x-medusa-access-token": unknown},
                {"Authorization": "Basic !!!not-base64"},
                {"Authorization": "Basic " + base64.b64encode(b"sk_short:").decode()},
            ):
                r = await t.client.get("/admin/api-keys", headers=headers)
                assert r.status_code == 401, r.text
                assert r.json() == UNAUTHORIZED

    inprocess.run(body)


def test_revoked_key_is_refused_on_the_next_call_and_audited(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db, **FEED) as t:
            await t.create_admin("alice")
            async with _admin(t, await _login(t)) as admin:
                key = await _create(admin, title="to revoke", type="secret")
                assert (await t.client.get("/admin/api-keys", headers=_basic(key["token"]))).status_code == 200
                r = await admin.post(f"/admin/api-keys/{key['id']}/revoke")
                assert r.status_code == 200 and r.json()["api_key"]["revoked_at"] is not None
                assert r.json()["api_key"]["revoked_by"].startswith("user_")
                r = await t.client.get("/admin/api-keys", headers=_basic(key["token"]))
                assert r.status_code == 401 and r.json() == UNAUTHORIZED
                # Revoking twice, and deleting: Medusa's answers.
                r = await admin.post(f"/admin/api-keys/{key['id']}/revoke")
                assert r.status_code == 400
                assert r.json() == {
                    "type": "not_allowed",
                    "message": "There are 1 secret keys that are already revoked.",
                }
                other = await _create(admin, title="live", type="secret")
                r = await admin.delete(f"/admin/api-keys/{other['id']}")
                assert r.status_code == 400 and r.json()["type"] == "not_allowed"
                assert r.json()["message"] == f"Cannot delete api keys that are not revoked - {other['id']}"
                r = await admin.delete(f"/admin/api-keys/{key['id']}")
                assert r.json() == {"id": key["id"], "object": "api_key", "deleted": True}
                assert (await admin.get(f"/admin/api-keys/{key['id']}")).status_code == 404

                # The refusal is written by the audit log's background writer.
                found = await until(lambda: audit_events("api_key.refused"), what="the api_key.refused record")
                assert found[0]["details"]["reason"] == "revoked", found
                records = await audit_events("api_key.*")
                assert {"api_key.created", "api_key.revoked", "api_key.deleted"} <= {e["event"] for e in records}
                assert key["token"] not in json.dumps(records)

    inprocess.run(body)


def test_delayed_revocation_stops_the_key_at_its_time(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("alice")
            async with _admin(t, await _login(t)) as admin:
                key = await _create(admin, title="rotating", type="secret")
                r = await admin.post(f"/admin/api-keys/{key['id']}/revoke", json={"revoke_in": 2})
                assert r.status_code == 200
            assert (await t.client.get("/admin/api-keys", headers=_basic(key["token"]))).status_code == 200
            t.advance(2.2)
            assert (await t.client.get("/admin/api-keys", headers=_basic(key["token"]))).status_code == 401

    inprocess.run(body)


def test_key_of_a_deactivated_or_deleted_creator_stops(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db, **FEED) as t:
            await t.create_admin("alice")
            await t.create_admin("bob")
            async with _admin(t, await _login(t, "bob@example.com")) as bob:
                key = (await _create(bob, title="bob's", type="secret"))["token"]
            assert (await t.client.get("/admin/api-keys", headers=_basic(key))).status_code == 200
            # The CLI writes to the database; the app learns of it through the change feed.
            await inprocess.cli("admin", "deactivate", "bob")
            await until(_status_is(t, "/admin/api-keys", _basic(key), lambda s: s == 401), what="refused")
            await inprocess.cli("admin", "activate", "bob")
            await until(_status_is(t, "/admin/api-keys", _basic(key), lambda s: s == 200), what="accepted")
            await inprocess.cli("admin", "delete", "bob")
            await until(_status_is(t, "/admin/api-keys", _basic(key), lambda s: s == 401), what="refused")

    inprocess.run(body)


def test_secret_key_never_exceeds_its_resources_or_its_creator(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            async with _admin(t, await _login(t)) as alice:
                narrow = await _create(
                    alice, title="catalog only", type="secret", resources=["Magento_Catalog::catalog"]
                )
                assert narrow["resources"] == ["Magento_Catalog::catalog"]
                r = await alice.post(
                    "/admin/api-keys", json={"title": "x", "type": "secret", "resources": ["Nope::nope"]}
                )
                assert r.status_code == 400 and r.json()["type"] == "invalid_data"
            h = _basic(narrow["token"])
            assert (await t.client.get("/rest/V1/products", headers=h)).status_code == 200
            r = await t.client.get("/admin/api-keys", headers=h)
            assert r.status_code == 403 and r.json()["type"] == "forbidden"
            # carol holds only the catalog: a key she makes cannot list API keys, whatever it asks for.
            async with _admin(t, await _login(t, "carol@example.com")) as carol:
                assert (await carol.get("/admin/api-keys")).status_code == 403

    inprocess.run(body)


def test_publishable_keys_gate_store_routes(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            async with _admin(t, await _login(t)) as admin:
                pk = await _create(admin, title="storefront", type="publishable")
                assert pk["token"].startswith("pk_")
                # Publishable tokens stay visible (they are public by design).
                assert (await admin.get(f"/admin/api-keys/{pk['id']}")).json()["api_key"]["token"] == pk["token"]
                r = await admin.post(
                    "/admin/api-keys", json={"title": "x", "type": "publishable", "resources": ["anonymous"]}
                )
                assert r.status_code == 400
            r = await t.client.get("/store/customers/me")
            assert r.status_code == 400 and r.json() == {
                "type": "not_allowed",
                "message": "Publishable API key required in the request header: x-publishable-api-key. "
                "You can manage your keys in settings in the dashboard.",
            }
            r = await t.client.get("/store/customers/me", headers={"x-publishable-api-key": "pk_" + "1" * 64})
            assert r.status_code == 400
            assert r.json() == {
                "type": "not_allowed",
                "message": "A valid publishable key is required to proceed with the request",
            }
            # A valid publishable key only opens the gate; the customer route still wants a customer.
            r = await t.client.get("/store/customers/me", headers={"x-publishable-api-key": pk["token"]})
            assert r.status_code == 401 and r.json() == UNAUTHORIZED
            # A publishable key is no identity: on an admin route it is nothing (and as Basic, refused).
            r = await t.client.get("/admin/api-keys", headers={"x-publishable-api-key": pk["token"]})
            assert r.status_code == 401
            r = await t.client.get("/admin/api-keys", headers=_basic(pk["token"]))
            assert r.status_code == 401

    inprocess.run(body)


def test_revoked_publishable_key_closes_the_store(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db) as t:
            await t.create_admin("alice")
            async with _admin(t, await _login(t)) as admin:
                pk = (await _create(admin, title="storefront", type="publishable"))["token"]
                h = {"x-publishable-api-key": pk}
                assert (await t.client.get("/store/customers/me", headers=h)).status_code == 401  # gate open
                listed = await admin.get("/admin/api-keys", params={"type": "publishable"})
                pk_id = listed.json()["api_keys"][0]["id"]
                await admin.post(f"/admin/api-keys/{pk_id}/revoke")
            assert (await t.client.get("/store/customers/me", headers=h)).status_code == 400

    inprocess.run(body)


def test_last_used_is_written_off_the_request_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess.cli_environment(monkeypatch, tmp_path)

    async def body() -> None:
        async with inprocess.running(tmp_path, last_used_interval=0.5) as t:
            await t.create_admin("alice")
            async with _admin(t, await _login(t)) as admin:
                key = await _create(admin, title="used", type="secret")
                assert key["last_used_at"] is None
                await t.client.get("/admin/api-keys", headers=_basic(key["token"]))

                async def last_used() -> Any:
                    r = await admin.get(f"/admin/api-keys/{key['id']}")
                    return r.json()["api_key"]["last_used_at"]

                # Flushed by the app's background sync loop, every last_used_interval (real time).
                assert await until(last_used, what="last_used_at written") is not None

    inprocess.run(body)


def test_customers_cannot_manage_keys_and_bad_input_is_400(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            r = await t.client.post(
                "/auth/customer/emailpass", json={"email": "roni_cost@example.com", "password": CUSTOMER_PASSWORD}
            )
            assert r.status_code == 200, r.text
            customer = r.json()["token"]
            r = await t.client.get("/admin/api-keys", headers=t.bearer(customer))
            assert r.status_code == 401 and r.json() == UNAUTHORIZED  # Medusa: wrong actor type is 401
            async with _admin(t, await _login(t)) as admin:
                for bad in (
                    {"title": "", "type": "secret"},
                    {"title": "x", "type": "other"},
                    {"title": 3, "type": "secret"},
                ):
                    r = await admin.post("/admin/api-keys", json=bad)
                    assert r.status_code == 400 and r.json()["type"] == "invalid_data", r.text
                r = await admin.post(
                    "/admin/api-keys", content=b"{not json", headers={"content-type": "application/json"}
                )
                assert r.status_code == 400 and r.json()["type"] == "invalid_data"
                assert (await admin.get("/admin/api-keys/apk_999999")).status_code == 404
                assert (await admin.get("/admin/api-keys/nope")).json()["type"] == "not_found"
                r = await admin.post("/admin/api-keys/apk_1/revoke", json={"revoke_in": "soon"})
                assert r.status_code == 400
                assert (await admin.get("/admin/api-keys", params={"limit": "x"})).status_code == 400

    inprocess.run(body)


@pytest.mark.parametrize("path", ["/admin/users/me", "/admin/api-keys"])
def test_no_credential_is_medusas_bare_401(tmp_path: Path, db: dict[str, Any], path: str) -> None:
    async def body() -> None:
        async with seeded(tmp_path, db) as t:
            r = await t.client.get(path)
            assert r.status_code == 401 and r.json() == UNAUTHORIZED

    inprocess.run(body)


def test_cli_creates_lists_and_revokes_keys(tmp_path: Path, db: dict[str, Any]) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **db, **FEED) as t:
            await seed(t.tk, CUSTOMER_PASSWORD)
            await inprocess.cli(
                "admin", "create", "--username", "ops", "--email", "ops@example.com", "--password", ADMIN_PASSWORD
            )
            key = await inprocess.cli_json(
                "api-key",
                "create",
                "--title",
                "warehouse",
                "--type",
                "secret",
                "--for",
                "ops",
                "-r",
                "Magento_Catalog::products",
            )
            raw = key["token"]
            assert raw.startswith("sk_") and key["resources"] == ["Magento_Catalog::products"]
            product = "/rest/V1/products/24-MB01"
            await until(_status_is(t, product, _basic(raw), lambda s: s != 401), what="the key known to the app")
            r = await t.client.get("/rest/V1/store/websites", headers=_basic(raw))
            assert r.status_code == 403  # not granted
            listed = (await inprocess.cli_json("api-key", "list"))["api_keys"]
            assert [k["id"] for k in listed] == [key["id"]] and listed[0]["token"] == ""
            assert raw not in json.dumps(listed)
            await inprocess.cli("api-key", "revoke", key["id"])
            await until(_status_is(t, product, _basic(raw), lambda s: s == 401), what="the key refused")
            # A secret key acts for an admin; without one, or for one who does not exist, it is refused.
            res = await inprocess.cli("api-key", "create", "--title", "x", "--type", "secret", check=False)
            assert "needs the admin" in res.stderr
            nobody = await inprocess.cli(
                "api-key", "create", "--title", "x", "--type", "secret", "--for", "nobody", check=False
            )
            assert nobody.exit_code == 1 and "no admin named" in nobody.stderr
            assert (await inprocess.cli("api-key", "revoke", "apk_999", check=False)).exit_code == 1

    inprocess.run(body)
