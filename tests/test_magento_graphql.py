"""Magento's GraphQL customer-token mutations, driven by a real GraphQL client (gql, over httpx,
in process): the same sign-in, throttle, lockout and audit as the REST customer token, Magento
2.4.8's error shapes and statuses (magento-migration.md §B)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from tests import inprocess
from tests.inprocess import CUSTOMER_PASSWORD, InProcess
from tillkey import audit
from tillkey.accounts.signin import SIGN_IN_FAILED
from tillkey.store import accounts as repo
from tillkey.store.audit import AuditQuery

URL = f"{inprocess.BASE_URL}/graphql"
UNPARSEABLE = "Unable to parse the request."
AS_JSON = {"content-type": "application/json"}
GENERATE = """
    mutation SignIn($email: String!, $password: String!) {
        generateCustomerToken(email: $email, password: $password) { token }
    }
"""
REVOKE = gql("mutation { revokeCustomerToken { result } }")


@asynccontextmanager
async def client(t: InProcess, token: str | None = None) -> AsyncIterator[Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = HTTPXAsyncTransport(url=URL, headers=headers, transport=t.transport)
    async with Client(transport=transport) as session:
        yield session


async def sign_in(t: InProcess, email: str, password: str = CUSTOMER_PASSWORD) -> str:
    async with client(t) as session:
        result = await session.execute(GraphQLRequest(GENERATE, variable_values={"email": email, "password": password}))
    return str(result["generateCustomerToken"]["token"])


async def refused(t: InProcess, email: str, password: str) -> dict[str, Any]:
    async with client(t) as session:
        with pytest.raises(TransportQueryError) as caught:
            await session.execute(GraphQLRequest(GENERATE, variable_values={"email": email, "password": password}))
    assert caught.value.errors is not None
    (error,) = caught.value.errors
    assert caught.value.data == {"generateCustomerToken": None}
    return dict(error)


def test_generate_then_use_then_revoke_then_the_revoked_token_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            token = await sign_in(t, "ada@example.com")
            me = await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))
            assert me.status_code == 200 and me.json()["email"] == "ada@example.com"  # a normal customer token
            async with client(t, token) as session:
                assert await session.execute(REVOKE) == {"revokeCustomerToken": {"result": True}}
            assert (await t.client.get("/rest/V1/customers/me", headers=t.bearer(token))).status_code == 401
            # Magento 2.4.8: a revoked Bearer is refused on every GraphQL request, with 401.
            r = await t.client.post(
                "/graphql", json={"query": "mutation { revokeCustomerToken { result } }"}, headers=t.bearer(token)
            )
            assert r.status_code == 401
            assert r.json() == {
                "errors": [
                    {"message": "User token has been revoked", "extensions": {"category": "graphql-authentication"}}
                ]
            }
            r = await t.client.post("/graphql", json={"query": "{ tillkey }"}, headers=t.bearer("garbage"))
            assert (
                r.status_code == 401 and r.json()["errors"][0]["message"] == "Composite reader could not read a token"
            )
            records = await t.tk.audit.search(AuditQuery(event=audit.LOGIN_SUCCESS))
            assert len(records) == 1 and records[0].username == "ada@example.com"
            assert await t.tk.audit.search(AuditQuery(event=audit.TOKEN_REVOKED))

    inprocess.run(body)


def test_wrong_password_is_magentos_authentication_error_with_401(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_customer("ada@example.com")
            error = await refused(t, "ada@example.com", "wrong-password")
            assert error["message"] == SIGN_IN_FAILED and error["path"] == ["generateCustomerToken"]
            assert error["extensions"] == {"category": "graphql-authentication"} and error["locations"]
            assert await refused(t, "nobody@example.com", "wrong-password") == error  # no enumeration
            r = await t.client.post(
                "/graphql", json={"query": GENERATE, "variables": {"email": "ada@example.com", "password": "x"}}
            )
            assert r.status_code == 401 and list(r.json()) == ["errors", "data"]  # errors first, as webonyx

    inprocess.run(body)


def test_empty_arguments_are_input_errors(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            error = await refused(t, "", "x")
            assert error["message"] == 'Specify the "email" value.'
            assert error["extensions"] == {"category": "graphql-input"}
            assert (await refused(t, "a@example.com", ""))["message"] == 'Specify the "password" value.'

    inprocess.run(body)


def test_lockout_and_throttle_are_the_rest_endpoints(tmp_path: Path) -> None:
    """One failure budget: failures over GraphQL lock the account for REST too, and the right
    password is refused (same message) until the lock ends."""

    async def body() -> None:
        async with inprocess.running(tmp_path, customer_lockout_failures=3, login_throttle_max_failures=100) as t:
            await t.create_customer("ada@example.com")
            for _ in range(3):
                await refused(t, "ada@example.com", "wrong-password")
            assert (await refused(t, "ada@example.com", CUSTOMER_PASSWORD))["message"] == SIGN_IN_FAILED
            rest = await t.client.post(
                "/rest/V1/integration/customer/token",
                json={"username": "ada@example.com", "password": CUSTOMER_PASSWORD},
            )
            assert rest.status_code == 401
            assert await t.tk.audit.search(AuditQuery(event=audit.ACCOUNT_LOCKED))
            t.advance(t.tk.settings.customer_lockout_seconds + 1)
            assert await sign_in(t, "ada@example.com")

    inprocess.run(body)


def test_the_login_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, rate_limit_login_username="2/minute") as t:
            query = {"query": 'mutation { generateCustomerToken(email: "a@example.com", password: "x") { token } }'}
            statuses = [(await t.client.post("/graphql", json=query)).status_code for _ in range(3)]
            assert statuses == [401, 401, 429]
            r = await t.client.post("/graphql", json=query)
            assert r.status_code == 429 and "retry-after" in r.headers
            assert r.json()["errors"][0]["extensions"] == {"category": "graphql-authentication"}

    inprocess.run(body)


def test_a_legacy_hash_signs_in_over_graphql_and_is_upgraded(tmp_path: Path) -> None:
    vectors = json.loads((Path(__file__).parent / "vectors" / "legacy_hashes" / "magento.json").read_text())
    vector = vectors["vectors"][1]  # sha256, version 1

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            customer = await t.create_customer("old@example.com")
            async with t.tk.db.transaction() as s:
                await repo.set_customer_password_hash(s, customer.id, vector["hash"])
            assert await sign_in(t, "old@example.com", vector["password"])
            (rehashed,) = await t.tk.audit.search(AuditQuery(event=audit.PASSWORD_REHASHED))
            assert json.loads(rehashed.details or "{}") == {"scheme": "magento:1"}

    inprocess.run(body)


def test_revoke_without_a_customer_token_is_an_authorization_error(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            await t.create_admin("boss")
            admin_token = await t.admin_token("boss")
            for headers in ({}, t.bearer(admin_token)):
                r = await t.client.post(
                    "/graphql", json={"query": "mutation { revokeCustomerToken { result } }"}, headers=headers
                )
                assert r.status_code == 403
                (error,) = r.json()["errors"]
                assert error["message"] == "The current customer isn't authorized."
                assert error["extensions"] == {"category": "graphql-authorization"}

    inprocess.run(body)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": AS_JSON}, 400, UNPARSEABLE),
        ({"content": b"[]", "headers": AS_JSON}, 400, UNPARSEABLE),
        (
            {"content": b"query=x", "headers": {"content-type": "text/plain"}},
            400,
            "Request content type must be application/json",
        ),
        ({"json": {}}, 400, "Syntax Error: Unexpected <EOF>."),
        ({"json": {"query": "{ products { items { sku } } }"}}, 200, "Cannot query field 'products' on type 'Query'."),
        ({"json": {"query": 'mutation { generateCustomerToken(email: "a") { token } }'}}, 200, None),
        ({"json": {"query": "{ tillkey }", "variables": "nope"}}, 400, "Unable to parse the request."),
    ],
)
def test_bad_requests_get_graphql_errors_never_a_500(
    tmp_path: Path, request_kwargs: dict[str, Any], status: int, message: str | None
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            r = await t.client.post("/graphql", **request_kwargs)
            assert r.status_code == status, r.text
            (error,) = r.json()["errors"]
            if message is not None:
                assert error["message"] == message
            else:
                assert "generateCustomerToken(password:)" in error["message"] and "extensions" not in error

    inprocess.run(body)


def test_get_serves_queries_and_refuses_mutations(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            r = await t.client.get("/graphql", params={"query": "{ tillkey }"})
            assert r.status_code == 200 and "generateCustomerToken" in r.json()["data"]["tillkey"]
            mutation = 'mutation { generateCustomerToken(email: "a@example.com", password: "x") { token } }'
            r = await t.client.get("/graphql", params={"query": mutation})
            assert r.status_code == 400
            assert r.json()["errors"] == [
                {
                    "message": "Mutation requests allowed only for POST requests",
                    "extensions": {"category": "graphql-input"},
                }
            ]

    inprocess.run(body)


def test_the_client_can_read_the_schema_by_introspection(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            transport = HTTPXAsyncTransport(url=URL, transport=t.transport)
            async with Client(transport=transport, fetch_schema_from_transport=True) as session:
                assert session.client.schema is not None
                assert "generateCustomerToken" in session.client.schema.mutation_type.fields  # type: ignore[union-attr]

    inprocess.run(body)
