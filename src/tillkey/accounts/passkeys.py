"""Passkeys (WebAuthn Level 2/3) for admins and customers, verified by py_webauthn.

A ceremony is two requests: options (a fresh challenge, stored) and the authenticator's answer,
checked against that challenge. The challenge is single use (consumed before anything is checked,
so a replay finds nothing), short-lived (`TILLKEY_WEBAUTHN_CHALLENGE_TTL`, on the injected clock)
and bound to what asked for it: the caller names a binding (the console session, the pending
sign-in's challenge, the signed-in principal, the browser's login cookie) and only the same
binding can spend it. py_webauthn checks the origin (`TILLKEY_WEBAUTHN_ORIGINS`), the RP id hash,
user presence, user verification when asked, the attestation statement and the signature; this
module adds what is the relying party's: which account a credential belongs to, the sign counter
(never backwards: a clone), the AAGUID allow-list, and the audit.

RFC 8176 amr of a passkey: `hwk` for a device-bound key, `swk` for a synced one (backup eligible:
the private key leaves the device), `user` for the presence test, and `mfa` when the authenticator
also verified the user (a PIN or biometric on the device: a multi-factor authenticator by itself).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tillkey import audit
from tillkey.errors import InvalidRequest, NotAllowed, NotFound
from tillkey.principal import UserType
from tillkey.store import accounts as accounts_repo
from tillkey.store import passkeys as repo
from tillkey.store.passkeys import Passkey

if TYPE_CHECKING:
    # py_webauthn (and the pyOpenSSL and ASN.1 modules it loads) is imported by the ceremonies that
    # use it, not with this module: every server start and CLI command would pay for it.
    from webauthn.helpers.structs import UserVerificationRequirement

    from tillkey.accounts.totp import Totp
    from tillkey.clock import Clock
    from tillkey.contracts import Audit
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database

REGISTER = "register"
SIGN_IN = "sign-in"
NOT_VERIFIED = "The passkey could not be verified."
NO_PASSKEY = "No such passkey."
MAX_PASSKEYS = 20  # per account: each is listed in every sign-in's allowCredentials
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


@dataclass(frozen=True, slots=True)
class Owner:
    user_type: UserType
    user_id: int  # 0: not known yet (a passwordless sign-in's challenge)


@dataclass(frozen=True, slots=True)
class Ceremony:
    """A stored challenge's handle and the options for navigator.credentials (JSON-ready)."""

    id: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Used:
    """A passkey that just signed in, and the RFC 8176 methods it proved."""

    passkey: Passkey
    user_verified: bool

    @property
    def amr(self) -> tuple[str, ...]:
        key = "swk" if self.passkey.backup_eligible else "hwk"
        return (key, "user", "mfa") if self.user_verified else (key, "user")


