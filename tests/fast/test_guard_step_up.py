"""Step-up (RFC 9470) in library mode: a host app's route guarded by `guard.requires(...)` asks for a
recent multi-factor sign-in as the server does, with the server's rule and its challenge. The
resource-level default (cancelling an order: MFA within five minutes) answers exactly as the
server's own `POST /rest/V1/orders/{id}/cancel`; a route's own requirement (`step_up=`) adds to it.
The guard reaches the in-process server, and the test reaches the host app, through
httpx.ASGITransport; the guard and the server share the injected clock."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from tests import inprocess
from tests.guard_support import in_process_guard
from tests.inprocess import ADMIN_PASSWORD, InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.access.stepup import StepUp
from tillkey.guard import Guard
from tillkey.principal import Principal, UserType
from tillkey.storeapi.seed import seed

CANCEL = "Magento_Sales::cancel"
VIEW = "Magento_Sales::actions_view"
CHALLENGE = (
    'Bearer realm="tillkey", error="insufficient_user_authentication", '
    'error_description="a multi-factor sign-in within the last 300 seconds is required", '
    'acr_values="mfa", max_age="300"'
)
PAYOUT_CHALLENGE = (
    'Bearer realm="tillkey", error="insufficient_user_authentication", '
    'error_description="a multi-factor sign-in using otp within the last 120 seconds is required", '
    'acr_values="mfa", max_age="120"'
)


async def _guard(t: InProcess, name: str = "guard", **options: Any) -> Guard:
    return await in_process_guard(t, name, **options)


def _host_app(guard: Guard) -> FastAPI:
    """A shop's own back office, protected by the guard."""
    app = FastAPI()
    guard.install(app, lifespan=False)

    @app.get("/orders/{order_id}")
    async def show(order_id: int, who: Principal = Depends(guard.requires(VIEW))) -> dict[str, int]:  # noqa: B008
        return {"order": order_id, "by": who.user_id}

    @app.post("/orders/{order_id}/cancel")
    async def cancel(order_id: int, who: Principal = Depends(guard.requires(CANCEL))) -> dict[str, int]:  # noqa: B008
        return {"cancelled": order_id, "by": who.user_id}

    payout_rule = StepUp(acr="mfa", amr=("otp",), max_age=120)

    @app.post("/payouts")
    async def payout(who: Principal = Depends(guard.requires(VIEW, step_up=payout_rule))) -> dict[str, int]:  # noqa: B008
        return {"paid_by": who.user_id}

    return app


async def _mfa_login(t: InProcess, secret: str) -> str:
    r = await t.client.post(
        "/rest/V1/tfa/provider/google/authenticate",
        json={"username": "alice", "password": ADMIN_PASSWORD, "otp": t.totp_code(secret)},
    )
    assert r.status_code == 200, r.text
    return str(r.json())


def _assert_challenge(r: httpx.Response, challenge: str = CHALLENGE) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == challenge
    description = challenge.split('error_description="')[1].split('"')[0]
    assert r.json()["message"] == description + "."


