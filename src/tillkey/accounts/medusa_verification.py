"""Medusa 2.21's email verification (`/auth/verification/*`, docs/compatibility.md), for customers
under TILLKEY_CUSTOMER_EMAIL_VERIFICATION=required and admins ("user") under
TILLKEY_ADMIN_EMAIL_VERIFICATION=required (Medusa's authVerificationsPerActor).

- The sign-in machine refuses a password sign-in of an account whose current address was never
  verified (signin/machine.py `VerificationRequired`); Medusa's login answers it with
  `{token, verification_required, verification}`. That token is the MFA challenge's kind
  (accounts/medusa_mfa.py): a guest (uid 0) to every access check, short-lived, refused by refresh
  and session, naming only the identity that passed the password. It can ask for a code and
  confirm one, nothing else.
- `request` (with that token) mails a single-use code through the outbox, stored as a keyed
  digest, short-lived, a bounded number per account within its lifetime (as password reset). An
  address that is not the token's account's answers the same and sends nothing.
- `confirm` spends the code (with or without a token; with one, only that account's code is
  accepted, and left unspent otherwise). The spent code is the record that the account verified
  that address; the client then signs in again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tillkey import audit
from tillkey.accounts.medusa_auth import EMAILPASS
from tillkey.accounts.signin import Attempt, VerificationRequired
from tillkey.crypto.secrets import random_token
from tillkey.errors import AuthenticationRequired, InvalidRequest, NotAllowed
from tillkey.principal import Principal, UserType
from tillkey.store import email_verifications as repo

if TYPE_CHECKING:
    from tillkey.accounts.medusa_auth import MedusaAuth
    from tillkey.accounts.medusa_mfa import MedusaMfa
    from tillkey.accounts.signin.budget import LoginLimits
    from tillkey.clock import Clock
    from tillkey.contracts import Audit
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database
    from tillkey.tokens.contracts import TokenRevoker

PENDING_CLAIM = "tk_email_verification"
CODE_PREFIX = "tk_ev_"
ENTITY_TYPE = "email"
CODE_PROVIDER = "token"
INVALID_CODE = "Verification code is invalid or already used"
EXPIRED_CODE = "Verification code has expired"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class VerificationDue:
    """What login answers when the address is unverified: the pending token and the verification
    (None before any code was requested)."""

    token: str
    body: dict[str, Any] | None

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token, "verification_required": True}
        if self.body is not None:
            out["verification"] = self.body
        return out


class MedusaVerification:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        db: Database,
        master: MasterSecret,
        audit: Audit,
        limits: LoginLimits,
        revoker: TokenRevoker,
        auth: MedusaAuth,
        mfa: MedusaMfa,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.master = master
        self.audit = audit
        self.limits = limits
        self.revoker = revoker
        self.auth = auth
        self.mfa = mfa

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def _body(self, identity_ref: str, entity_id: str, requested_ms: int, *, stored: bool) -> dict[str, Any]:
        """Medusa's verification record, as it serializes it: `stored`, read back from the table
        (with its identity), else as just created. `provider_metadata` holds Medusa's token hash;
        Tillkey never shows a code's digest (null)."""
        # One verification per identity and address (Medusa's unique index), so its id names them.
        when = _iso(requested_ms)
        body: dict[str, Any] = {
            "id": f"authver_{identity_ref[7:]}",
            "auth_identity_id": identity_ref,
            "entity_id": entity_id,
            "entity_type": ENTITY_TYPE,
            "code_provider": CODE_PROVIDER,
            "verified_at": None,
            "requested_at": when,
            "provider_metadata": None,
            "metadata": {},
            "created_at": when,
            "updated_at": when,
            "deleted_at": None,
        }
        if stored:
            body["auth_identity"] = {"id": identity_ref}
        return body

    async def due(self, actor: str, email: str, due: VerificationRequired) -> VerificationDue:
        identity = await self.auth.identity_for(actor, email, due.user_type, due.account.id)
        ref = f"authid_{identity.id}"
        claims = {
            "actor_id": "",
            "actor_type": actor,
            "auth_identity_id": ref,
            "auth_provider": EMAILPASS,
            "app_metadata": {},
            "user_metadata": {},
            PENDING_CLAIM: True,
        }
        token = await self.mfa.auth_token(claims, self.clock.now_int())
        async with self.db.session() as s:
            requested = await repo.last_requested(s, int(due.user_type), due.account.id)
        # Never asked for a code: Medusa has no verification record to show yet.
        body = None if requested is None else self._body(ref, due.account.email, requested, stored=True)
        return VerificationDue(token, body)

    async def _pending(self, bearer: str | None) -> tuple[Any, str, UserType, int, str, str]:
        """The pending verification token's claims, identity ref, account (type, id, email) and
        Medusa actor type ("customer", "user")."""
        claims, payload = await self.mfa._pending(bearer)
        if payload.get(PENDING_CLAIM) is not True:
            raise AuthenticationRequired(detail="not a pending email verification token")
        identity, account = await self.mfa._pending_account(payload)
        utype = UserType(identity.user_type or 0)
        return claims, f"authid_{identity.id}", utype, account.id, account.email, identity.actor_type

    async def request(self, bearer: str | None, body: dict[str, Any], where: Attempt) -> dict[str, Any]:
        await self.limits.ip(where.ip)
        await self._pending(bearer)  # who is asking first (Medusa's authenticate), then the body
        entity_id, entity_type = body.get("entity_id"), body.get("entity_type")
        provider = body.get("code_provider", CODE_PROVIDER)
        if not isinstance(entity_id, str) or not entity_id or len(entity_id) > 255:
            raise InvalidRequest("Invalid request: Field 'entity_id' is required")
        if not isinstance(entity_type, str) or not entity_type:
            raise InvalidRequest("Invalid request: Field 'entity_type' is required")
        if entity_type != ENTITY_TYPE or provider != CODE_PROVIDER:
            raise InvalidRequest("Only email verification with the token code provider is supported")
        _claims, ref, utype, uid, email, actor = await self._pending(bearer)
        now_ms = self._now_ms()
        async with self.db.session() as s:
            before = await repo.last_requested(s, int(utype), uid)
        # Medusa keeps one record per identity and address: shown as stored once asked for before.
        own = entity_id.casefold() == email.casefold()
        answer = self._body(ref, entity_id, now_ms, stored=own and before is not None)
        if not own:
            # Not this account's address: the same answer, nothing sent (no enumeration, no relay).
            await self._audit(utype, uid, entity_id, where, "email verification for another address")
            return answer
        code = CODE_PREFIX + random_token(32)
        expires_ms = now_ms + self.settings.email_verification_ttl * 1000
        async with self.db.transaction() as s:
            added = await repo.add(
                s,
                self.master.digest(code),
                int(utype),
                uid,
                email,
                now_ms=now_ms,
                expires_ms=expires_ms,
                limit=self.settings.password_reset_per_account,
            )
        if not added:
            await self._audit(utype, uid, entity_id, where, "email verification requests over the bound")
            return answer
        sent = self.auth.outbox.send(
            {
                "kind": "email_verification",
                "actor_type": actor,
                "entity_id": entity_id,
                "to": email,
                "code": code,
                "expires_at": expires_ms // 1000,
            }
        )
        await self._audit(utype, uid, entity_id, where, "email verification requested", delivered=sent)
        return answer

    async def confirm(
        self, caller: Principal, bearer: str | None, body: dict[str, Any], where: Attempt
    ) -> dict[str, Any]:
        await self.limits.ip(where.ip)
        code, provider = body.get("code"), body.get("code_provider", CODE_PROVIDER)
        if not isinstance(code, str) or not code or len(code) > 128:
            raise InvalidRequest("Invalid request: Field 'code' is required")
        if provider != CODE_PROVIDER:
            raise InvalidRequest("Only the token code provider is supported")
        pending = None
        holder: tuple[int, int] | None = None
        if caller.user_type in (UserType.ADMIN, UserType.CUSTOMER) and caller.user_id:
            holder = (int(caller.user_type), caller.user_id)
        elif bearer is not None:
            pending = await self._pending(bearer)
            holder = (int(pending[2]), pending[3])
        if not code.startswith(CODE_PREFIX):
            raise NotAllowed(INVALID_CODE, detail="not a verification code")
        digest, now_ms = self.master.digest(code), self._now_ms()
        async with self.db.transaction() as s:
            row = await repo.find(s, digest)
            # With a token, only its own account's code: another's stays unspent for its owner.
            mine = row is not None and (holder is None or holder == (row.user_type, row.user_id))
            if row is not None and mine and row.used_ms is None and row.expires_ms <= now_ms:
                raise NotAllowed(EXPIRED_CODE)
            # Asking again replaces the code (Medusa keeps one per address): an earlier one is spent.
            current = mine and row is not None and await repo.is_latest(s, row)
            spent = current and await repo.consume(s, digest, now_ms)
        if row is None or not spent:
            raise NotAllowed(INVALID_CODE, detail="unknown, spent, superseded or another account's code")
        if pending is not None:
            await self.revoker.revoke_token(pending[0])  # its work is done: sign in again
        await self._audit(UserType(row.user_type), row.user_id, row.email, where, "email verified")
        return {
            "entity_id": row.email,
            "entity_type": ENTITY_TYPE,
            "code_provider": CODE_PROVIDER,
            "verified_at": _iso(now_ms),
        }

    async def _audit(
        self, utype: UserType, uid: int, name: str, where: Attempt, change: str, **details: object
    ) -> None:
        await self.audit.record(
            audit.ACCOUNT_CHANGED,
            actor_type=int(utype),
            actor_id=uid,
            username=name[:255],
            ip=where.ip,
            user_agent=where.user_agent,
            details={"target_type": int(utype), "target_id": uid, "change": change, **details},
        )
