"""Repository for the SAML side of identity providers (issue 15): the IdP metadata and SP key
pair of each SAML provider, and the replay cache of consumed assertion IDs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.store.models import SamlProviderRow


@dataclass(frozen=True, slots=True)
class SamlSide:
    provider_id: int
    idp_metadata: str
    sp_cert: str
    sp_key_enc: bytes = field(repr=False)
    previous_cert: str | None
    previous_key_enc: bytes | None = field(repr=False)
    rotated_ms: int


def _side(r: SamlProviderRow) -> SamlSide:
    return SamlSide(
        r.provider_id, r.idp_metadata, r.sp_cert, r.sp_key_enc, r.previous_cert, r.previous_key_enc, r.rotated_ms
    )


async def get(s: AsyncSession, provider_id: int) -> SamlSide | None:
    row = await s.get(SamlProviderRow, provider_id)
    return _side(row) if row else None


async def put(s: AsyncSession, side: SamlSide) -> None:
    row = await s.get(SamlProviderRow, side.provider_id)
    if row is None:
        row = SamlProviderRow(provider_id=side.provider_id)
        s.add(row)
    row.idp_metadata = side.idp_metadata
    row.sp_cert = side.sp_cert
    row.sp_key_enc = side.sp_key_enc
    row.previous_cert = side.previous_cert
    row.previous_key_enc = side.previous_key_enc
    row.rotated_ms = side.rotated_ms
    await s.flush()


async def remove(s: AsyncSession, provider_id: int) -> None:
    await s.execute(delete(SamlProviderRow).where(SamlProviderRow.provider_id == provider_id))
