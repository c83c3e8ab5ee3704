"""Repository for the census of stored password costs (crypto/passwords.py DummyHashes).

Grouped in the database, so a million customers cost one scan at start, not a million rows sent.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.principal import UserType
from tillkey.store.models import AdminRow, CustomerRow

# "$<salt>$<hash>" at the end of an encoded argon2 hash, at argon2-cffi's default lengths (16-byte
# salt, 32-byte hash, unpadded base64), which every hash Tillkey makes has. What precedes them is
# the cost; a hash of other lengths leaves a prefix Cost.of cannot read, and is left out.
_SALT_AND_HASH = 1 + 22 + 1 + 43


async def cost_prefixes(s: AsyncSession) -> dict[UserType, Counter[str]]:
    """Per account type: the leading "$argon2id$v=..$m=..,t=..,p=.." of the stored hashes, counted."""
    found: dict[UserType, Counter[str]] = {}
    for utype, column in ((UserType.ADMIN, AdminRow.password_hash), (UserType.CUSTOMER, CustomerRow.password_hash)):
        prefix = func.substr(column, 1, func.length(column) - _SALT_AND_HASH)
        rows = await s.execute(
            select(prefix, func.count()).where(func.length(column) > _SALT_AND_HASH).group_by(prefix)
        )
        found[utype] = Counter({str(p): int(n) for p, n in rows.all()})
    return found
