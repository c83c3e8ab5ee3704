"""Signing-key rotation: publish ahead, sign, verify through a grace period, then leave the JWKS.

The verifier here is PyJWT's PyJWKClient, a JWKS-caching verifier nobody here wrote, holding the
key set it fetched before the new key signs. It fetches over a socket of its own, so the app (in
this process, tests/inprocess.py) also listens on a loopback port. Time is the app's clock, moved
past the publish-ahead and grace periods; the operator's CLI reads the same clock.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import inprocess
from tests.inprocess import InProcess
from tests.polling import until
from tillkey import runtime

ROUTE = "/rest/V1/store/websites"
SETTINGS: dict[str, Any] = {"sync_interval": 0.2}  # how soon the app follows the CLI, as conftest's servers


def share_clock(monkeypatch: pytest.MonkeyPatch, t: InProcess) -> None:
    """The CLI builds a Tillkey of its own; it gets the app's clock, so `keys list` after `advance`
    sees the time the app sees."""
    monkeypatch.setattr(runtime, "Clock", lambda: t.clock)


async def _kids(t: InProcess) -> set[str]:
    return {k["kid"] for k in (await t.client.get("/.well-known/jwks.json")).json()["keys"]}


async def _status(t: InProcess, token: str) -> int:
    return (await t.client.get(ROUTE, headers=t.bearer(token))).status_code


async def _states() -> dict[str, str]:
    return {k["kid"]: k["state"] for k in (await inprocess.cli_json("keys", "list"))["keys"]}


def test_rotation_keeps_cached_verifiers_working_and_retires_the_old_key(
    tmp_path: Path, db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_ahead, grace = 300, 60

    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS, **db) as t, inprocess.listening(t) as url:
            share_clock(monkeypatch, t)
            await t.create_admin("alice")
            old_token = await t.admin_token("alice")
            old_kid = jwt.get_unverified_header(old_token)["kid"]
            # A verifier that refreshes its cached key set only when it ages out (publish_ahead, as
            # the JWKS's max-age says), never on an unknown kid: rotation must publish ahead.
            verifier = jwt.PyJWKClient(f"{url}/.well-known/jwks.json", lifespan=3600, cooldown_duration=3600)
            await asyncio.to_thread(verifier.get_signing_key, old_kid)  # it caches the pre-rotation key set

            rotated = await inprocess.cli_json(
                "keys", "rotate", "--publish-ahead", str(publish_ahead), "--grace", str(grace)
            )
            new_kid = rotated["kid"]
            assert rotated["replaced"] == [old_kid] and new_kid != old_kid

            # Published at once (within the sync interval: the app follows the CLI's change), while
            # the old key still signs.
            async def published() -> bool:
                return await _kids(t) == {old_kid, new_kid}

            await until(published, what="the new key in the JWKS")
            assert await _states() == {old_kid: "signing", new_kid: "pending"}
            assert jwt.get_unverified_header(await t.admin_token("alice"))["kid"] == old_kid
            # The verifier's cached set ages out within the publish-ahead window (lifespan <= max-age):
            # it fetches the JWKS again, and never after (lifespan and cooldown outlast the test).
            await asyncio.to_thread(verifier.get_jwk_set, True)

            # Once the new key signs, new tokens carry its kid; the old token still works (grace).
            t.advance(publish_ahead)
            new_token = await t.admin_token("alice")
            assert jwt.get_unverified_header(new_token)["kid"] == new_kid
            assert await _status(t, old_token) == 200 and await _status(t, new_token) == 200
            for token in (old_token, new_token):
                kid = jwt.get_unverified_header(token)["kid"]
                key = (await asyncio.to_thread(verifier.get_signing_key, kid)).key  # from its cache
                # leeway: the verifier's wall clock is behind the app's, which moved on.
                options = {"verify_iss": False}
                claims = jwt.decode(token, key, algorithms=["ES256"], options=options, leeway=t.clock.offset)
                assert claims["uid"] > 0

            # After the grace period the old key leaves the JWKS and its tokens are refused.
            t.advance(grace + 1)
            assert await _status(t, old_token) == 401
            assert await _kids(t) == {new_kid}
            assert await _status(t, new_token) == 200
            assert await _states() == {old_kid: "retired", new_kid: "signing"}
            lines = (await inprocess.cli("audit", "search", "--event", "key.rotated", "--json")).stdout.splitlines()
            assert [json.loads(line)["details"]["kid"] for line in lines] == [new_kid]

    inprocess.run(body)


def test_retiring_the_signing_key_ends_its_tokens_at_once_and_a_new_key_signs(
    tmp_path: Path, db: dict[str, Any]
) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, **SETTINGS, **db) as t:
            await t.create_admin("alice")
            token = await t.admin_token("alice")
            kid = jwt.get_unverified_header(token)["kid"]
            assert await _status(t, token) == 200  # and now it sits in the verified-token cache

            retired = await inprocess.cli_json("keys", "retire", kid)
            assert retired["replacement"] and retired["replacement"] != kid

            # The app follows the CLI's change through the change feed.
            async def refused() -> bool:
                return await _status(t, token) == 401

            await until(refused, within=3, what="the retired key's token refused")
            assert kid not in await _kids(t)
            fresh = await t.admin_token("alice")
            assert jwt.get_unverified_header(fresh)["kid"] == retired["replacement"]
            assert await _status(t, fresh) == 200

            r = await inprocess.cli("keys", "retire", "no-such-kid", check=False)
            assert r.exit_code == 1 and "no-such-kid" in r.stderr

    inprocess.run(body)
