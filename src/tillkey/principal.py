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
    # Which credential kind produced this caller (for the audit log; access checks ignore it).
    credential: str = "bearer"

    @property
    def is_guest(self) -> bool:
        return self.user_type == UserType.GUEST


GUEST = Principal(user_type=UserType.GUEST, user_id=0)
