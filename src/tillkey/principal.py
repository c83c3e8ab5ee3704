"""Who is calling: the Principal every authenticator produces and every access check reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class UserType(IntEnum):
    """Magento's user type ids (UserContextInterface), so `utypid` claims interoperate."""

    INTEGRATION = 1
    ADMIN = 2
    CUSTOMER = 3
    GUEST = 4
    # Tillkey's addition, never in a token's utypid: a Medusa-style secret API key.
    API_KEY = 5
    # Tillkey's addition: an OAuth 2 client acting for itself (client credentials grant). Its
    # tokens carry utypid 6, a number Magento never uses, so they are never taken for integrations.
    OAUTH_CLIENT = 6


# The `tk_surface` of a token that only proves a first factor (accounts/medusa_mfa.py): read from
# the verified claims, so telling such a caller apart costs no lookup.
SECOND_FACTOR_PENDING = "medusa_mfa_pending"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or guest) caller. Immutable; guests are a Principal too."""

    user_type: UserType
    # Guests have 0, except the holder of a Medusa registration token (an auth identity with no
    # account yet): its identity id. Secret API keys: the key's id.
    user_id: int
    # Expanded resource ids this caller holds (tree closure already applied), or ALL.
    resources: frozenset[str] = frozenset()
    all_resources: bool = False
    token_id: str | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    auth_methods: tuple[str, ...] = field(default=())
    # When the person behind the token signed in (unchanged by refresh): step-up's max_age
    # (access/stepup.py) reads it. None: not recorded (machines, older tokens).
    auth_time: int | None = None
    # Which credential kind produced this caller (for the audit log; access checks ignore it).
    credential: str = "bearer"
    # OAuth 2 tokens: the scopes granted (None: not an OAuth token, no scope limit) and the client
    # the token was issued to. Resources are already narrowed to the scopes; `scopes` also limits
    # the special resources (self, admin_self), which no tree grant covers.
    scopes: frozenset[str] | None = None
    client_id: str | None = None
    # A sign-in whose first factor passed and whose second is still due (a Medusa MFA challenge's
    # token, marked so by its issuer: `tk_surface` SECOND_FACTOR_PENDING). A guest to every access
    # check; only how a refusal reads differs (Medusa: "MFA verification is required ...").
    second_factor_pending: bool = False

    @property
    def is_guest(self) -> bool:
        return self.user_type == UserType.GUEST


GUEST = Principal(user_type=UserType.GUEST, user_id=0)
