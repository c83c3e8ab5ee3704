"""Medusa 2.21's MFA and email-verification wire as a sequence of HTTP calls, run against a real
Medusa (tests/vectors/medusa_wire/record.py wrote the recording) and against Tillkey
(tests/fast/test_medusa_wire_recorded.py compares with it).

A call's answer is kept as its *shape*: status, the headers a client reads, and the JSON body with
every value that differs from run to run (tokens, ids, times, secrets, codes) replaced by a type
marker (`<jwt>`, `<id:authmfa>`, `<datetime>`, `<string>`), the rest (error `type`s and
`message`s, statuses, method lists, booleans, numbers) kept as is.

The sequences are plain async functions over an `httpx.AsyncClient` and a `Peer` that does what
differs between the two servers: the current TOTP code (Tillkey's clock is injected), the
verification code just sent (Medusa's event, Tillkey's outbox) and moving time past an expiry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

LOGIN = "/auth/{actor}/emailpass"
ME = {"customer": "/store/customers/me", "user": "/admin/users/me"}

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_ID = re.compile(r"^([a-z]+)_[0-9A-Za-z_]+$")
_ID_IN_TEXT = re.compile(r"\b([a-z]+)_[0-9A-Za-z]{20,}\b")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# Values kept literally: what clients branch on. Any other string becomes a marker.
LITERAL_KEYS = frozenset(
    {"type", "message", "status", "provider", "methods", "entity_type", "code_provider", "auth_provider", "code"}
)
HEADERS = ("content-type", "www-authenticate")


def shape(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        if key == "methods":
            return list(value)
        return {"<list>": len(value), "item": shape(value[0], key) if value else None}
    if isinstance(value, str):
        if value.startswith("<") and value.endswith(">"):
            return value  # already a marker
        if _JWT.match(value):
            return "<jwt>"
        if (key == "id" or key.endswith("_id")) and (m := _ID.match(value)):
            return f"<id:{m.group(1)}>"
        if _DATETIME.match(value):
            return "<datetime>"
        if key in LITERAL_KEYS and key != "code":
            return _ID_IN_TEXT.sub(lambda m: f"<id:{m.group(1)}>", value)
        if value.startswith("otpauth://"):
            return "<otpauth-url>"
        if "@" in value:
            return "<email>"
        return "<string>"
    return value  # numbers, booleans, None


def dump(recording: dict[str, Any]) -> str:
    """The recording as JSON with one call per line (small, and diffs read well)."""
    parts = []
    for name, value in recording.items():
        if isinstance(value, list):
            inner = ",\n  ".join(json.dumps(call, sort_keys=False) for call in value)
            parts.append(f"{json.dumps(name)}: [\n  {inner}\n ]")
        else:
            parts.append(f"{json.dumps(name)}: {json.dumps(value, indent=2)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


@dataclass
class Peer:
    client: httpx.AsyncClient
    # The TOTP code for `secret` at now + steps * 30 s (distinct steps: servers may refuse a reused one).
    totp: Callable[[str, int], str]
    # The verification code the server last sent to `email`.
    verification_code: Callable[[str], Awaitable[str]]
    # Move past an expiry of `seconds` (Medusa: sleep, Tillkey: its clock).
    expire: Callable[[float], Awaitable[None]]
    # Sent with /store calls: the publishable key both servers require there.
    store_headers: dict[str, str]


class Recorder:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.calls: list[dict[str, Any]] = []

    async def call(
        self, step: str, method: str, path: str, *, json: Any = None, token: str | None = None, shown: str = ""
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if path.startswith("/store/"):
            headers.update(self.peer.store_headers)
        r = await self.peer.client.request(method, path, json=json, headers=headers)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        self.calls.append(
            {
                "step": step,
                "request": f"{method} {shown or path}" + (" (bearer)" if token else ""),
                "body": shape(json) if json is not None else None,
                "status": r.status_code,
                "headers": {h: r.headers[h].split(";")[0] for h in HEADERS if h in r.headers},
                "response": shape(body),
            }
        )
        return r


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


async def mfa(rec: Recorder, actor: str, email: str, password: str, max_attempts: int) -> dict[str, Any]:
    """Enrol TOTP, sign in through the challenge (wrong codes up to the limit, a recovery code,
    reused ones), and disable. Returns what a later step of the recording needs."""
    peer, p = rec.peer, f"{actor}: "
    creds = {"email": email, "password": password}
    r = await rec.call(p + "login without MFA", "POST", LOGIN.format(actor=actor), json=creds)
    plain = r.json()["token"]
    await rec.call(p + "no factors yet", "GET", "/auth/mfa/factors", token=plain)
    await rec.call(p + "recovery codes before a factor", "POST", "/auth/mfa/recovery-codes", json={}, token=plain)
    await rec.call(p + "unknown provider", "POST", "/auth/mfa/factors", json={"provider": "sms"}, token=plain)
    r = await rec.call(p + "start TOTP", "POST", "/auth/mfa/factors", json={"provider": "totp"}, token=plain)
    factor_id, secret = r.json()["mfa_factor"]["id"], r.json()["secret"]
    await rec.call(p + "start TOTP again", "POST", "/auth/mfa/factors", json={"provider": "totp"}, token=plain)
    verify = f"/auth/mfa/factors/{factor_id}/verify"
    shown = "/auth/mfa/factors/{id}/verify"
    first = peer.totp(secret, -1)
    await rec.call(p + "enable, wrong code", "POST", verify, json={"code": _wrong(first)}, token=plain, shown=shown)
    await rec.call(p + "enable", "POST", verify, json={"code": first}, token=plain, shown=shown)
    await rec.call(p + "factors", "GET", "/auth/mfa/factors", token=plain)
    r = await rec.call(p + "recovery codes", "POST", "/auth/mfa/recovery-codes", json={}, token=plain)
    codes = r.json()["recovery_codes"]

    r = await rec.call(p + "login answers a challenge", "POST", LOGIN.format(actor=actor), json=creds)
    pending, challenge = r.json()["token"], r.json()["mfa_challenge"]["id"]
    await rec.call(p + "pending token elsewhere", "GET", ME[actor], token=pending)
    await rec.call(p + "pending token refresh", "POST", "/auth/token/refresh", token=pending)
    cpath, cshown = f"/auth/mfa/challenges/{challenge}/verify", "/auth/mfa/challenges/{id}/verify"
    wrong = {"method": "totp", "code": _wrong(peer.totp(secret, 0))}
    for n in range(1, max_attempts + 1):
        await rec.call(p + f"challenge, wrong code {n}", "POST", cpath, json=wrong, token=pending, shown=cshown)
    right = {"method": "totp", "code": peer.totp(secret, 0)}
    await rec.call(p + "challenge, right code after the limit", "POST", cpath, json=right, token=pending, shown=cshown)

    r = await rec.call(p + "login, second challenge", "POST", LOGIN.format(actor=actor), json=creds)
    pending, challenge = r.json()["token"], r.json()["mfa_challenge"]["id"]
    cpath = f"/auth/mfa/challenges/{challenge}/verify"
    unknown = {"method": "sms", "code": "123456"}
    await rec.call(p + "challenge, unsupported method", "POST", cpath, json=unknown, token=pending, shown=cshown)
    recovery = {"method": "recovery_code", "code": codes[0]}
    await rec.call(p + "challenge, recovery code", "POST", cpath, json=recovery, token=pending, shown=cshown)
    await rec.call(p + "challenge again once completed", "POST", cpath, json=right, token=pending, shown=cshown)

    r = await rec.call(p + "login, third challenge", "POST", LOGIN.format(actor=actor), json=creds)
    pending, challenge = r.json()["token"], r.json()["mfa_challenge"]["id"]
    cpath = f"/auth/mfa/challenges/{challenge}/verify"
    await rec.call(p + "challenge, spent recovery code", "POST", cpath, json=recovery, token=pending, shown=cshown)
    missing = "/auth/mfa/challenges/authmfachal_01JZZZZZZZZZZZZZZZZZZZZZZZ/verify"
    await rec.call(p + "unknown challenge", "POST", missing, json=right, token=pending, shown=cshown)
    r = await rec.call(p + "challenge, TOTP", "POST", cpath, json=right, token=pending, shown=cshown)
    full = r.json()["token"]
    await rec.call(p + "full token", "GET", ME[actor], token=full)
    await rec.call(p + "full token refresh", "POST", "/auth/token/refresh", token=full)
    return {"secret": secret, "factor_id": factor_id, "full": full, "pending": pending}


async def mfa_disable(rec: Recorder, actor: str, email: str, password: str, state: dict[str, Any]) -> None:
    p = f"{actor}: "
    path, shown = f"/auth/mfa/factors/{state['factor_id']}", "/auth/mfa/factors/{id}"
    await rec.call(p + "disable", "DELETE", path, json={}, token=state["full"], shown=shown)
    await rec.call(p + "factors after disabling", "GET", "/auth/mfa/factors", token=state["full"])
    creds = {"email": email, "password": password}
    await rec.call(p + "login after disabling", "POST", LOGIN.format(actor=actor), json=creds)


async def mfa_expiry(rec: Recorder, actor: str, email: str, password: str, ttl: float) -> None:
    """A challenge verified after its lifetime."""
    peer, p = rec.peer, f"{actor}: "
    creds = {"email": email, "password": password}
    r = await rec.call(p + "login for an expiring challenge", "POST", LOGIN.format(actor=actor), json=creds)
    plain = r.json()["token"]
    r = await rec.call(p + "start TOTP", "POST", "/auth/mfa/factors", json={"provider": "totp"}, token=plain)
    factor_id, secret = r.json()["mfa_factor"]["id"], r.json()["secret"]
    path, shown = f"/auth/mfa/factors/{factor_id}/verify", "/auth/mfa/factors/{id}/verify"
    await rec.call(p + "enable", "POST", path, json={"code": peer.totp(secret, -1)}, token=plain, shown=shown)
    r = await rec.call(p + "login answers a challenge", "POST", LOGIN.format(actor=actor), json=creds)
    pending, challenge = r.json()["token"], r.json()["mfa_challenge"]["id"]
    await peer.expire(ttl + 1)
    body = {"method": "totp", "code": peer.totp(secret, 0)}
    cpath, cshown = f"/auth/mfa/challenges/{challenge}/verify", "/auth/mfa/challenges/{id}/verify"
    await rec.call(p + "challenge after it expired", "POST", cpath, json=body, token=pending, shown=cshown)


async def verification(rec: Recorder, actor: str, email: str, password: str, ttl: float) -> None:
    """Email verification required: login, request, confirm (wrong, right, reused, expired)."""
    peer, p = rec.peer, f"{actor}: "
    creds = {"email": email, "password": password}
    r = await rec.call(p + "login, never verified", "POST", LOGIN.format(actor=actor), json=creds)
    pending = r.json()["token"]
    await rec.call(p + "verification token elsewhere", "GET", ME[actor], token=pending)
    await rec.call(p + "request, no token", "POST", "/auth/verification/request", json={"entity_id": email})
    ask = {"entity_id": email, "entity_type": "email"}
    await rec.call(p + "request", "POST", "/auth/verification/request", json=ask, token=pending)
    first = await peer.verification_code(email)
    await rec.call(p + "login, requested", "POST", LOGIN.format(actor=actor), json=creds)
    await rec.call(p + "request again", "POST", "/auth/verification/request", json=ask, token=pending)
    code = await peer.verification_code(email)
    confirm = "/auth/verification/confirm"
    await rec.call(p + "confirm, superseded code", "POST", confirm, json={"code": first})
    await rec.call(p + "confirm, wrong code", "POST", confirm, json={"code": "not-a-code"})
    await rec.call(p + "confirm", "POST", confirm, json={"code": code})
    await rec.call(p + "confirm, reused code", "POST", confirm, json={"code": code})
    await rec.call(p + "login, verified", "POST", LOGIN.format(actor=actor), json=creds)


async def verification_expiry(rec: Recorder, actor: str, email: str, password: str, ttl: float) -> None:
    peer, p = rec.peer, f"{actor}: "
    creds = {"email": email, "password": password}
    r = await rec.call(p + "login, never verified", "POST", LOGIN.format(actor=actor), json=creds)
    ask = {"entity_id": email, "entity_type": "email"}
    await rec.call(p + "request", "POST", "/auth/verification/request", json=ask, token=r.json()["token"])
    code = await peer.verification_code(email)
    await peer.expire(ttl + 1)
    await rec.call(p + "confirm, expired code", "POST", "/auth/verification/confirm", json={"code": code})
