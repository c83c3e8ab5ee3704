"""Medusa 2.21's MFA wire (`/auth/mfa/*`, shared/specs/medusa.md and docs/compatibility.md) over
Tillkey's one TOTP service and one sign-in state machine, for admins ("user") and customers.

- Login of an account with a factor enrolled answers `{token, mfa_required, mfa_challenge}`. The
  token is Medusa's actorless one: here a guest (uid 0) to every access check, short-lived
  (`CHALLENGE_TTL`), refused by refresh and session, holding the challenge id and the identity that
  passed the first factor. The challenge lives in that signed token, not in a table.
- `POST /auth/mfa/challenges/{id}/verify` with that token resumes the sign-in (machine.py
  `resume`): the code spends the same failure budget and lockout as any second factor, a replayed
  TOTP step is refused, and the challenge id must be the one its own token carries, so nobody
  completes another person's challenge. On success the pending token is revoked (single use).
- Passkeys (accounts/passkeys.py) answer the same challenge: `methods` lists "passkey" when the
  account has one; `POST /auth/mfa/challenges/{id}/passkey` (the same pending token) hands out
  WebAuthn request options bound to that challenge, and verify takes `{"method": "passkey",
  "ceremony_id", "credential"}` through the same machine, budget and lockout.
- Factors: one TOTP factor per account (`authmfa_<type>_<id>`), enrolled pending, enabled by a
  first code; recovery codes regenerated on demand. Disabling needs a recent MFA sign-in (step-up,
  the route's declaration) and is a customer's own choice only: an admin's factor is reset by
  another admin (the delegation rule), never removed by its owner.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt

from tillkey.accounts.medusa_auth import ACTOR_OF, EMAILPASS
from tillkey.accounts.signin import (
    Attempt,
    PasskeyAssertion,
    Pending,
    SecondFactor,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    TotpCode,
)
from tillkey.accounts.signin.factors import (
    Account,
    account_by_id,
    account_name,
    account_totp,
    owner_of,
    passkey_required,
    passkeys_allowed,
)
from tillkey.accounts.totp import Totp
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import AuthenticationRequired, InvalidRequest, NotAllowed, NotFound, Unauthenticated
from tillkey.principal import Principal, UserType
from tillkey.store import identities as repo
from tillkey.store.identities import Identity

if TYPE_CHECKING:
    from tillkey.accounts.medusa_auth import MedusaAuth
    from tillkey.accounts.service import Accounts
    from tillkey.accounts.signin.factors import FactorParts
    from tillkey.accounts.signin.machine import SignIn
    from tillkey.clock import Clock
    from tillkey.settings import Settings
    from tillkey.store.db import Database
    from tillkey.tokens.contracts import TokenReader, TokenRevoker, TokenValidator

CHALLENGE_TTL = 300
CHALLENGE_CLAIM = "tk_mfa_challenge"
CHALLENGE_PREFIX = "authmfach_"
FACTOR_PREFIX = "authmfa_"
TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"
INVALID_CODE = "Invalid MFA code"
NO_FACTOR = "MFA factor not found"
NEEDS_ENABLED = "Recovery codes require an enabled MFA factor"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Challenge:
    """What login answers when a second factor is due: the pending token and its challenge."""

    token: str
    body: dict[str, Any]


class MedusaMfa:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        db: Database,
        parts: FactorParts,
        auth: MedusaAuth,
        accounts: Accounts,
        sign_in: SignIn,
        revoker: TokenRevoker,
        authenticator: TokenReader,
        validator: TokenValidator,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.parts = parts  # what the sign-in's factors check against: passkeys, TOTP, policy
        self.auth = auth
        self.accounts = accounts
        self.sign_in = sign_in
        self.revoker = revoker
        self.authenticator = authenticator
        self.validator = validator

    # --- the login challenge --------------------------------------------------------------------

    async def challenge(self, actor: str, email: str, due: SecondFactorDue) -> Challenge:
        identity = await self.auth.identity_for(actor, email, due.user_type, due.account.id)
        challenge_id = CHALLENGE_PREFIX + secrets.token_hex(12)
        now = self.clock.now_int()
        claims = {
            "actor_id": "", "actor_type": actor, "auth_identity_id": f"authid_{identity.id}",
            "auth_provider": EMAILPASS, "mfa_enabled": True, "mfa_challenge_completed_at": None,
            "app_metadata": {}, "user_metadata": {}, CHALLENGE_CLAIM: challenge_id,
        }  # fmt: skip
        # A guest (uid 0) to every access check: it proves the first factor, nothing more.
        token = await self.auth_token(claims, now)
        # The ways this account can answer (a TOTP-less account with a passkey: "passkey" only).
        totp = account_totp(self.parts, due.account)
        codes = totp is not None and await totp.is_active(due.account.id)
        methods = [TOTP, RECOVERY_CODE] if codes and not await passkey_required(self.parts, due.account) else []
        if passkeys_allowed(self.parts, due.account) and await self.parts.passkeys.has_any(owner_of(due.account)):
            methods.append(PASSKEY)
        methods = methods or [TOTP, RECOVERY_CODE]  # (none yet: the wire's default)
        body = {
            "id": challenge_id, "auth_identity_id": f"authid_{identity.id}", "auth_provider": EMAILPASS,
            "methods": methods, "expires_at": _iso(now + CHALLENGE_TTL), "attempts": 0,
            "max_attempts": self.settings.login_throttle_max_failures, "completed_at": None, "metadata": None,
        }  # fmt: skip
        return Challenge(token, body)

    async def auth_token(self, claims: dict[str, Any], now: int) -> str:

        return await self.accounts.issue_token(
            UserType.GUEST, 0, ("pwd",), extra=claims, ttl=CHALLENGE_TTL, auth_time=now, surface=None
        )

    @staticmethod
    def _second(challenge_id: str, body: dict[str, Any]) -> SecondFactor:
        method, code = body.get("method"), body.get("code")
        if method == PASSKEY:
            # Bound to this challenge: options handed out for another one do not verify here.
            return PasskeyAssertion(
                str(body.get("ceremony_id", ""))[:64], f"mfa:{challenge_id}", body.get("credential")
            )
        if not isinstance(method, str) or not method or not isinstance(code, str) or not code or len(code) > 64:
            raise InvalidRequest("Invalid request: method and code are required")
        if method not in (TOTP, RECOVERY_CODE):
            raise InvalidRequest(f"Unsupported MFA method: {method[:32]}")
        return TotpCode(code)

    async def _own_challenge(self, bearer: str | None, challenge_id: str) -> tuple[Any, dict[str, Any]]:
        claims, payload = await self._pending(bearer)
        if not constant_time_equals(str(payload.get(CHALLENGE_CLAIM, "")), challenge_id[:64]):
            # Another token's challenge (someone else's, or an earlier one of one's own).
            raise NotFound("MFA challenge not found", detail="challenge id not the token's own")
        return claims, payload

    async def passkey_options(self, bearer: str | None, challenge_id: str) -> dict[str, Any]:
        """WebAuthn request options for the account behind this pending challenge, bound to it."""
        _claims, payload = await self._own_challenge(bearer, challenge_id)
        _identity, account = await self._pending_account(payload)
        passkeys = self.parts.passkeys
        if not passkeys_allowed(self.parts, account) or not await passkeys.has_any(owner_of(account)):
            raise NotFound("No passkey is registered for this account")
        ceremony = await passkeys.authentication_options(owner_of(account), f"mfa:{payload[CHALLENGE_CLAIM]}")
        return {"ceremony_id": ceremony.id, "options": ceremony.options}

    async def verify_challenge(
        self, bearer: str | None, challenge_id: str, body: dict[str, Any], where: Attempt
    ) -> str:
        self._second("", body)  # a malformed body is refused before the token is read
        claims, payload = await self._own_challenge(bearer, challenge_id)
        second = self._second(str(payload[CHALLENGE_CLAIM]), body)
        identity, account = await self._pending_account(payload)
        actor = identity.actor_type

        async def issue(who: SignedIn) -> str:
            return await self.auth.token(actor, identity, who.user_type, who.user_id, who.amr)

        pending = Pending(UserType(identity.user_type or 0), account.id, account_name(account), ("pwd",))
        try:
            outcome = await self.sign_in.resume(pending, second, where, issue)
        except SecondFactorFailed as exc:
            raise Unauthenticated(INVALID_CODE, detail=exc.reason) from None
        if isinstance(outcome, SecondFactorDue):  # the factor was removed meanwhile
            raise Unauthenticated(INVALID_CODE, detail="no factor to verify any more")
        await self.revoker.revoke_token(claims)  # the challenge is spent
        return outcome.credential

    async def _pending(self, bearer: str | None) -> tuple[Any, dict[str, Any]]:
        if bearer is None:
            raise AuthenticationRequired(detail="MFA challenge without its token")
        try:
            claims = await self.authenticator.read(bearer)
            self.validator.validate(claims)
        except Unauthenticated:
            raise AuthenticationRequired(detail="MFA challenge with an unusable token") from None
        if claims.user_type != UserType.GUEST or claims.user_id != 0 or claims.kind != "jwt":
            raise AuthenticationRequired(detail="MFA challenge with a token that is not a pending one")
        # Verified just above (signature, expiry, revocation): only read its claims.
        payload: dict[str, Any] = jwt.decode(bearer, options={"verify_signature": False})
        return claims, payload

    async def _pending_account(self, payload: dict[str, Any]) -> tuple[Identity, Account]:
        raw = payload.get("auth_identity_id")
        identity_id = int(raw[7:]) if isinstance(raw, str) and raw[7:].isdigit() and len(raw) < 20 else None
        async with self.db.session() as s:
            identity = None if identity_id is None else await repo.by_id(s, identity_id)
            account = None
            if identity is not None and identity.user_type is not None and identity.user_id is not None:
                account = await account_by_id(s, UserType(identity.user_type), identity.user_id)
        if identity is None or account is None:
            raise AuthenticationRequired(detail="MFA challenge of an identity without an account")
        return identity, account

    # --- factors --------------------------------------------------------------------------------

    @staticmethod
    def _person(caller: Principal) -> tuple[UserType, int]:
        if caller.user_type not in (UserType.ADMIN, UserType.CUSTOMER) or not caller.user_id:
            raise AuthenticationRequired(detail="MFA factors need a signed-in admin or customer")
        return caller.user_type, caller.user_id

    def _totp(self, user_type: UserType) -> Totp:
        if user_type == UserType.CUSTOMER and self.settings.customer_2fa == "off":
            raise NotAllowed("MFA is not available for customers on this store")
        return self.parts.totp_for(user_type)

    async def _identity_ref(self, user_type: UserType, user_id: int) -> str:
        async with self.db.session() as s:
            found = await repo.ids_for(
                s, ACTOR_OF[user_type], entity_id=None, user_type=int(user_type), user_id=user_id
            )
        return f"authid_{min(found)}" if found else ""

    async def _factor(self, user_type: UserType, user_id: int, status: str) -> dict[str, Any]:
        return {
            "id": f"{FACTOR_PREFIX}{int(user_type)}_{user_id}",
            "auth_identity_id": await self._identity_ref(user_type, user_id),
            "provider": TOTP, "status": status, "metadata": None,
        }  # fmt: skip

    def _own_factor(self, user_type: UserType, user_id: int, factor_id: str) -> None:
        if not constant_time_equals(factor_id[:64], f"{FACTOR_PREFIX}{int(user_type)}_{user_id}"):
            raise NotFound(NO_FACTOR)

    async def factors(self, caller: Principal) -> list[dict[str, Any]]:
        utype, uid = self._person(caller)
        status = await self._totp(utype).status(uid)
        if not status.enrolled:
            return []
        return [await self._factor(utype, uid, "enabled" if status.active else "pending")]

    async def start(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        utype, uid = self._person(caller)
        provider = body.get("provider")
        if not isinstance(provider, str) or not provider:
            raise InvalidRequest("Invalid request: Field 'provider' is required")
        if provider != TOTP:
            raise InvalidRequest(f"MFA provider {provider[:32]} is not supported")
        enrolment = await self._totp(utype).enroll(uid)
        return {
            "mfa_factor": await self._factor(utype, uid, "pending"),
            "secret": enrolment.secret,
            "otpauth_url": enrolment.uri,
        }

    async def verify_factor(self, caller: Principal, factor_id: str, body: dict[str, Any]) -> dict[str, Any]:
        utype, uid = self._person(caller)
        self._own_factor(utype, uid, factor_id)
        code = body.get("code")
        if not isinstance(code, str) or not code or len(code) > 64:
            raise InvalidRequest("Invalid request: Field 'code' is required")
        totp = self._totp(utype)
        if await totp.pending(uid) is None:
            raise NotFound(NO_FACTOR) if not await totp.is_active(uid) else NotAllowed("MFA factor is already enabled")
        await totp.activate(uid, code)  # InvalidRequest for a wrong code; recovery codes: POST recovery-codes
        return {"mfa_factor": await self._factor(utype, uid, "enabled")}

    async def disable(self, caller: Principal, factor_id: str) -> dict[str, Any]:
        utype, uid = self._person(caller)
        self._own_factor(utype, uid, factor_id)
        if utype == UserType.ADMIN:
            # The delegation rule: a stolen admin session must not strip its owner's factor.
            raise NotAllowed("An admin's MFA factor is reset by another administrator.")
        totp = self._totp(utype)
        if not (await totp.status(uid)).enrolled:
            raise NotFound(NO_FACTOR)
        factor = await self._factor(utype, uid, "disabled")
        await totp.remove_own(uid)
        return {"mfa_factor": factor}

    async def recovery_codes(self, caller: Principal, body: dict[str, Any]) -> list[str]:
        utype, uid = self._person(caller)
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 50):
            raise InvalidRequest("Invalid request: count must be an integer from 1 to 50")
        totp = self._totp(utype)
        if not await totp.is_active(uid):
            raise NotAllowed(NEEDS_ENABLED)
        # Always RECOVERY_CODES codes: `count` is accepted for the wire, fewer would only weaken recovery.
        return await totp.regenerate_recovery_codes(uid)
