"""Medusa-style authentication (shared/specs/medusa.md §1-2): emailpass login, customer
registration, token refresh and password reset, over Tillkey's own accounts and defences.

Logins go through the sign-in state machine (accounts/signin/: rate limits, throttle, lockout,
argon2 off the loop, second factor), so a Medusa login is exactly as hard to brute-force as a
Magento one, and spends the same failure budget. Tokens are Tillkey JWTs (same
keys, revocation and access control) that also carry Medusa's claims: actor_id, actor_type,
auth_identity_id, auth_provider, app_metadata, user_metadata.

A registration token has no actor yet: it is issued to the guest user type with the auth identity
as its id, so every access check sees a guest; only POST /store/customers (which creates the
customer and links the identity) and POST /auth/token/refresh read the identity from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit, names
from tillkey.access import delegation
from tillkey.accounts.outbox import Outbox
from tillkey.accounts.signin import (
    Attempt,
    Password,
    SecondFactorDue,
    SignedIn,
    Subject,
    TotpCode,
    VerificationRequired,
    email_unverified,
)
from tillkey.crypto.passwords import check_policy, unusable_hash
from tillkey.crypto.secrets import random_token
from tillkey.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidRequest,
    NotAllowed,
    NotFound,
    Unauthenticated,
)
from tillkey.principal import Principal, UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import identities as repo
from tillkey.store import idps as idps_repo
from tillkey.store.accounts import Admin, Customer
from tillkey.store.identities import Identity
from tillkey.tokens.contracts import TokenClaims
from tillkey.tokens.issuer import MEDUSA

if TYPE_CHECKING:
    from collections.abc import Callable

    from tillkey.access.grants import GrantsState
    from tillkey.accounts.service import Accounts
    from tillkey.accounts.sessions import Sessions
    from tillkey.accounts.signin.budget import LoginLimits
    from tillkey.accounts.signin.machine import SignIn
    from tillkey.clock import Clock
    from tillkey.contracts import Audit, Hasher, Revocations
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database
    from tillkey.tokens.service import Authenticator

log = logging.getLogger("tillkey")

EMAILPASS = "emailpass"
ACTORS = {"user": UserType.ADMIN, "customer": UserType.CUSTOMER}
ACTOR_OF = {UserType.ADMIN: "user", UserType.CUSTOMER: "customer"}
ACTOR_PREFIX = {"user": "user_", "customer": "cus_"}
INVALID_LOGIN = "Invalid email or password"
IDENTITY_EXISTS = "Identity with email already exists"
INVALID_TOKEN = "Invalid token"  # noqa: S105 (a message)
RESET_PREFIX = "tk_rs_"
OTP_REQUIRED = 'Two-factor authentication is required: send the authenticator code as "otp" with the password.'


def actor_id(actor: str, user_id: int | None) -> str:
    return f"{ACTOR_PREFIX[actor]}{user_id}" if user_id else ""


def medusa_claims(actor: str, identity_id: int, user_id: int | None, provider: str = EMAILPASS) -> dict[str, Any]:
    """Medusa 2.21's claims (generate-jwt-token.js), in its order."""
    aid = actor_id(actor, user_id)
    return {
        "actor_id": aid,
        "actor_type": actor,
        "auth_identity_id": f"authid_{identity_id}",
        "auth_provider": provider,
        "mfa_enabled": False,
        "mfa_challenge_completed_at": None,
        "app_metadata": {f"{actor}_id": aid} if aid else {},
        "user_metadata": {},
    }


@dataclass(frozen=True, slots=True)
class Renewable:
    """A Medusa credential presented for renewal: when its sign-in happened, with which factors."""

    auth_time: int
    methods: tuple[str, ...]
    via: str  # "bearer" | "session"

    def expires(self, settings: Settings, user_type: int) -> int:
        """The sign-in's absolute end (TILLKEY_*_SIGNIN_MAX_AGE after auth_time)."""
        max_age = settings.signin_max_age_for(user_type)
        return self.auth_time + (max_age if max_age is not None else 0)


