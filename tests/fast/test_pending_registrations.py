"""Pending Medusa registrations are bounded in time (issue 21): past TILLKEY_PENDING_REGISTRATION_TTL
a registration's tokens are refused and its row is purged, and a token can never be taken for a
later registration that reuses the purged row's id (SQLite reuses the highest rowid)."""

from __future__ import annotations

from pathlib import Path

from tests import inprocess
from tests.inprocess import InProcess
from tillkey.store import identities

HOUR = 3600
TTL = 2 * HOUR


async def _register(t: InProcess, email: str) -> str:
    r = await t.client.post(
        "/auth/customer/emailpass/register", json={"email": email, "password": "Shopper-pass-4-tests"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _store_key(t: InProcess) -> dict[str, str]:
    await t.create_admin("keeper", email="keeper@example.com")
    r = await t.client.post(
        "/auth/user/emailpass", json={"email": "keeper@example.com", "password": inprocess.ADMIN_PASSWORD}
    )
    made = await t.client.post(
        "/admin/api-keys", json={"title": "web", "type": "publishable"}, headers=t.bearer(r.json()["token"])
    )
    assert made.status_code == 200, made.text
    return {"x-publishable-api-key": made.json()["api_key"]["token"]}


async def _keep_alive(t: InProcess, token: str, until: int) -> str:
    """Renew a registration token every half hour (it lives an hour) until `until` seconds on."""
    moved = 0
    while moved < until:
        step = min(HOUR // 2, until - moved)
        t.advance(step)
        moved += step
        r = await t.client.post("/auth/token/refresh", headers=t.bearer(token))
        assert r.status_code == 200, r.text
        token = str(r.json()["token"])
    return token


async def _pending(t: InProcess, email: str) -> identities.Identity | None:
    async with t.tk.db.session() as s:
        return await identities.find(s, "emailpass", "customer", email)


def test_a_pending_registration_ends_after_its_ttl_and_is_purged(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, pending_registration_ttl=TTL) as t:
            store = await _store_key(t)
            token = await _register(t, "late@example.com")
            fresh = await _keep_alive(t, token, TTL - 60)  # renewable within the registration's life
            t.advance(120)
            assert (await t.client.post("/auth/token/refresh", headers=t.bearer(fresh))).status_code == 401
            made = await t.client.post(
                "/store/customers",
                json={"email": "late@example.com", "first_name": "L"},
                headers={**t.bearer(fresh), **store},
            )
            assert made.status_code == 401, made.text
            await t.tk._purge()
            assert await _pending(t, "late@example.com") is None
            # The email is free again: registering anew works and leads to a customer.
            again = await _register(t, "late@example.com")
            made = await t.client.post(
                "/store/customers",
                json={"email": "late@example.com", "first_name": "L"},
                headers={**t.bearer(again), **store},
            )
            assert made.status_code == 200, made.text

    inprocess.run(body)


def test_registering_again_after_the_ttl_starts_a_new_registration_before_any_purge(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, pending_registration_ttl=TTL) as t:
            store = await _store_key(t)
            await _register(t, "back@example.com")
            t.advance(TTL + 60)
            again = await _register(t, "back@example.com")
            made = await t.client.post(
                "/store/customers",
                json={"email": "back@example.com", "first_name": "B"},
                headers={**t.bearer(again), **store},
            )
            assert made.status_code == 200, made.text

    inprocess.run(body)


def test_a_token_of_a_purged_registration_never_claims_the_one_that_reuses_its_id(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, pending_registration_ttl=TTL) as t:
            store = await _store_key(t)
            old = await _register(t, "first@example.com")
            first = await _pending(t, "first@example.com")
            old = await _keep_alive(t, old, TTL - 30)
            t.advance(60)  # the registration has ended; the renewed token itself is still unexpired
            await t.tk._purge()
            t.advance(1)
            await _register(t, "second@example.com")
            second = await _pending(t, "second@example.com")
            assert first is not None and second is not None
            assert second.id == first.id  # the id was reused: the token must still not fit
            for attempt in (
                t.client.post("/auth/token/refresh", headers=t.bearer(old)),
                t.client.post("/auth/session", headers=t.bearer(old)),
                t.client.post(
                    "/store/customers",
                    json={"email": "second@example.com", "first_name": "Eve"},
                    headers={**t.bearer(old), **store},
                ),
            ):
                r = await attempt
                assert r.status_code == 401, r.text
            assert (await _pending(t, "second@example.com")) == second  # untouched, still pending

    inprocess.run(body)
