"""Tillkey answers Medusa 2.21's MFA and email-verification wire as a running Medusa 2.21.2 did.

tests/vectors/medusa_wire/mfa_verification.json is the recording (how and when: its "about"); the
same call sequences (tests/medusa_wire.py) run here against Tillkey in process, and every answer
must have the recorded status, headers and body shape — keys, error `type`s and `message`s, method
lists, attempt counters — except the few differences Tillkey makes on purpose, listed below with
what Tillkey answers instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests import inprocess, medusa_wire
from tests.inprocess import InProcess
from tillkey.access.delegation import OPERATOR

RECORDING = json.loads((Path(__file__).parents[1] / "vectors" / "medusa_wire" / "mfa_verification.json").read_text())
PASSWORD = "pw-Medusa-21"

# Step -> (why, what Tillkey answers: status and body shape). Anything else must match the recording.
ON_PURPOSE: dict[str, tuple[str, int, Any]] = {
    "unknown provider": (
        "Medusa answers an unknown factor provider with a 500; Tillkey never does",
        400,
        {"message": 'MFA provider "sms" is not supported', "type": "invalid_data"},
    ),
    "factors after disabling": (
        "Medusa keeps a disabled factor (status 'disabled') in the list; Tillkey forgets it",
        200,
        {"mfa_factors": {"<list>": 0, "item": None}},
    ),
}


def _without_digests(value: Any) -> Any:
    """Medusa shows a verification's `provider_metadata` ({token_hash}); Tillkey never shows a
    code's digest: null there."""
    if isinstance(value, dict):
        return {k: None if k == "provider_metadata" else _without_digests(v) for k, v in value.items()}
    return value


# Admins' own factors are reset by another admin (the privilege rule), never disabled by oneself:
# the admin's DELETE is refused, so the factor stays on and the next login still asks for it.
_ADMIN_FACTOR = {
    "auth_identity": {"id": "<id:authid>"},
    "auth_identity_id": "<id:authid>",
    "created_at": "<datetime>",
    "deleted_at": None,
    "id": "<id:authmfa>",
    "metadata": {},
    "provider": "totp",
    "status": "enabled",
    "updated_at": "<datetime>",
}
ADMIN_ON_PURPOSE: dict[str, tuple[str, int, Any]] = {
    "user: disable": (
        "an admin's factor is reset by another admin, not by the admin",
        400,
        {"message": "An admin's MFA factor is reset by another administrator.", "type": "not_allowed"},
    ),
    "user: factors after disabling": ("still on", 200, {"mfa_factors": {"<list>": 1, "item": _ADMIN_FACTOR}}),
    "user: login after disabling": ("still on", 200, None),  # a challenge, as "user: login, second challenge"
}


