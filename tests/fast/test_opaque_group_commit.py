"""Opaque OAuth 2 access tokens are committed in groups (tokens/issuer.py `OpaqueStore`), on SQLite
and PostgreSQL: a burst of client-credentials issuances shares a few transactions instead of one
commit each, every token answered is already in the database (a 200 is durable), and a commit that
fails fails every request of its group with RFC 6749's `temporarily_unavailable` (503), never a 500
and never a token that does not exist."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from tests import inprocess
from tests.inprocess import InProcess
from tillkey import audit
from tillkey.access.delegation import OPERATOR
from tillkey.store import auth as repo
from tillkey.store.audit import AuditQuery

SCOPE = "Magento_Catalog::products"
BURST = 60


def _basic(client_id: str, secret: str | None) -> dict[str, str]:
    assert secret is not None  # a confidential client
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@asynccontextmanager
async def opaque_app(tmp_path: Path, backend: str) -> AsyncIterator[tuple[InProcess, dict[str, str], dict[str, str]]]:
    """The app issuing opaque OAuth 2 tokens, a client-credentials client and a resource server
    (their Basic headers)."""
    with inprocess.database(backend, tmp_path) as db:
        async with inprocess.running(tmp_path, oauth2_access_token_format="opaque", **db) as t:
            clients = t.tk.services.clients
            service = await clients.create(
                OPERATOR,
                name="warehouse",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=[SCOPE],
            )
            gateway = await clients.create(
                OPERATOR,
                name="gateway",
                client_type="confidential",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scopes=[],
                resource_server=True,
            )
            yield (
                t,
                _basic(service.client.client_id, service.secret),
                _basic(gateway.client.client_id, gateway.secret),
            )


async def issue(t: InProcess, auth: dict[str, str]) -> httpx.Response:
    return await t.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=auth)


async def issued_records(t: InProcess) -> list[Any]:
    return await t.tk.audit.search(AuditQuery(event=audit.TOKEN_ISSUED, limit=1000))


async def stored(t: InProcess, token: str) -> repo.OpaqueToken | None:
    """The token's row as a fresh connection reads it: committed, or absent."""
    async with t.tk.db.session() as s:
        return await repo.opaque_token(s, t.tk.master.digest(token))


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_a_burst_of_opaque_issuances_shares_commits_and_every_token_answered_is_stored(
    backend: str, tmp_path: Path
) -> None:
    async def body() -> None:
        async with opaque_app(tmp_path, backend) as (t, service, gateway):
            assert (await issue(t, service)).status_code == 200  # the client is known and warm
            commits = 0

            def counted(_conn: Any) -> None:
                nonlocal commits
                commits += 1

            event.listen(t.tk.db.engine.sync_engine, "commit", counted)
            try:
                answers = await asyncio.gather(*(issue(t, service) for _ in range(BURST)))
            finally:
                event.remove(t.tk.db.engine.sync_engine, "commit", counted)
            assert [r.status_code for r in answers] == [200] * BURST, answers[0].text
            assert all(r.headers["cache-control"] == "no-store" for r in answers)
            tokens = [r.json()["access_token"] for r in answers]
            assert len(set(tokens)) == BURST and all(tok.startswith("tk_at_") for tok in tokens)
            # One commit per token would be BURST commits for the rows alone (plus the audit's).
            assert commits < BURST // 2, commits
            for tok in tokens:
                row = await stored(t, tok)
                assert row is not None and row.scope == (SCOPE,)
            infos = await asyncio.gather(
                *(t.client.post("/oauth2/introspect", data={"token": tok}, headers=gateway) for tok in tokens)
            )
            assert all(i.status_code == 200 and i.json()["active"] is True for i in infos)
            assert len({i.json()["jti"] for i in infos}) == BURST
            products = await t.client.get(
                "/rest/V1/products", params={"searchCriteria[pageSize]": "1"}, headers=t.bearer(tokens[-1])
            )
            assert products.status_code == 200, products.text

            # Each token's record was committed with its row, before its 200: none waits in a queue.
            assert t.tk.audit.backlog == 0
            assert len(await issued_records(t)) == BURST + 1
            assert t.tk.audit.dropped == 0 and t.tk.audit.failed == 0

    inprocess.run(body)


@pytest.mark.parametrize("backend", inprocess.BACKENDS)
def test_a_failed_group_commit_fails_each_of_its_requests_cleanly_and_the_next_group_commits(
    backend: str, tmp_path: Path
) -> None:
    async def body() -> None:
        async with opaque_app(tmp_path, backend) as (t, service, gateway):
            before = await issue(t, service)
            assert before.status_code == 200
            # The table the rows go to is gone for a while: every insert and commit fails.
            async with t.tk.db.transaction() as s:
                await s.execute(text("ALTER TABLE opaque_tokens RENAME TO opaque_tokens_away"))
            try:
                failed = await asyncio.gather(*(issue(t, service) for _ in range(20)))
            finally:
                async with t.tk.db.transaction() as s:
                    await s.execute(text("ALTER TABLE opaque_tokens_away RENAME TO opaque_tokens"))
            for r in failed:
                assert r.status_code == 503, r.text
                assert r.json()["error"] == "temporarily_unavailable"
                assert "access_token" not in r.json()
                assert r.headers["retry-after"] == "1"
                assert r.headers["cache-control"] == "no-store"
            # The committer is not stuck: the next burst commits, and the earlier token still works.
            again = await asyncio.gather(*(issue(t, service) for _ in range(10)))
            assert [r.status_code for r in again] == [200] * 10
            for tok in [before.json()["access_token"], *(r.json()["access_token"] for r in again)]:
                assert await stored(t, tok) is not None
                info = await t.client.post("/oauth2/introspect", data={"token": tok}, headers=gateway)
                assert info.json()["active"] is True
            # A refused token has no token.issued record: the record rolled back with its row.
            assert len(await issued_records(t)) == 1 + 10

    inprocess.run(body)
