"""Two-factor auth for admins: TOTP (RFC 6238, through pyotp) plus single-use recovery codes.

Codes are what every authenticator app makes: 6 digits, 30-second steps, HMAC-SHA-1. A code is
accepted within ±1 step of now (Magento's `twofactorauth/google/otp_window` default) and only for a
step later than the last one accepted, so a code seen over a shoulder or in a log cannot be
replayed inside its window (RFC 6238 §5.2). The secret is stored AES-GCM encrypted, bound to the
admin's id; recovery codes are generated secrets, so only their keyed HMAC digest is stored.

Lifecycle: enroll (a new inactive secret) → activate (a first code proves the app has it; ten
recovery codes are shown once) → verify at each login → reset (by another admin, or the CLI).
"""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass

import pyotp
import qrcode  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.access import delegation
from tillkey.accounts.service import Accounts
from tillkey.clock import Clock
from tillkey.contracts import Audit, Revocations
from tillkey.crypto.secrets import MasterSecret, constant_time_equals
from tillkey.errors import Conflict, InvalidRequest, NotFound
from tillkey.principal import Principal, UserType
from tillkey.settings import Settings
from tillkey.store import accounts as accounts_repo
from tillkey.store import passkeys as passkeys_repo
from tillkey.store import totp as repo
from tillkey.store.accounts import utcnow
from tillkey.store.db import Database

PERIOD = 30  # seconds per time step (RFC 6238 X)
WINDOW = 1  # steps accepted either side of now
RECOVERY_CODES = 10
# Base32's lowercase alphabet: 5 bits a character, 12 characters = 60 bits a code. Online guessing
# is capped by the login throttle; offline, the HMAC digest is useless without the master secret.
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_TOTP_CODE = re.compile(r"[0-9]{6}")

INVALID_CODE = "Invalid code."
NOT_CONFIGURED = "Provider is not configured."
NOT_ENROLLED = "Two-factor auth is not enrolled for this account; enroll first."


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str  # base32, for typing into an app by hand
    uri: str  # otpauth://totp/..., for a QR code


@dataclass(frozen=True, slots=True)
class TfaStatus:
    enrolled: bool
    active: bool
    recovery_codes_left: int


# --- pure pieces (unit-tested with fixed times) ---------------------------------------------------


