"""Password reset (issue 21): a new request never voids a token already mailed, requests are
limited per account (whatever the IP or spelling), a token is checked against the route's actor
type before it is spent, and a completed reset voids the account's other tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests import inprocess
from tillkey.accounts import medusa_auth
from tillkey.store.audit import AuditQuery

EMAIL = "forgetful@example.com"
REQUEST = "/auth/customer/emailpass/reset-password"
UPDATE = "/auth/customer/emailpass/update"


async def _settled() -> None:
    """Reset requests do their work after answering; wait for it."""
    while medusa_auth._background:
        await asyncio.gather(*list(medusa_auth._background))


def _mails(outbox: Path) -> list[str]:
    if not outbox.exists():
        return []
    return [json.loads(line)["token"] for line in outbox.read_text().splitlines()]


async def _request(t: inprocess.InProcess, identifier: str = EMAIL, path: str = REQUEST) -> None:
    r = await t.client.post(path, json={"identifier": identifier})
    assert r.status_code == 201, r.text
    await _settled()


async def _update(t: inprocess.InProcess, token: str, password: str, path: str = UPDATE) -> Any:
    return await t.client.post(path, headers=t.bearer(token), json={"password": password})


def test_a_new_request_keeps_the_tokens_already_mailed(tmp_path: Path) -> None:
    async def body() -> None:
        outbox = tmp_path / "outbox.jsonl"
        async with inprocess.running(tmp_path, outbox_file=outbox) as t:
            await t.create_customer(EMAIL)
            for _ in range(3):
                await _request(t)
            first, second, third = _mails(outbox)
            # An attacker's later requests do not void the one the customer is about to use.
            r = await _update(t, first, "New-pass-2024")
            assert r.status_code == 200, r.text
            # A completed reset voids the rest: they cannot reset the password again.
            for other in (second, third):
                assert (await _update(t, other, "Other-pass-2024")).status_code == 401

    inprocess.run(body)


def test_requests_per_account_are_capped_whatever_the_spelling(tmp_path: Path) -> None:
    async def body() -> None:
        outbox = tmp_path / "outbox.jsonl"
        async with inprocess.running(tmp_path, outbox_file=outbox) as t:
            await t.create_customer(EMAIL)
            cap = t.tk.settings.password_reset_per_account
            for spelling in [EMAIL, EMAIL.upper(), " " + EMAIL, "Forgetful@Example.COM"] * 3:
                await _request(t, spelling)
            mails = _mails(outbox)
            assert len(mails) == cap
            refused = await t.tk.audit.search(AuditQuery(event="password_reset.requested", outcome="failure"))
            assert refused and all("within the token lifetime" in (e.details or "") for e in refused)
            # Every token mailed is still good (none was voided by the requests past the cap).
            assert (await _update(t, mails[0], "New-pass-2024")).status_code == 200
            # Once the tokens' lifetime has passed, requests are honoured again.
            t.advance(t.tk.settings.password_reset_ttl + 1)
            await _request(t)
            assert len(_mails(outbox)) == cap + 1

    inprocess.run(body)


def test_the_cap_holds_across_processes(tmp_path: Path) -> None:
    async def body() -> None:
        outbox = tmp_path / "outbox.jsonl"
        async with (
            inprocess.running(tmp_path, outbox_file=outbox) as one,
            inprocess.running(tmp_path, outbox_file=outbox) as two,
        ):
            await one.create_customer(EMAIL)
            for t in (one, two) * 4:
                await _request(t)
            assert len(_mails(outbox)) == one.tk.settings.password_reset_per_account

    inprocess.run(body)


def test_another_actors_route_refuses_the_token_without_spending_it(tmp_path: Path) -> None:
    async def body() -> None:
        outbox = tmp_path / "outbox.jsonl"
        async with inprocess.running(tmp_path, outbox_file=outbox) as t:
            await t.create_customer(EMAIL)
            await t.create_admin("ops", email="ops@example.com")
            await _request(t)
            (customer_token,) = _mails(outbox)
            r = await _update(t, customer_token, "New-pass-2024", path="/auth/user/emailpass/update")
            assert r.status_code == 401 and r.json() == {"type": "unauthorized", "message": "Invalid token"}
            assert (await _update(t, customer_token, "New-pass-2024")).status_code == 200
            # And the other way round: an admin's token on the customer route.
            await _request(t, "ops@example.com", path="/auth/user/emailpass/reset-password")
            admin_token = _mails(outbox)[-1]
            assert (await _update(t, admin_token, "Admin-new-pass-2024")).status_code == 401
            r = await _update(t, admin_token, "Admin-new-pass-2024", path="/auth/user/emailpass/update")
            assert r.status_code == 200, r.text

    inprocess.run(body)
