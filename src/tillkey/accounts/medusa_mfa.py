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

from tillkey.access.stepup import StepUp
from tillkey.accounts.medusa_auth import ACTOR_OF, EMAILPASS
from tillkey.accounts.signin import (
    Attempt,
    PasskeyAssertion,
    Pending,
    SecondFactor,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    SignIn,
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
from tillkey.accounts.totp import Totp, is_recovery_code
from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import (
    AuthenticationRequired,
    InvalidRequest,
    NotAllowed,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from tillkey.parsing import ascii_int
from tillkey.principal import SECOND_FACTOR_PENDING, Principal, UserType
from tillkey.store import identities as repo
from tillkey.store import totp as totp_repo
from tillkey.store.identities import Identity

if TYPE_CHECKING:
    from tillkey.access.stepup import StepUpPolicy
    from tillkey.accounts.medusa_auth import MedusaAuth
    from tillkey.accounts.service import Accounts
    from tillkey.accounts.signin.factors import FactorParts
    from tillkey.accounts.signin.machine import SignIn
    from tillkey.clock import Clock
    from tillkey.security.ratelimit import RateLimiter
    from tillkey.settings import Settings
    from tillkey.store.db import Database
    from tillkey.tokens.contracts import TokenReader, TokenValidator

# Medusa 2.21's `mfa` module options at their defaults: a challenge lives 300 s and takes 5 wrong
# codes (recorded from a running Medusa: tests/vectors/medusa_wire/mfa_verification.json).
CHALLENGE_TTL = 300
CHALLENGE_MAX_ATTEMPTS = 5
# The pending token outlives its challenge, so a late answer gets Medusa's 404 for the challenge.
PENDING_TTL = 2 * CHALLENGE_TTL
CHALLENGE_CLAIM = "tk_mfa_challenge"
EXPIRES_CLAIM = "tk_mfa_expires"
METHODS_CLAIM = "tk_mfa_methods"
CHALLENGE_PREFIX = "authmfachal_"
FACTOR_PREFIX = "authmfa_"
# Removing one's enabled factor needs a multi-factor sign-in within the last 5 minutes. Machines
# have no factor to remove.
RECENT_MFA = StepUp(acr="mfa", max_age=300, machines="deny")
TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"
INVALID_CODE = "Invalid MFA challenge code"
TOO_MANY = "MFA challenge has too many failed attempts"
COMPLETED = "MFA challenge has already been completed"
NEEDS_ENABLED = "Recovery codes require an enabled MFA factor"
ALREADY_EXISTS = "An active TOTP factor already exists for this auth identity"
INVALID_TOTP = "Invalid TOTP code"
TOO_MANY_REQUESTS = "Too many requests. Please wait and try again later."


def challenge_not_found(challenge_id: str) -> NotFound:
    return NotFound(f'MFA challenge with id "{challenge_id[:64]}" was not found')


def factor_not_found(factor_id: str) -> NotFound:
    return NotFound(f'MFA factor with id "{factor_id[:64]}" was not found')


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
        authenticator: TokenReader,
        validator: TokenValidator,
        counters: RateLimiter,
        step_up: StepUpPolicy,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.parts = parts  # what the sign-in's factors check against: passkeys, TOTP, policy
        self.auth = auth
        self.accounts = accounts
        self.sign_in = sign_in
        self.authenticator = authenticator
        self.validator = validator
        self.counters = counters  # a challenge's wrong codes and completion, shared through Redis
        self.step_up = step_up

    # --- the login challenge --------------------------------------------------------------------

    async def challenge(self, actor: str, email: str, due: SecondFactorDue) -> Challenge:
        identity = await self.auth.identity_for(actor, email, due.user_type, due.account.id)
        return await self._challenge(actor, identity, due.account)

    async def _challenge(self, actor: str, identity: Identity, account: Account) -> Challenge:
        challenge_id = CHALLENGE_PREFIX + secrets.token_hex(13)
        now = self.clock.now_int()
        # The ways this account can answer, as Medusa lists them: "totp" for an enabled factor,
        # "recovery_code" while unspent codes are left; Tillkey's "passkey" when it has one.
        methods = []
        totp = account_totp(self.parts, account)
        status = None if totp is None else await totp.status(account.id)
        if status is not None and status.active and not await passkey_required(self.parts, account):
            methods.append(TOTP)
            if status.recovery_codes_left:
                methods.append(RECOVERY_CODE)
        if passkeys_allowed(self.parts, account) and await self.parts.passkeys.has_any(owner_of(account)):
            methods.append(PASSKEY)
        methods = methods or [TOTP]  # (none yet: the wire's default)
        claims = {
            "actor_id": "",
            "actor_type": actor,
            "auth_identity_id": f"authid_{identity.id}",
            "auth_provider": EMAILPASS,
            "mfa_enabled": True,
            "mfa_challenge_completed_at": None,
            "app_metadata": {},
            "user_metadata": {},
            CHALLENGE_CLAIM: challenge_id,
            EXPIRES_CLAIM: now + CHALLENGE_TTL,
            METHODS_CLAIM: methods,
        }
        # A guest (uid 0) to every access check: it proves the first factor, nothing more.
        token = await self.auth_token(claims, now, ttl=PENDING_TTL, surface=SECOND_FACTOR_PENDING)
        body = {
            "id": challenge_id,
            "auth_identity_id": f"authid_{identity.id}",
            "auth_provider": EMAILPASS,
            "methods": methods,
            "expires_at": _iso(now + CHALLENGE_TTL),
            "attempts": 0,
            "max_attempts": CHALLENGE_MAX_ATTEMPTS,
            "completed_at": None,
            "metadata": None,
        }
        return Challenge(token, body)

    async def renew_challenge(self, bearer: str | None) -> Challenge:
        """POST /auth/token/refresh with a pending MFA token: Medusa answers a new challenge (and a
        new pending token) for the identity that passed the password, not a signed-in token."""
        _claims, payload = await self._pending(bearer)
        if CHALLENGE_CLAIM not in payload:
            raise AuthenticationRequired(detail="refresh of a pending token that is not an MFA one")
        identity, account = await self._pending_account(payload)
        return await self._challenge(identity.actor_type, identity, account)

    async def auth_token(
        self, claims: dict[str, Any], now: int, ttl: int = CHALLENGE_TTL, surface: str | None = None
    ) -> str:
        """A pending token (uid 0). `surface` SECOND_FACTOR_PENDING marks an MFA challenge's, so
        other routes refuse it with Medusa's "MFA verification is required" without a lookup."""
        return await self.accounts.issue_token(
            UserType.GUEST, 0, ("pwd",), extra=claims, ttl=ttl, auth_time=now, surface=surface
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
        return TotpCode(code)

    async def _own_challenge(self, bearer: str | None, challenge_id: str) -> tuple[Any, dict[str, Any]]:
        claims, payload = await self._pending(bearer)
        if not constant_time_equals(str(payload.get(CHALLENGE_CLAIM, "")), challenge_id[:64]):
            # Another token's challenge (someone else's, or an earlier one of one's own).
            raise challenge_not_found(challenge_id)
        if self.clock.now() >= int(payload.get(EXPIRES_CLAIM, 0)):
            raise challenge_not_found(challenge_id)  # Medusa forgets an expired challenge
        if await self.counters.peek(f"mfa-done:{payload[CHALLENGE_CLAIM]}"):
            raise NotAllowed(COMPLETED)  # single use
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
        await self._pending(bearer)  # who is asking comes first (Medusa's authenticate), then the body
        self._second("", body)
        _claims, payload = await self._own_challenge(bearer, challenge_id)
        own_id = str(payload[CHALLENGE_CLAIM])
        method = body["method"]
        if method not in payload.get(METHODS_CLAIM, [TOTP]):
            raise InvalidRequest(f'MFA challenge does not support method "{str(method)[:32]}"')
        second = self._second(own_id, body)
        # The challenge's own state, shared by every process: the answers checked against it, and
        # whether it was completed (single use). An answer takes its turn (an atomic increment)
        # before it is checked, so answers sent at the same moment never check more than
        # CHALLENGE_MAX_ATTEMPTS; past that, none is checked. Wrong ones spend the account's
        # budget and lockout too.
        counters, ttl = self.counters, PENDING_TTL
        turn = await counters.count(f"mfa-tries:{own_id}", ttl)
        if turn > CHALLENGE_MAX_ATTEMPTS:
            raise NotAllowed(TOO_MANY, detail="challenge out of attempts")
        identity, account = await self._pending_account(payload)
        actor = identity.actor_type

        async def issue(who: SignedIn) -> str:
            return await self.auth.token(actor, identity, who.user_type, who.user_id, who.amr)

        pending = Pending(UserType(identity.user_type or 0), account.id, account_name(account), ("pwd",))
        try:
            outcome = await self.sign_in.resume(pending, second, where, issue)
        except SecondFactorFailed as exc:
            # Medusa: the wrong answer that reaches the limit already says so.
            message = TOO_MANY if turn >= CHALLENGE_MAX_ATTEMPTS else INVALID_CODE
            raise NotAllowed(message, detail=exc.reason) from None
        if isinstance(outcome, SecondFactorDue):  # the factor was removed meanwhile
            raise NotAllowed(INVALID_CODE, detail="no factor to verify any more")
        await counters.count(f"mfa-done:{own_id}", ttl)  # the challenge is spent
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
        identity_id = ascii_int(raw[7:], 12) if isinstance(raw, str) else None
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

    async def _factor(
        self, user_type: UserType, user_id: int, status: str, *, created: str | None = None, updated: str | None = None
    ) -> dict[str, Any]:
        """Medusa's serialized factor: `created` given, the stored one's full form (with its
        identity, timestamps and `deleted_at`), else the bare form its enrolment answers."""
        ref = await self._identity_ref(user_type, user_id)
        factor: dict[str, Any] = {
            "id": f"{FACTOR_PREFIX}{int(user_type)}_{user_id}",
            "auth_identity_id": ref,
            "provider": TOTP,
            "status": status,
            "metadata": {},
        }
        if created is not None:
            factor.update(auth_identity={"id": ref}, created_at=created, updated_at=updated or created, deleted_at=None)
        return factor

    async def _created(self, user_type: UserType, user_id: int) -> str:
        async with self.db.session() as s:
            record = await totp_repo.get(s, user_id, user_type)
        if record is None:
            return _iso(self.clock.now_int())
        return record.created_at.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _own_factor(self, user_type: UserType, user_id: int, factor_id: str) -> None:
        if not constant_time_equals(factor_id[:64], f"{FACTOR_PREFIX}{int(user_type)}_{user_id}"):
            raise factor_not_found(factor_id)

    async def factors(self, caller: Principal) -> list[dict[str, Any]]:
        utype, uid = self._person(caller)
        status = await self._totp(utype).status(uid)
        if not status.enrolled:
            return []
        created = await self._created(utype, uid)
        return [await self._factor(utype, uid, "enabled" if status.active else "pending", created=created)]

    async def start(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        utype, uid = self._person(caller)
        provider = body.get("provider")
        if not isinstance(provider, str) or not provider:
            raise InvalidRequest("Invalid request: Field 'provider' is required")
        if provider != TOTP:
            raise InvalidRequest(f'MFA provider "{provider[:32]}" is not supported')
        totp = self._totp(utype)
        if (await totp.status(uid)).enrolled:  # pending or enabled: Medusa keeps one per identity
            raise NotAllowed(ALREADY_EXISTS)
        enrolment = await totp.enroll(uid)
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
            if not await totp.is_active(uid):
                raise factor_not_found(factor_id)
            # Already on: Medusa still checks the code (a current TOTP code, once: replay-guarded;
            # never a recovery code) and answers the factor unchanged. As many codes per account
            # within CHALLENGE_TTL as a challenge takes, each taking its turn before it is checked.
            tries = await self.counters.count(f"mfa-factor-tries:{int(utype)}:{uid}", CHALLENGE_TTL)
            if tries > CHALLENGE_MAX_ATTEMPTS:
                wait = {"Retry-After": str(CHALLENGE_TTL)}
                raise RateLimited(TOO_MANY_REQUESTS, headers=wait, detail="enabled factor re-verified too often")
            if is_recovery_code(code) or not await totp.verify(uid, code):
                raise NotAllowed(INVALID_TOTP)
            created = await self._created(utype, uid)
            return {"mfa_factor": await self._factor(utype, uid, "enabled", created=created)}
        try:
            await totp.activate(uid, code)
        except InvalidRequest:
            raise NotAllowed(INVALID_TOTP) from None
        # Medusa has no recovery codes until POST /auth/mfa/recovery-codes asks for them: the ones
        # enabling makes are never shown on this wire, so they are dropped, not left usable.
        async with self.db.transaction() as s:
            await totp_repo.replace_recovery_codes(s, uid, [], utype)
        created = await self._created(utype, uid)
        return {"mfa_factor": await self._factor(utype, uid, "enabled", created=created)}

    async def disable(self, caller: Principal, factor_id: str) -> dict[str, Any]:
        utype, uid = self._person(caller)
        self._own_factor(utype, uid, factor_id)
        if utype == UserType.ADMIN:
            # The delegation rule: a stolen admin session must not strip its owner's factor.
            raise NotAllowed("An admin's MFA factor is reset by another administrator.")
        totp = self._totp(utype)
        status = await totp.status(uid)
        if not status.enrolled:
            raise factor_not_found(factor_id)
        if status.active:
            # Removing an enabled factor needs a multi-factor sign-in within 5 minutes (a stolen
            # token or session alone cannot strip it); a pending one (never enabled) does not.
            self.step_up.require(caller, (), RECENT_MFA)
        created = await self._created(utype, uid)
        factor = await self._factor(utype, uid, "disabled", created=created, updated=_iso(self.clock.now_int()))
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