def step_at(unix_time: float) -> int:
    return int(unix_time // PERIOD)


def matching_step(secret: str, code: str, now: float, last_step: int, window: int = WINDOW) -> int | None:
    """The time step within ±window of `now` whose code is `code` and that is later than
    `last_step`; None if there is none. Every candidate is computed and compared in constant time."""
    if not _TOTP_CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = step_at(now)
    found = None
    for step in range(current - window, current + window + 1):
        if step < 0:
            continue
        same = constant_time_equals(totp.at(step * PERIOD), code)
        if same and step > last_step and found is None:
            found = step
    return found


def is_recovery_code(code: str) -> bool:
    """Would `verify` take `code` as a recovery code (not a TOTP code)?"""
    code = code.strip().replace(" ", "")
    return not _TOTP_CODE.fullmatch(code) and normalize_recovery_code(code) is not None


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_recovery_code(code: str) -> str | None:
    """The canonical form (no dashes or spaces, lowercase) of something shaped like a recovery code."""
    raw = code.strip().lower().replace("-", "").replace(" ", "")
    if len(raw) != 12 or any(c not in _RECOVERY_ALPHABET for c in raw):
        return None
    return raw


def qr_text(uri: str) -> str:
    """The URI as a QR code drawn with block characters, light modules solid: reads right on the
    usual dark terminal, and needs no tty (it is plain text)."""
    qr = qrcode.QRCode(border=2)
    qr.add_data(uri)
    qr.make(fit=True)
    buf = io.StringIO()
    qr.print_ascii(out=buf, invert=True)
    return buf.getvalue()


def qr_svg(uri: str) -> str:
    from qrcode.image.svg import SvgPathImage  # type: ignore[import-untyped]

    image = qrcode.make(uri, image_factory=SvgPathImage, border=2)
    return str(image.to_string(encoding="unicode"))


# --- the service ----------------------------------------------------------------------------------


class Totp:
    """One account's TOTP and recovery codes; `user_type` picks admins (the default) or customers."""

    def __init__(
        self,
        *,
        db: Database,
        master: MasterSecret,
        settings: Settings,
        clock: Clock,
        audit: Audit,
        revoker: Revocations,
        accounts: Accounts,
        user_type: UserType = UserType.ADMIN,
    ) -> None:
        """Built once per user type (wiring.py): `tk.services.totp`, `tk.services.totp_for(user_type)`."""
        self.db = db
        self.master = master
        self.settings = settings
        self.clock = clock
        self.audit = audit
        self.revoker = revoker
        self.accounts = accounts
        self.user_type = user_type

    def _context(self, owner_id: int) -> str:
        # The owner is the associated data: a secret copied onto another account's row won't open.
        return f"totp:{owner_id}" if self.user_type == UserType.ADMIN else f"totp:{int(self.user_type)}:{owner_id}"

    def _seal(self, owner_id: int, secret: str) -> bytes:
        return self.master.encrypt(secret.encode(), context=self._context(owner_id))

    def _open(self, record: repo.TfaRecord) -> str:
        return self.master.decrypt(record.secret_enc, context=self._context(record.admin_id)).decode()

    async def _record(self, owner_id: int) -> repo.TfaRecord | None:
        async with self.db.session() as s:
            return await repo.get(s, owner_id, self.user_type)

    async def _label(self, s: AsyncSession, owner_id: int) -> str | None:
        """The account name an authenticator app shows (username or email); None: no such account."""
        if self.user_type == UserType.ADMIN:
            admin = await accounts_repo.admin_by_id(s, owner_id)
            return None if admin is None else admin.username
        customer = await accounts_repo.customer_by_id(s, owner_id)
        return None if customer is None else customer.email

    async def enroll(self, admin_id: int) -> Enrolment:
        """A new secret, stored inactive (replacing an inactive one); an active one must be reset first."""
        async with self.db.session() as s:
            label = await self._label(s, admin_id)
        if label is None:
            raise NotFound("The admin user doesn't exist." if self.user_type == UserType.ADMIN else "No such customer.")
        secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended secret length
        async with self.db.transaction() as s:
            await repo.put_pending(s, admin_id, self._seal(admin_id, secret), utcnow(), self.user_type)
        return self._enrolment(label, secret)

    def _enrolment(self, username: str, secret: str) -> Enrolment:
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=self.settings.totp_issuer_name)
        return Enrolment(secret, uri)

    async def pending(self, admin_id: int) -> Enrolment | None:
        """The enrolment waiting for its first code, again (a reloaded set-up page shows the secret
        the app already scanned); None if there is none, or it is active."""
        async with self.db.session() as s:
            label = await self._label(s, admin_id)
            record = await repo.get(s, admin_id, self.user_type)
        if label is None or record is None or record.active:
            return None
        return self._enrolment(label, self._open(record))

    async def activate(self, admin_id: int, code: str) -> list[str]:
        """Turn the pending secret on with a first code; returns the recovery codes, shown once."""
        record = await self._record(admin_id)
        if record is None:
            raise InvalidRequest(NOT_ENROLLED)
        if record.active:
            raise Conflict(repo.ALREADY_ACTIVE)
        step = matching_step(self._open(record), code.strip().replace(" ", ""), self.clock.now(), record.last_step)
        if step is None:
            raise InvalidRequest(INVALID_CODE)
        codes, digests = self._new_recovery_codes()
        async with self.db.transaction() as s:
            if not await repo.activate(s, admin_id, step, digests, self.user_type):
                # Reset, activated or re-enrolled by someone else between the read and now.
                raise Conflict("Two-factor auth changed meanwhile; enroll again.")
        await self.audit.record(audit.TFA_ENROLLED, actor_type=int(self.user_type), actor_id=admin_id)
        return codes

    def _new_recovery_codes(self) -> tuple[list[str], list[str]]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        return codes, [self.master.digest(c.replace("-", "")) for c in codes]

    async def regenerate_recovery_codes(self, owner_id: int) -> list[str]:
        """New recovery codes for an active factor (the old ones stop working); shown once."""
        if not await self.is_active(owner_id):
            raise InvalidRequest(NOT_ENROLLED)
        codes, digests = self._new_recovery_codes()
        async with self.db.transaction() as s:
            await repo.replace_recovery_codes(s, owner_id, digests, self.user_type)
        await self.audit.record(
            audit.TFA_ENROLLED,
            actor_type=int(self.user_type),
            actor_id=owner_id,
            details={"change": "recovery codes regenerated"},
        )
        return codes

    async def verify(self, admin_id: int, code: str) -> bool:
        """Spend `code`: a current TOTP code not accepted before, or an unused recovery code.
        False for anything else, including an account without active two-factor auth."""
        record = await self._record(admin_id)
        if record is None or not record.active:
            return False
        code = code.strip().replace(" ", "")
        if _TOTP_CODE.fullmatch(code):
            step = matching_step(self._open(record), code, self.clock.now(), record.last_step)
            if step is None:
                return False
            async with self.db.transaction() as s:
                return await repo.claim_step(s, admin_id, step, self.user_type)
        recovery = normalize_recovery_code(code)
        if recovery is None:
            return False
        return await self._spend_recovery_code(admin_id, recovery)

    async def _spend_recovery_code(self, admin_id: int, recovery: str) -> bool:
        """An unused recovery code. Its budget of wrong ones is the sign-in state machine's
        (accounts/signin/budget.py), the one caller of this through `verify`."""
        async with self.db.transaction() as s:
            return await repo.use_recovery_code(s, admin_id, self.master.digest(recovery), utcnow(), self.user_type)

    async def is_active(self, admin_id: int) -> bool:
        record = await self._record(admin_id)
        return record is not None and record.active

    async def status(self, admin_id: int) -> TfaStatus:
        async with self.db.session() as s:
            record = await repo.get(s, admin_id, self.user_type)
            left = await repo.unused_recovery_codes(s, admin_id, self.user_type)
        return TfaStatus(record is not None, record is not None and record.active, left)

    async def remove_own(self, owner_id: int) -> bool:
        """A customer removes their own factor (the caller proved a current code or recovery code
        first, through the sign-in budget). Admins never remove their own: `reset` is another's."""
        if self.user_type == UserType.ADMIN:
            raise ValueError("an admin's second factor is reset by another admin (delegation rule)")
        async with self.db.transaction() as s:
            had = await repo.delete_all(s, owner_id, self.user_type)
        await self.audit.record(
            audit.TFA_RESET,
            actor_type=int(self.user_type),
            actor_id=owner_id,
            details={"target_type": int(self.user_type), "target_id": owner_id},
        )
        return had

    async def reset(self, acting: Principal, admin_id: int) -> bool:
        """Forget the secret, the recovery codes and the passkeys (the admin enrolls again) and revoke
        the admin's tokens: a reset follows a lost or stolen device. True if there was a secret. Never one's
        own (a stolen session must not strip its owner's factor), and only of an admin whose
        grant is within the actor's (delegation rule)."""
        await self.accounts.require_manages(acting, admin_id, what="second factor reset", own=delegation.OWN_FACTOR)
        async with self.db.transaction() as s:
            had = await repo.delete_all(s, admin_id)
            # The admin's passkeys too: a reset follows a lost device, whichever factor it held.
            passkeys = await passkeys_repo.remove_all(s, UserType.ADMIN, admin_id)
        await self.audit.record(
            audit.TFA_RESET, details={"target_type": int(UserType.ADMIN), "target_id": admin_id, "passkeys": passkeys}
        )
        await self.revoker.revoke_for(UserType.ADMIN, admin_id)
        return had