def _compare(recorded: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[str]:
    problems = []
    if len(ours) != len(recorded):
        problems.append(f"{len(ours)} calls made, {len(recorded)} recorded")
    for want, got in zip(recorded, ours, strict=False):
        assert got["step"] == want["step"]
        step = want["step"]
        bare = step.split(": ", 1)[1]
        if step in ADMIN_ON_PURPOSE:
            _, status, body = ADMIN_ON_PURPOSE[step]
            if body is None:
                body = next(c["response"] for c in recorded if c["step"] == "user: login, second challenge")
            want = {**want, "status": status, "response": body}
        elif bare in ON_PURPOSE:
            _, status, body = ON_PURPOSE[bare]
            want = {**want, "status": status, "response": body}
        if got["status"] != want["status"]:
            problems.append(f"{step}: status {got['status']} != {want['status']} ({got['response']})")
            continue
        this_wire = want["request"].split()[1].startswith("/auth/")
        if not this_wire and want["status"] < 400:
            continue  # /store and /admin answers are not this wire's; their status and refusals are
        # (Tillkey's 401s elsewhere carry RFC 6750's WWW-Authenticate, on purpose.)
        if this_wire and got["headers"] != want["headers"]:
            problems.append(f"{step}: headers {got['headers']} != {want['headers']}")
        if got["response"] != _without_digests(want["response"]):
            problems.append(f"{step}:\n   got  {json.dumps(got['response'])}\n   want {json.dumps(want['response'])}")
    return problems


def _last_code(outbox: Path, email: str) -> str:
    mails = [json.loads(line) for line in outbox.read_text().splitlines()]
    return str([m for m in mails if m["to"] == email][-1]["code"])


def _peer(t: InProcess, outbox: Path, pk: str) -> medusa_wire.Peer:
    def totp(secret: str, steps: int) -> str:
        return pyotp.TOTP(secret).at(t.clock.now() + 30 * steps)

    async def verification_code(email: str) -> str:
        t.advance(1)  # the mail is read a moment later (the clock is frozen: codes get distinct times)
        return _last_code(outbox, email)

    async def expire(seconds: float) -> None:
        t.advance(seconds)

    return medusa_wire.Peer(t.client, totp, verification_code, expire, {"x-publishable-api-key": pk})


async def _setup(t: InProcess, tmp_path: Path) -> medusa_wire.Peer:
    t.freeze()  # TOTP steps move only when the sequence says so
    key = await t.tk.services.api_keys.create(OPERATOR, title="shop", type="publishable")
    return _peer(t, tmp_path / "outbox.jsonl", key.token)


def test_mfa_wire_matches_the_recording(tmp_path: Path) -> None:
    async def body() -> None:
        settings = {"outbox_file": str(tmp_path / "outbox.jsonl"), "admin_2fa": "optional"}
        async with inprocess.running(tmp_path, **settings) as t:
            rec = medusa_wire.Recorder(await _setup(t, tmp_path))
            await t.create_customer("mfa@test.com", password=PASSWORD)
            await t.create_admin("adm", email="adm@test.com", password=PASSWORD)
            stopped = ""
            try:
                for actor, email in (("customer", "mfa@test.com"), ("user", "adm@test.com")):
                    state = await medusa_wire.mfa(rec, actor, email, PASSWORD, 5)
                    await medusa_wire.mfa_disable(rec, actor, email, PASSWORD, state)
            except (KeyError, TypeError) as exc:  # an answer without what the next call needs
                stopped = f"stopped after {rec.calls[-1]}: {exc!r}"
            problems = _compare(RECORDING["mfa"], rec.calls)
            assert not problems and not stopped, "\n".join([*problems, stopped])

    inprocess.run(body)


@pytest.mark.parametrize("actor", ["customer", "user"])
def test_verification_wire_matches_the_recording(tmp_path: Path, actor: str) -> None:
    """Recorded with authVerificationsPerActor listing both actors: here
    TILLKEY_CUSTOMER_EMAIL_VERIFICATION and TILLKEY_ADMIN_EMAIL_VERIFICATION, each on its own."""

    async def body() -> None:
        setting = "customer_email_verification" if actor == "customer" else "admin_email_verification"
        settings = {
            "outbox_file": str(tmp_path / "outbox.jsonl"),
            setting: "required",
            "email_verification_ttl": 6,
            "admin_2fa": "optional",
        }
        async with inprocess.running(tmp_path, **settings) as t:
            rec = medusa_wire.Recorder(await _setup(t, tmp_path))
            emails = {"customer": ("verc@test.com", "vexc@test.com"), "user": ("veru@test.com", "vexu@test.com")}
            verified, expiring = emails[actor]
            for n, email in enumerate(emails[actor]):
                if actor == "customer":
                    await t.create_customer(email, password=PASSWORD)
                else:
                    await t.create_admin(f"ver{n}", email=email, password=PASSWORD)
            stopped = ""
            try:
                await medusa_wire.verification(rec, actor, verified, PASSWORD, 6)
                await medusa_wire.mfa_expiry(rec, actor, verified, PASSWORD, 300)
                await medusa_wire.verification_expiry(rec, actor, expiring, PASSWORD, 6)
            except (KeyError, TypeError) as exc:
                stopped = f"stopped after {rec.calls[-1]}: {exc!r}"
            recorded = [c for c in RECORDING["verification"] if c["step"].startswith(actor + ": ")]
            problems = _compare(recorded, rec.calls)
            assert not problems and not stopped, "\n".join([*problems, stopped])

    inprocess.run(body)