class PasskeyRefused(Exception):
    """An assertion that does not sign in; `reason` is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _clean_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        raise InvalidRequest("A passkey's name is 1 to 64 characters, without control characters.")
    return name.strip()


def _credential(raw: object) -> dict[str, Any]:
    """What navigator.credentials returned, as JSON (an object, or its serialisation)."""
    if isinstance(raw, str) and len(raw) <= 64 * 1024:
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("response"), dict):
        raise InvalidRequest("A credential (the JSON of a PublicKeyCredential) is required.")
    return raw


class Passkeys:
    def __init__(
        self, *, db: Database, master: MasterSecret, settings: Settings, clock: Clock, audit: Audit, totp: Totp
    ) -> None:
        self.db = db
        self.master = master
        self.settings = settings
        self.clock = clock
        self.audit = audit
        self.totp = totp  # the admins': an admin's last second factor (remove_own)

    # --- pieces -------------------------------------------------------------------------------

    def _binding(self, binding: str) -> str:
        return self.master.digest("webauthn:" + binding)

    def user_handle(self, owner: Owner) -> bytes:
        """The WebAuthn user.id: stable per account, opaque (no name or number in it, spec §14.6.1)."""
        return bytes.fromhex(self.master.digest(f"webauthn-user:{int(owner.user_type)}:{owner.user_id}"))[:32]

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def _challenge(self, purpose: str, owner: Owner, binding: str, uv: bool) -> tuple[str, bytes]:
        ceremony, challenge = secrets.token_urlsafe(24), secrets.token_bytes(32)
        now = self._now_ms()
        row = repo.Challenge(
            ceremony,
            purpose,
            owner.user_type,
            owner.user_id,
            self._binding(binding),
            challenge,
            uv,
            now + self.settings.webauthn_challenge_ttl * 1000,
        )
        async with self.db.transaction() as s:
            await repo.put_challenge(s, row, now)
        return ceremony, challenge

    async def _take(self, purpose: str, owner: Owner, binding: str, ceremony_id: object) -> repo.Challenge:
        """Consume the ceremony's challenge; refused unless it is live, of this purpose, owner and binding."""
        if not isinstance(ceremony_id, str) or not 0 < len(ceremony_id) <= 64:
            raise PasskeyRefused("no ceremony id")
        async with self.db.transaction() as s:
            found = await repo.take_challenge(s, ceremony_id, self._now_ms())
        if found is None:
            raise PasskeyRefused("unknown, spent or expired challenge")
        mine = (found.purpose, found.user_type, found.user_id) == (purpose, owner.user_type, owner.user_id)
        if not mine or not secrets.compare_digest(found.binding, self._binding(binding)):
            raise PasskeyRefused("challenge of another session")
        return found

    def _uv_required(self) -> bool:
        return self.settings.webauthn_user_verification == "required"

    def _uv(self, required: bool) -> UserVerificationRequirement:
        from webauthn.helpers.structs import UserVerificationRequirement

        if required:
            return UserVerificationRequirement.REQUIRED
        return UserVerificationRequirement(self.settings.webauthn_user_verification)

    async def _account_name(self, owner: Owner) -> str:
        async with self.db.session() as s:
            if owner.user_type == UserType.ADMIN:
                admin = await accounts_repo.admin_by_id(s, owner.user_id)
                return "" if admin is None else admin.username
            customer = await accounts_repo.customer_by_id(s, owner.user_id)
            return "" if customer is None else customer.email

    async def _audit(self, event: str, owner: Owner, passkey: Passkey, **details: object) -> None:
        await self.audit.record(
            event,
            actor_type=int(owner.user_type),
            actor_id=owner.user_id,
            details={"factor": "passkey", "id": passkey.id, "aaguid": passkey.aaguid, "name": passkey.name, **details},
        )

    # --- registration -------------------------------------------------------------------------

    async def registration_options(self, owner: Owner, binding: str) -> Ceremony:
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers import base64url_to_bytes
        from webauthn.helpers.structs import (
            AttestationConveyancePreference,
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
        )

        name = await self._account_name(owner)
        if not name:
            raise NotFound("No such account.")
        existing = await self.list(owner)
        if len(existing) >= MAX_PASSKEYS:
            raise InvalidRequest(f"An account holds at most {MAX_PASSKEYS} passkeys; remove one first.")
        uv = self._uv_required()
        ceremony, challenge = await self._challenge(REGISTER, owner, binding, uv)
        s = self.settings
        options = generate_registration_options(
            rp_id=s.webauthn_rp,
            rp_name=s.webauthn_rp_name,
            user_name=name,
            user_display_name=name,
            user_id=self.user_handle(owner),
            challenge=challenge,
            timeout=s.webauthn_challenge_ttl * 1000,
            attestation=AttestationConveyancePreference.DIRECT
            if s.webauthn_aaguid_set
            else AttestationConveyancePreference.NONE,
            # Discoverable where the authenticator can: the same passkey then signs in without a name.
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED, user_verification=self._uv(uv)
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in existing
            ],
        )
        return Ceremony(ceremony, json.loads(options_to_json(options)))

    async def register(self, owner: Owner, binding: str, ceremony_id: object, raw: object, name: object) -> Passkey:
        """Check the authenticator's answer to `registration_options` and store the passkey."""
        from webauthn import verify_registration_response
        from webauthn.helpers import bytes_to_base64url
        from webauthn.helpers.exceptions import WebAuthnException
        from webauthn.helpers.structs import AttestationFormat, AuthenticatorTransport, CredentialDeviceType

        label = _clean_name(name)
        credential = _credential(raw)
        s = self.settings
        try:
            challenge = await self._take(REGISTER, owner, binding, ceremony_id)
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge.challenge,
                expected_rp_id=s.webauthn_rp,
                expected_origin=s.webauthn_origin_list,
                require_user_verification=challenge.user_verification,
            )
        except (PasskeyRefused, WebAuthnException, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequest(NOT_VERIFIED, detail=f"passkey registration: {exc}") from None
        if s.webauthn_aaguid_set and (
            verified.fmt == AttestationFormat.NONE or verified.aaguid.lower() not in s.webauthn_aaguid_set
        ):
            raise InvalidRequest(
                "This authenticator model is not accepted here.", detail=f"aaguid {verified.aaguid} ({verified.fmt})"
            )
        transports = credential["response"].get("transports")
        kept = (
            tuple(t for t in transports if isinstance(t, str) and t in {k.value for k in AuthenticatorTransport})
            if isinstance(transports, list)
            else ()
        )
        new = repo.NewPasskey(
            owner.user_type,
            owner.user_id,
            bytes_to_base64url(verified.credential_id),
            verified.credential_public_key,
            verified.sign_count,
            verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            verified.credential_backed_up,
            kept,
            verified.aaguid,
            label,
            self._now_ms(),
        )
        async with self.db.transaction() as db:
            passkey = await repo.add(db, new)
        await self._audit(audit.PASSKEY_REGISTERED, owner, passkey, fmt=str(verified.fmt))
        return passkey

    # --- the owner's list -----------------------------------------------------------------------

    async def list(self, owner: Owner) -> list[Passkey]:
        async with self.db.session() as s:
            return await repo.of(s, owner.user_type, owner.user_id)

    async def has_any(self, owner: Owner) -> bool:
        return bool(await self.list(owner))

    async def rename(self, owner: Owner, passkey_id: int, name: object) -> Passkey:
        label = _clean_name(name)
        async with self.db.transaction() as s:
            if not await repo.rename(s, owner.user_type, owner.user_id, passkey_id, label):
                raise NotFound(NO_PASSKEY)
        found = next(p for p in await self.list(owner) if p.id == passkey_id)
        await self._audit(audit.PASSKEY_RENAMED, owner, found)
        return found

    async def remove(self, owner: Owner, passkey_id: int, *, by: Owner | None = None) -> Passkey:
        """Remove one passkey of `owner` (`by`: another admin resetting it, for the audit)."""
        found = next((p for p in await self.list(owner) if p.id == passkey_id), None)
        async with self.db.transaction() as s:
            if found is None or not await repo.remove(s, owner.user_type, owner.user_id, passkey_id):
                raise NotFound(NO_PASSKEY)
        extra = {} if by is None else {"by_type": int(by.user_type), "by_id": by.user_id}
        await self._audit(audit.PASSKEY_REMOVED, owner, found, **extra)
        return found

    async def remove_own(self, owner: Owner, passkey_id: int) -> Passkey:
        """The owner removes one of their passkeys. An admin keeps a second factor: the last one
        (no TOTP, no other passkey) is another admin's to reset, so a stolen session cannot strip
        it (the delegation rule, as for TOTP)."""
        if owner.user_type == UserType.ADMIN:
            others = [p for p in await self.list(owner) if p.id != passkey_id]
            if not others and not await self.totp.is_active(owner.user_id):
                raise NotAllowed("An admin's last second factor is reset by another administrator.")
        return await self.remove(owner, passkey_id)

    # --- authentication -----------------------------------------------------------------------

    async def authentication_options(self, owner: Owner, binding: str, *, passwordless: bool = False) -> Ceremony:
        """Options for navigator.credentials.get(): the owner's passkeys, or none listed for a
        passwordless sign-in (the authenticator offers its discoverable ones; user verification
        then required, since the passkey is the only factor)."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers import base64url_to_bytes
        from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

        uv = passwordless or self._uv_required()
        allowed = [] if passwordless else await self.list(owner)
        ceremony, challenge = await self._challenge(SIGN_IN, owner, binding, uv)
        options = generate_authentication_options(
            rp_id=self.settings.webauthn_rp,
            challenge=challenge,
            timeout=self.settings.webauthn_challenge_ttl * 1000,
            allow_credentials=[
                PublicKeyCredentialDescriptor(
                    id=base64url_to_bytes(p.credential_id), transports=[AuthenticatorTransport(t) for t in p.transports]
                )
                for p in allowed
            ],
            user_verification=self._uv(uv),
        )
        return Ceremony(ceremony, json.loads(options_to_json(options)))

    async def authenticate(self, owner: Owner, binding: str, ceremony_id: object, raw: object) -> Used:
        """Check an assertion against the ceremony's challenge. `owner.user_id` 0 (passwordless):
        any passkey of that user type whose user handle matches. Raises PasskeyRefused."""
        from webauthn import verify_authentication_response
        from webauthn.helpers import base64url_to_bytes, parse_authenticator_data
        from webauthn.helpers.exceptions import WebAuthnException

        try:
            credential = _credential(raw)
        except InvalidRequest:
            raise PasskeyRefused("not a credential") from None
        challenge = await self._take(SIGN_IN, owner, binding, ceremony_id)
        async with self.db.session() as db:
            passkey = await repo.by_credential_id(db, str(credential["id"])[:1400])
        if passkey is None or passkey.user_type != owner.user_type:
            raise PasskeyRefused("unknown passkey")
        if owner.user_id and passkey.user_id != owner.user_id:
            raise PasskeyRefused("another account's passkey")
        self._check_user_handle(credential, passkey)
        s = self.settings
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge.challenge,
                expected_rp_id=s.webauthn_rp,
                expected_origin=s.webauthn_origin_list,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=challenge.user_verification,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PasskeyRefused(f"assertion: {exc}") from None
        flags = parse_authenticator_data(base64url_to_bytes(credential["response"]["authenticatorData"])).flags
        async with self.db.transaction() as db:
            moved = await repo.used(
                db,
                passkey.id,
                passkey.sign_count,
                verified.new_sign_count,
                verified.credential_backed_up,
                self._now_ms(),
            )
        if not moved:
            raise PasskeyRefused("sign counter did not move forward (a cloned authenticator?)")
        return Used(passkey, bool(flags.uv))

    def _check_user_handle(self, credential: dict[str, Any], passkey: Passkey) -> None:
        from webauthn.helpers import base64url_to_bytes

        handle = credential["response"].get("userHandle")
        if handle in (None, ""):
            return  # optional for non-discoverable credentials; the credential id named the account
        try:
            given = base64url_to_bytes(str(handle))
        except ValueError:
            raise PasskeyRefused("malformed user handle") from None
        if not secrets.compare_digest(given, self.user_handle(Owner(passkey.user_type, passkey.user_id))):
            raise PasskeyRefused("user handle of another account")
