"""A library-mode Guard in front of an in-process Tillkey (tests/inprocess.py): its feed is an
integration holding `Tillkey::auth_state`, reached through the app's own httpx.ASGITransport, on the
app's injected clock."""

from __future__ import annotations

from typing import Any

import httpx

from tests import inprocess
from tests.inprocess import InProcess
from tillkey.access.delegation import OPERATOR
from tillkey.guard import Guard, IntegrationCredential


async def in_process_guard(
    t: InProcess, name: str, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> Guard:
    """A guard (not started) whose feed integration `name` is created and activated here; it reaches
    the app through `transport` (default: the app's own); `options` go to Guard."""
    created = await t.tk.services.integrations.create(OPERATOR, name=name, resources=["Tillkey::auth_state"])
    done = await t.tk.services.integrations.activate(OPERATOR, name)
    assert done.access_token and done.access_token_secret
    transport = transport or t.transport
    assert transport is not None
    return Guard(
        inprocess.BASE_URL,
        feed_integration=IntegrationCredential(
            consumer_key=created.consumer_key,
            consumer_secret=created.consumer_secret,
            access_token=done.access_token,
            access_token_secret=done.access_token_secret,
        ),
        http_client=lambda: httpx.AsyncClient(transport=transport, timeout=30),
        clock=t.clock,
        **options,
    )