@dataclass(frozen=True, slots=True)
class SessionGrant:
    auth_time: int
    ttl: int


def _who(caller: Principal) -> tuple[int, int]:
    return int(caller.user_type), caller.user_id


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str


def emailpass_body(body: dict[str, Any]) -> Credentials:
    """emailpass's own checks, with its 401 messages (medusa.md §1)."""
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not email or "\x00" in email or len(email) > 254:
        raise Unauthenticated("Email should be a string")
    if not isinstance(password, str) or not password or "\x00" in password or len(password) > 1024:
        raise Unauthenticated("Password should be a string")
    return Credentials(email, password)


class MedusaAuth:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        db: Database,
        master: MasterSecret,
        audit: Audit,
        passwords: Hasher,
        revoker: Revocations,
        limits: LoginLimits,
        authenticator: Authenticator,
        grants: GrantsState,
        accounts: Accounts,
        sessions: Sessions,
        sign_in: SignIn,
        admin_profile: Callable[[int], Admin | None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.master = master
        self.audit = audit
        self.passwords = passwords
        self.revoker = revoker
        self.limits = limits
        self.authenticator = authenticator
        self.grants = grants
        self.accounts = accounts
        self.sessions = sessions
        self.sign_in = sign_in
        self.admin_profile = admin_profile  # the runtime's memory of admins' profiles (no hashes)
        self.outbox = Outbox(settings.outbox_file)

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    # --- identities and tokens ----------------------------------------------------------------

    async def identity_for(self, actor: str, entity_id: str, user_type: UserType, user_id: int) -> Identity:
        """The emailpass identity of an account, created the first time it is needed. The caller has
        just proved the account's own credential (its password, or a token the Medusa surface issued
        after one), so the identity follows the account.

        An identity found pending (registered, no account: perhaps by someone else, before the shop
        created this account) or linked to another account (a customer deleted and created again)
        changes hands here. Every token issued for it before is revoked first: a pending identity
        never claims an account it did not create, and its registration tokens die with it."""
        async with self.db.session() as s:
            found = await repo.find(s, EMAILPASS, actor, entity_id)
        if found is None:
            try:
                async with self.db.transaction() as s:
                    return await repo.create(
                        s,
                        provider=EMAILPASS,
                        actor_type=actor,
                        entity_id=entity_id,
                        password_hash=None,
                        user_type=int(user_type),
                        user_id=user_id,
                        now_ms=self._now_ms(),
                    )
            except Conflict:  # created by a concurrent login
                async with self.db.session() as s:
                    found = await repo.find(s, EMAILPASS, actor, entity_id)
                assert found is not None
        if (found.user_type, found.user_id) != (int(user_type), user_id):
            await self.revoker.revoke_for(UserType.GUEST, found.id)
            async with self.db.transaction() as s:
                await repo.link(s, found.id, int(user_type), user_id, force=True)
            await self.audit.record(
                audit.ACCOUNT_CHANGED,
                actor_type=int(user_type),
                actor_id=user_id,
                username=entity_id[:255],
                details={
                    "target_type": int(user_type),
                    "target_id": user_id,
                    "change": "identity relinked",
                    "identity": found.id,
                    "was_pending": found.user_id is None,
                },
            )
        return found

    async def token(
        self,
        actor: str,
        identity: Identity,
        user_type: UserType,
        user_id: int | None,
        methods: tuple[str, ...] = ("pwd",),
        *,
        auth_time: int | None = None,
        provider: str = EMAILPASS,
    ) -> str:
        """A Medusa token: marked as this surface's (tk_surface), carrying the sign-in time
        (`auth_time`: now for a sign-in, the original one for a renewal) and dying no later than that
        sign-in's absolute lifetime. An external provider's sign-in also names it in `idp`."""
        claims = medusa_claims(actor, identity.id, user_id, provider)
        if provider != EMAILPASS:
            claims["idp"] = provider
        utype = UserType.GUEST if user_id is None else user_type
        auth_time = self.clock.now_int() if auth_time is None else auth_time
        if len(set(methods)) > 1:
            # Medusa 2.21: a token whose sign-in passed the MFA challenge says so, and when.
            completed = datetime.fromtimestamp(auth_time, UTC).isoformat(timespec="milliseconds")
            claims.update(mfa_enabled=True, mfa_challenge_completed_at=completed.replace("+00:00", "Z"))
        max_age = self.settings.signin_max_age_for(utype)
        not_after = None if max_age is None else auth_time + max_age
        # Actorless: a guest to every access check, holding only its identity (module doc).
        ttl = self.settings.customer_token_ttl if user_id is None else None
        return await self.accounts.issue_token(
            utype,
            user_id if user_id is not None else identity.id,
            methods,
            extra=claims,
            ttl=ttl,
            surface=MEDUSA,
            auth_time=auth_time,
            not_after=not_after,
        )

    # --- login ----------------------------------------------------------------------------------

    async def login(
        self, actor: str, body: dict[str, Any], attempt: Attempt
    ) -> str | SecondFactorDue | VerificationRequired:
        """emailpass through the sign-in state machine (accounts/signin/); the second factor rides
        in the body as "otp", or, for an account with one enrolled, comes later through Medusa's
        MFA challenge (accounts/medusa_mfa.py: the SecondFactorDue returned here)."""
        creds = emailpass_body(body)
        utype = ACTORS[actor]
        subject = Subject(utype, creds.email, by_email=utype == UserType.ADMIN)

        async def issue(who: SignedIn) -> str:
            # Medusa's tokens (its claims, its identity) are minted where refresh mints them too.
            identity = await self.identity_for(actor, creds.email, who.user_type, who.user_id)
            return await self.token(actor, identity, who.user_type, who.user_id, who.amr)

        try:
            outcome = await self.sign_in.begin(
                subject, Password(creds.password), attempt, issue, second=self._second_factor(body)
            )
        except VerificationRequired as due:
            return due  # the password was right: Medusa's verification_required (medusa_verification.py)
        except Unauthenticated as exc:
            # One message for unknown email, wrong password or code, locked, throttled, inactive, no role.
            raise Unauthenticated(INVALID_LOGIN, detail=exc.detail) from None
        if isinstance(outcome, SecondFactorDue):
            if outcome.enrolled and "otp" not in body:
                return outcome
            raise Unauthenticated(OTP_REQUIRED, detail="second factor missing")
        return outcome.credential

    @staticmethod
    def _second_factor(body: dict[str, Any]) -> TotpCode | None:
        """The code in the body, if any: checked when the admin has TOTP, as a TOTP or recovery code."""
        otp = body.get("otp")
        return TotpCode(otp) if isinstance(otp, str) and otp else None

    # --- registration ---------------------------------------------------------------------------

    async def register(self, actor: str, body: dict[str, Any], attempt: Attempt) -> str:
        """An actorless token for a new identity (customers only: admins are made by an operator)."""
        if actor != "customer":
            raise NotAllowed(f"The actor type {actor} cannot register with emailpass; ask an administrator.")
        creds = emailpass_body(body)
        creds = Credentials(names.email(creds.email).shown, creds.password)  # PRECIS; no mixed scripts
        await self.limits.ip(attempt.ip)
        await self.limits.name("login-user", "register", creds.email.casefold())
        async with self.db.session() as s:
            existing = await repo.find(s, EMAILPASS, actor, creds.email)
            account = await accounts_repo.customer_by_email(s, creds.email)
        stale_before = self._now_ms() - self.settings.pending_registration_ttl * 1000
        if existing is not None and existing.user_id is None and existing.created_ms < stale_before:
            # An ended registration of this email: gone now rather than at the next purge.
            async with self.db.transaction() as s:
                await repo.purge_stale_registrations(s, stale_before)
            existing = None
        if existing is not None and existing.user_id is None and existing.password_hash is not None and not account:
            # Medusa: registering again before the customer exists succeeds with the same password
            # (once an account holds the email, a pending identity is dead: see identity_for).
            if await self.passwords.verify(existing.password_hash, creds.password):
                return await self.token(actor, existing, UserType.CUSTOMER, None)
            raise Unauthenticated(IDENTITY_EXISTS, detail="pending identity, wrong password")
        if existing is not None or account is not None:
            # Registration necessarily tells that an email is taken (as Medusa does); the login
            # rate limits above bound how fast anyone can ask.
            raise Unauthenticated(IDENTITY_EXISTS, detail="email taken")
        check_policy(creds.password, min_length=self.settings.password_min_length, identifiers=(creds.email,))
        hashed = await self.passwords.hash(creds.password)
        async with self.db.transaction() as s:
            try:
                identity = await repo.create(
                    s,
                    provider=EMAILPASS,
                    actor_type=actor,
                    entity_id=creds.email,
                    password_hash=hashed,
                    user_type=None,
                    user_id=None,
                    now_ms=self._now_ms(),
                )
            except Conflict:
                raise Unauthenticated(IDENTITY_EXISTS, detail="email taken (race)") from None
        return await self.token(actor, identity, UserType.CUSTOMER, None)

    async def create_customer(self, caller: Principal, body: dict[str, Any]) -> Customer:
        """POST /store/customers with a registration token: the customer, linked to the identity."""
        if caller.user_type == UserType.CUSTOMER:
            raise NotAllowed("Request already authenticated as a customer.")
        if caller.user_type != UserType.GUEST or not caller.user_id:
            raise AuthenticationRequired(detail="no registration token")
        async with self.db.session() as s:
            identity = self._current(caller, await repo.by_id(s, caller.user_id))
        if identity is None or identity.actor_type != "customer":
            raise AuthenticationRequired(detail="registration token of an unknown identity")
        federated = identity.provider != EMAILPASS  # an external provider's verified email (federation/)
        if identity.user_id is not None or (identity.password_hash is None and not federated):
            raise NotAllowed("Request already authenticated as a customer.")
        email = body.get("email")
        same = isinstance(email, str) and email.strip().casefold() == identity.entity_id.casefold()
        if email is not None and not same:
            raise InvalidRequest("Invalid request: Field 'email' must be the email the identity was registered with")
        names = {}
        for field in ("first_name", "last_name"):
            value = body.get(field)
            if value is not None and (not isinstance(value, str) or len(value) > 255 or "\x00" in value):
                raise InvalidRequest(f"Invalid request: Field '{field}' must be a string")
            names[field] = value or ""
        # A federated customer has no password (crypto/passwords.py unusable_hash): a password
        # check against it costs what any account's does (no tell that it is federated).
        password_hash = identity.password_hash or unusable_hash()
        async with self.db.transaction() as s:
            customer = await accounts_repo.create_customer(
                s,
                email=identity.entity_id,
                firstname=names["first_name"],
                lastname=names["last_name"],
                password_hash=password_hash,
            )
            if not await repo.link(s, identity.id, int(UserType.CUSTOMER), customer.id):
                raise NotAllowed("Request already authenticated as a customer.")
            if federated:
                await idps_repo.claim_registration(s, identity.id, customer.id)
        await self.audit.record(
            audit.ACCOUNT_CREATED,
            actor_type=int(UserType.CUSTOMER),
            actor_id=customer.id,
            username=customer.email,
            details={"target_type": int(UserType.CUSTOMER), "target_id": customer.id, "via": "medusa"},
        )
        if federated:
            await self.audit.record(
                audit.IDENTITY_PROVISIONED,
                actor_type=int(UserType.CUSTOMER),
                actor_id=customer.id,
                username=customer.email,
                details={"provider": identity.provider},
            )
        return customer

    # --- renewal: refresh and sessions from tokens -------------------------------------------

    async def presented(self, caller: Principal, bearer: str | None, cookie: str | None) -> Renewable:
        """The credential a renewal was asked with, if the Medusa surface issued it: a bearer token
        marked `tk_surface: medusa` (checked on the verified claims), or a Medusa cookie session.
        Anything else (OAuth 2 access tokens, Magento login tokens, opaque tokens, API keys,
        integration tokens, console sessions) is refused with Medusa's 401, as is a sign-in past
        its absolute lifetime."""
        if caller.credential == "bearer" and bearer is not None:
            try:
                claims = await self.authenticator.read(bearer)
            except Unauthenticated:
                raise AuthenticationRequired(detail="renewal with an unreadable bearer token") from None
            foreign = claims.surface != MEDUSA or claims.client_id is not None or claims.scope is not None
            if foreign or claims.auth_time is None or (claims.user_type, claims.user_id) != _who(caller):
                raise AuthenticationRequired(detail=f"renewal with a token of another surface ({claims.surface})")
            renewable = Renewable(claims.auth_time, claims.auth_methods or ("pwd",), "bearer")
        elif caller.credential == "session":
            session = self.sessions.find(cookie)
            if session is None or session.kind != "medusa" or (session.user_type, session.user_id) != _who(caller):
                raise AuthenticationRequired(detail="renewal with a session of another surface")
            context = json.loads(session.context or "{}")
            auth_time = context.get("auth_time")
            if not isinstance(auth_time, int) or isinstance(auth_time, bool):
                auth_time = session.created_ms // 1000
            renewable = Renewable(auth_time, caller.auth_methods or ("pwd",), "session")
        else:
            raise AuthenticationRequired(detail=f"renewal with a {caller.credential} credential")
        if caller.user_type not in (UserType.ADMIN, UserType.CUSTOMER, UserType.GUEST) or not caller.user_id:
            raise AuthenticationRequired(detail="no caller to renew")
        if self.clock.now_int() >= renewable.expires(self.settings, caller.user_type):
            raise AuthenticationRequired(detail="sign-in past its absolute lifetime")
        return renewable

    async def refresh(self, caller: Principal, bearer: str | None = None, cookie: str | None = None) -> str:
        """A fresh token for the caller of a Medusa token or session, carrying the original sign-in
        time; a registration token's holder gets the customer it created (Medusa's register ->
        create -> refresh), and only that one: VerificationRequired while its address is unverified
        under TILLKEY_CUSTOMER_EMAIL_VERIFICATION=required."""
        presented = await self.presented(caller, bearer, cookie)
        by_password = False  # a new customer's password registration: its address is checked below
        async with self.db.session() as s:
            if caller.user_type == UserType.GUEST:
                identity = await self._registration(s, caller)
                by_password = identity.provider == EMAILPASS
                if identity.user_id is None:
                    return await self.token(
                        identity.actor_type, identity, UserType.CUSTOMER, None, auth_time=presented.auth_time
                    )
                utype, uid = UserType(identity.user_type or UserType.CUSTOMER), identity.user_id
            else:
                utype, uid = caller.user_type, caller.user_id
            account: Admin | Customer | None = (
                await accounts_repo.admin_by_id(s, uid)
                if utype == UserType.ADMIN
                else await accounts_repo.customer_by_id(s, uid)
            )
        if account is None or not account.is_active:
            raise AuthenticationRequired(detail="account gone or inactive")
        if by_password and await email_unverified(self.settings, self.db, utype, account):
            # A new customer's first renewal: the address is verified first, as at login (an
            # external provider's registration vouches for its own, as its sign-in does).
            raise VerificationRequired(utype, account)
        renewed = self.grants.principal(TokenClaims(int(utype), uid, self.clock.now_int(), None, "", "jwt"))
        delegation.require_renewal_within(caller, renewed, what="medusa token refresh")
        actor = ACTOR_OF[utype]
        identity = await self.identity_for(actor, account.email, utype, uid)
        return await self.token(actor, identity, utype, uid, presented.methods, auth_time=presented.auth_time)

    def _current(self, caller: Principal, identity: Identity | None) -> Identity | None:
        """The registration token's identity, or None once it is not that token's any more: a
        pending registration past TILLKEY_PENDING_REGISTRATION_TTL has ended (and is purged), and a
        row made after the token was minted is another registration that reused a purged id."""
        if identity is None or identity.created_ms // 1000 > (caller.issued_at or 0):
            return None
        ttl_ms = self.settings.pending_registration_ttl * 1000
        if identity.user_id is None and identity.created_ms + ttl_ms <= int(self.clock.now() * 1000):
            return None
        return identity

    async def _registration(self, s: AsyncSession, caller: Principal) -> Identity:
        """The identity of a registration token, in a state it may still be used in: pending (and no
        one else's account holds its email since), or linked to the customer it created."""
        identity = self._current(caller, await repo.by_id(s, caller.user_id))
        if identity is None or identity.actor_type != "customer":
            raise AuthenticationRequired(detail="registration token of an unknown identity")
        if identity.user_id is None:
            unusable = identity.password_hash is None and identity.provider == EMAILPASS
            if unusable or await accounts_repo.customer_by_email(s, identity.entity_id):
                raise AuthenticationRequired(detail="pending identity whose email another account holds")
        elif identity.user_type != UserType.CUSTOMER:
            raise AuthenticationRequired(detail="registration token of an identity linked to a non-customer")
        return identity

    async def session_from(self, caller: Principal, bearer: str | None, *, ttl: int) -> SessionGrant:
        """What a cookie session made from the bearer token may hold: the same caller, no more (the
        delegation rule), ending no later than the sign-in's absolute lifetime, nor `ttl`."""
        if caller.credential != "bearer" or bearer is None:
            raise AuthenticationRequired(detail="POST /auth/session needs a valid bearer token")
        presented = await self.presented(caller, bearer, None)
        if caller.user_type == UserType.GUEST:
            async with self.db.session() as s:
                identity = await self._registration(s, caller)
            if identity.user_id is not None:
                raise AuthenticationRequired(detail="registration token of a claimed identity: refresh it first")
        now = self.clock.now_int()
        session_ttl = min(ttl, presented.expires(self.settings, caller.user_type) - now)
        as_session = self.grants.principal(
            TokenClaims(int(caller.user_type), caller.user_id, now, now + session_ttl, "", "opaque")
        )
        delegation.require_renewal_within(caller, as_session, what="session from a token")
        return SessionGrant(presented.auth_time, session_ttl)

    # --- password reset -------------------------------------------------------------------------

    async def request_reset(self, actor: str, identifier: str, attempt: Attempt) -> None:
        """Answers the same whether or not the email names an account: the work (lookup, token,
        outbox) runs after the answer, so neither the body nor the timing tells."""
        await self.limits.ip(attempt.ip)
        await self.limits.name("reset", actor, identifier.casefold())
        task = asyncio.create_task(self._reset_soon(actor, identifier, attempt))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _reset_soon(self, actor: str, identifier: str, attempt: Attempt) -> None:
        try:
            await self._reset(actor, identifier, attempt)
        except Exception:
            log.exception("password reset request failed")

    async def _reset(self, actor: str, identifier: str, attempt: Attempt) -> None:
        utype = ACTORS[actor]
        async with self.db.session() as s:
            account: Admin | Customer | None = (
                await accounts_repo.admin_by_email(s, identifier)
                if utype == UserType.ADMIN
                else await accounts_repo.customer_by_email(s, identifier)
            )
        if account is None or not account.is_active:
            await self.audit.record(
                audit.PASSWORD_RESET_REQUESTED,
                outcome=audit.FAILURE,
                actor_type=int(utype),
                username=identifier[:255],
                ip=attempt.ip,
                user_agent=attempt.user_agent,
                details={"reason": "no such active account"},
            )
            return
        token = RESET_PREFIX + random_token(32)
        now_ms = self._now_ms()
        expires_ms = now_ms + self.settings.password_reset_ttl * 1000
        limit = self.settings.password_reset_per_account
        async with self.db.transaction() as s:
            added = await repo.add_reset(
                s, self.master.digest(token), int(utype), account.id, expires_ms, now_ms=now_ms, limit=limit
            )
        if not added:
            # Per account, whatever the IP or the spelling of the email: the mailbox is not flooded,
            # and the tokens already sent stay valid. The client got the same 201 as ever.
            await self.audit.record(
                audit.PASSWORD_RESET_REQUESTED,
                outcome=audit.FAILURE,
                actor_type=int(utype),
                actor_id=account.id,
                username=identifier[:255],
                ip=attempt.ip,
                user_agent=attempt.user_agent,
                details={"reason": f"more than {limit} requests within the token lifetime"},
            )
            return
        sent = self.outbox.send(
            {
                "kind": "password_reset",
                "actor_type": actor,
                "entity_id": identifier,
                "to": account.email,
                "token": token,
                "expires_at": expires_ms // 1000,
            }
        )
        await self.audit.record(
            audit.PASSWORD_RESET_REQUESTED,
            actor_type=int(utype),
            actor_id=account.id,
            username=identifier[:255],
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            details={"delivered": sent},
        )

    async def update_password(
        self, actor: str, reset_token: str | None, body: dict[str, Any], attempt: Attempt
    ) -> None:
        """Spend a reset token (single use, even when the body is unusable) and set the password.
        Every token and session of the account is revoked: a reset often follows a compromise."""
        await self.limits.ip(attempt.ip)
        if not reset_token or not reset_token.startswith(RESET_PREFIX) or len(reset_token) > 128:
            raise Unauthenticated(INVALID_TOKEN)
        async with self.db.transaction() as s:
            # The route's actor type is part of the lookup: another actor's token is refused unspent.
            spent = await repo.consume_reset(s, self.master.digest(reset_token), int(ACTORS[actor]), self._now_ms())
        if spent is None:
            raise Unauthenticated(INVALID_TOKEN, detail="unknown, spent, expired or other actor's reset token")
        utype, uid = UserType(spent[0]), spent[1]
        password = body.get("password")
        if not isinstance(password, str) or not password or "\x00" in password or len(password) > 1024:
            raise AuthenticationRequired(detail="reset without a password")
        async with self.db.session() as s:
            account: Admin | Customer | None = (
                await accounts_repo.admin_by_id(s, uid)
                if utype == UserType.ADMIN
                else await accounts_repo.customer_by_id(s, uid)
            )
        if account is None:
            raise Unauthenticated(INVALID_TOKEN, detail="account gone")
        check_policy(password, min_length=self.settings.password_min_length, identifiers=(account.email,))
        hashed = await self.passwords.hash(password)
        async with self.db.transaction() as s:
            if utype == UserType.ADMIN:
                await accounts_repo.set_admin_password_hash(s, uid, hashed)
            else:
                await accounts_repo.set_customer_password_hash(s, uid, hashed)
            await repo.void_resets(s, int(utype), uid)
        await self.revoker.revoke_for(utype, uid)
        await self.audit.record(
            audit.PASSWORD_RESET_COMPLETED,
            actor_type=int(utype),
            actor_id=uid,
            username=account.email,
            ip=attempt.ip,
            user_agent=attempt.user_agent,
        )

    async def me(self, caller: Principal) -> Admin | Customer:
        """The caller's account: an admin's from memory (runtime.py keeps the profiles current), a
        customer's from the database; an admin created since the last sync is read there too."""
        if caller.user_type == UserType.ADMIN and (known := self.admin_profile(caller.user_id)):
            return known
        async with self.db.session() as s:
            account: Admin | Customer | None = (
                await accounts_repo.admin_by_id(s, caller.user_id)
                if caller.user_type == UserType.ADMIN
                else await accounts_repo.customer_by_id(s, caller.user_id)
            )
        if account is None:
            actor = ACTOR_OF.get(caller.user_type, "user")
            noun = "User" if actor == "user" else "Customer"
            raise NotFound(f"{noun} with id: {actor_id(actor, caller.user_id)} was not found")
        return account


_background: set[asyncio.Task[None]] = set()