def test_a_guarded_route_asks_for_a_recent_second_factor_as_the_server_does(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="optional") as t:
            order = int((await seed(t.tk))["orders"][0]["entity_id"])
            alice = await t.create_admin("alice", resources=[CANCEL, VIEW])
            secret, _codes = await t.enable_totp(alice.id)
            guard = await _guard(t)
            await guard.start()
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=_host_app(guard)), base_url="http://backoffice"
                ) as host:
                    # A password-only token: reading is fine, cancelling is challenged, with the very
                    # answer the server gives on its own cancel route.
                    password_only = await t.token_for(UserType.ADMIN, alice.id)
                    auth = t.bearer(password_only)
                    assert (await host.get(f"/orders/{order}", headers=auth)).status_code == 200
                    on_guard = await host.post(f"/orders/{order}/cancel", headers=auth)
                    _assert_challenge(on_guard)
                    on_server = await t.client.post(f"/rest/V1/orders/{order}/cancel", headers=auth)
                    _assert_challenge(on_server)
                    assert on_guard.json() == on_server.json()
                    _assert_challenge(await host.post("/payouts", headers=auth), PAYOUT_CHALLENGE)

                    # After the second factor: both pass.
                    mfa = t.bearer(await _mfa_login(t, secret))
                    r = await host.post(f"/orders/{order}/cancel", headers=mfa)
                    assert r.status_code == 200 and r.json() == {"cancelled": order, "by": alice.id}
                    assert (await host.post("/payouts", headers=mfa)).status_code == 200

                    # Older than the payout's two minutes: challenged there, still fine for cancel.
                    t.advance(121)
                    _assert_challenge(await host.post("/payouts", headers=mfa), PAYOUT_CHALLENGE)
                    assert (await host.post(f"/orders/{order}/cancel", headers=mfa)).status_code == 200
                    # Older than five minutes: challenged for cancel too, here as on the server.
                    t.advance(180)
                    _assert_challenge(await host.post(f"/orders/{order}/cancel", headers=mfa))
                    _assert_challenge(await t.client.post(f"/rest/V1/orders/{order}/cancel", headers=mfa))
                    # A fresh multi-factor sign-in passes again.
                    fresh = t.bearer(await _mfa_login(t, secret))
                    assert (await host.post(f"/orders/{order}/cancel", headers=fresh)).status_code == 200
                    assert (await host.post("/payouts", headers=fresh)).status_code == 200
            finally:
                await guard.stop()

    inprocess.run(body)


def test_the_guards_resource_rules_follow_the_servers_setting(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, step_up={}) as t:
            alice = await t.create_admin("alice", resources=[CANCEL])
            token = t.bearer(await t.token_for(UserType.ADMIN, alice.id))
            # TILLKEY_STEP_UP={} on the server: the guard is given the same and asks for no step-up.
            guard = await _guard(t, step_up={})
            await guard.start()
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=_host_app(guard)), base_url="http://backoffice"
                ) as host:
                    assert (await host.post("/orders/7/cancel", headers=token)).status_code == 200
            finally:
                await guard.stop()

    inprocess.run(body)


def test_machines_get_403_unless_the_rule_allows_them(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            made = await t.tk.services.clients.create(
                OPERATOR,
                name="erp",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=[CANCEL],
            )
            basic = base64.b64encode(f"{made.client.client_id}:{made.secret}".encode()).decode()
            r = await t.client.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
            )
            assert r.status_code == 200, r.text
            erp = t.bearer(r.json()["access_token"])
            guard = await _guard(t)
            app = _host_app(guard)

            @app.post("/orders/{order_id}/cancel-by-erp")
            async def by_erp(
                order_id: int,
                who: Principal = Depends(guard.requires(CANCEL, step_up=StepUp(machines="allow"))),  # noqa: B008
            ) -> dict[str, int]:
                return {"cancelled": order_id}

            await guard.start()
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://backoffice"
                ) as host:
                    # No person to sign in again: 403 (no challenge), as on the server.
                    r = await host.post("/orders/7/cancel", headers=erp)
                    assert r.status_code == 403 and "www-authenticate" not in r.headers
                    assert r.json()["parameters"] == {"kind": "client"}
                    # Strictest wins: the route's "allow" does not lift the resource's "deny"...
                    assert (await host.post("/orders/7/cancel-by-erp", headers=erp)).status_code == 403
            finally:
                await guard.stop()
            # ...unless the resource rule allows machines too (the server's TILLKEY_STEP_UP, given the guard).
            allowing = await _guard(t, "guard-2", step_up={CANCEL: StepUp(machines="allow")})
            await allowing.start()
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=_host_app(allowing)), base_url="http://backoffice"
                ) as host:
                    assert (await host.post("/orders/7/cancel", headers=erp)).status_code == 200
            finally:
                await allowing.stop()

    inprocess.run(body)
