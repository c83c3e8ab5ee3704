"""Repository for external identity providers, the identities linked from them and the
authorization requests in flight (issue 14). Returns dataclasses; secrets stay encrypted here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.principal import UserType
from tillkey.store.models import AdminRow, CustomerRow, ExternalIdentityRow, IdentityProviderRow, IdpFlowRow


@dataclass(frozen=True, slots=True)
class Provider:
    id: int
    name: str
    display_name: str
    protocol: str
    issuer: str
    client_id: str
    client_secret_enc: bytes | None = field(repr=False)
    actor: str
    scope: str
    redirect_uri: str
    groups_claim: str | None
    role_map: dict[str, str]
    default_role: str | None
    provisioning: str
    allowed_domains: tuple[str, ...]
    trust_email_domains: bool
    mfa_from_amr: bool
    enabled: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class Linked:
    id: int
    provider_id: int
    subject: str
    user_type: int
    user_id: int | None
    email: str | None
    auth_identity_id: int | None
    created_ms: int
    last_login_ms: int | None


@dataclass(frozen=True, slots=True)
class Flow:
    provider_id: int
    nonce: str
    verifier_enc: bytes = field(repr=False)
    context: dict[str, str]
    expires_ms: int


def _provider(r: IdentityProviderRow) -> Provider:
    return Provider(
        r.id, r.name, r.display_name, r.protocol, r.issuer, r.client_id, r.client_secret_enc, r.actor, r.scope,
        r.redirect_uri, r.groups_claim, json.loads(r.role_map), r.default_role, r.provisioning,
        tuple(json.loads(r.allowed_domains)), r.trust_email_domains, r.mfa_from_amr, r.enabled, r.created_ms,
    )  # fmt: skip


def _linked(r: ExternalIdentityRow) -> Linked:
    return Linked(
        r.id, r.provider_id, r.subject, r.user_type, r.user_id, r.email, r.auth_identity_id, r.created_ms,
        r.last_login_ms,
    )  # fmt: skip


# --- providers ------------------------------------------------------------------------------------


async def add(s: AsyncSession, provider: Provider) -> Provider:
    row = IdentityProviderRow(
        name=provider.name, display_name=provider.display_name, protocol=provider.protocol,
        issuer=provider.issuer, client_id=provider.client_id, client_secret_enc=provider.client_secret_enc,
        actor=provider.actor, scope=provider.scope, redirect_uri=provider.redirect_uri,
        groups_claim=provider.groups_claim, role_map=json.dumps(provider.role_map, sort_keys=True),
        default_role=provider.default_role, provisioning=provider.provisioning,
        allowed_domains=json.dumps(list(provider.allowed_domains)), trust_email_domains=provider.trust_email_domains,
        mfa_from_amr=provider.mfa_from_amr, enabled=provider.enabled, created_ms=provider.created_ms,
    )  # fmt: skip
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict("An identity provider named %name already exists.", parameters={"name": provider.name}) from exc
    return _provider(row)


async def by_name(s: AsyncSession, name: str) -> Provider | None:
    row = await s.scalar(select(IdentityProviderRow).where(IdentityProviderRow.name == name))
    return _provider(row) if row else None


async def by_id(s: AsyncSession, provider_id: int) -> Provider | None:
    row = await s.get(IdentityProviderRow, provider_id)
    return _provider(row) if row else None


async def listed(s: AsyncSession) -> list[Provider]:
    rows = await s.scalars(select(IdentityProviderRow).order_by(IdentityProviderRow.name))
    return [_provider(r) for r in rows]


async def set_enabled(s: AsyncSession, name: str, enabled: bool) -> bool:
    res = await s.execute(update(IdentityProviderRow).where(IdentityProviderRow.name == name).values(enabled=enabled))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def remove(s: AsyncSession, provider_id: int) -> None:
    # Children first: SQLite enforces ON DELETE CASCADE only with its foreign-key pragma on.
    await s.execute(delete(IdpFlowRow).where(IdpFlowRow.provider_id == provider_id))
    await s.execute(delete(ExternalIdentityRow).where(ExternalIdentityRow.provider_id == provider_id))
    await s.execute(delete(IdentityProviderRow).where(IdentityProviderRow.id == provider_id))


# --- linked identities -------------------------------------------------------------------------


async def identity(s: AsyncSession, provider_id: int, subject: str) -> Linked | None:
    row = await s.scalar(
        select(ExternalIdentityRow).where(
            ExternalIdentityRow.provider_id == provider_id, ExternalIdentityRow.subject == subject
        )
    )
    return _linked(row) if row else None


async def identities_of(s: AsyncSession, user_type: int, user_id: int) -> list[Linked]:
    rows = await s.scalars(
        select(ExternalIdentityRow)
        .where(ExternalIdentityRow.user_type == user_type, ExternalIdentityRow.user_id == user_id)
        .order_by(ExternalIdentityRow.id)
    )
    return [_linked(r) for r in rows]


async def lock_account(s: AsyncSession, user_type: int, user_id: int) -> None:
    """Serialise changes to one account's identities (PostgreSQL row lock; SQLite has one writer),
    so two removals at once cannot both see the other identity still there."""
    row = AdminRow if user_type == int(UserType.ADMIN) else CustomerRow
    await s.get(row, user_id, with_for_update=True)


async def unlink(s: AsyncSession, identity_id: int) -> None:
    await s.execute(delete(ExternalIdentityRow).where(ExternalIdentityRow.id == identity_id))


async def count_for(s: AsyncSession, provider_id: int) -> int:
    rows = await s.scalars(select(ExternalIdentityRow.id).where(ExternalIdentityRow.provider_id == provider_id))
    return len(list(rows))


async def link(
    s: AsyncSession, *, provider_id: int, subject: str, user_type: int, user_id: int | None, email: str | None,
    auth_identity_id: int | None, now_ms: int,
) -> Linked:  # fmt: skip
    row = ExternalIdentityRow(
        provider_id=provider_id, subject=subject, user_type=user_type, user_id=user_id, email=email,
        auth_identity_id=auth_identity_id, created_ms=now_ms, last_login_ms=None,
    )  # fmt: skip
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict("This external identity is linked already.") from exc
    return _linked(row)


async def signed_in(s: AsyncSession, identity_id: int, email: str | None, now_ms: int) -> None:
    await s.execute(
        update(ExternalIdentityRow)
        .where(ExternalIdentityRow.id == identity_id)
        .values(last_login_ms=now_ms, email=email)
    )


async def claim_registration(s: AsyncSession, auth_identity_id: int, user_id: int) -> bool:
    """A customer was created from the Medusa auth identity a federated registration rides on:
    the external identity now names that customer (False: it was no federated registration)."""
    res = await s.execute(
        update(ExternalIdentityRow)
        .where(ExternalIdentityRow.auth_identity_id == auth_identity_id, ExternalIdentityRow.user_id.is_(None))
        .values(user_id=user_id)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


# --- flows in flight ------------------------------------------------------------------------------


async def start_flow(s: AsyncSession, state_digest: str, flow: Flow, now_ms: int) -> None:
    await s.execute(delete(IdpFlowRow).where(IdpFlowRow.expires_ms <= now_ms))
    s.add(
        IdpFlowRow(
            state_digest=state_digest, provider_id=flow.provider_id, nonce=flow.nonce,
            verifier_enc=flow.verifier_enc, context=json.dumps(flow.context), expires_ms=flow.expires_ms,
        )
    )  # fmt: skip


async def spend_flow(s: AsyncSession, state_digest: str, now_ms: int) -> Flow | None:
    """The flow of a `state`, once: deleted as it is read, so a replayed callback finds nothing."""
    row = await s.get(IdpFlowRow, state_digest)
    if row is None:
        return None
    flow = Flow(row.provider_id, row.nonce, row.verifier_enc, json.loads(row.context), row.expires_ms)
    res = await s.execute(delete(IdpFlowRow).where(IdpFlowRow.state_digest == state_digest))
    if not res.rowcount or flow.expires_ms <= now_ms:  # type: ignore[attr-defined]
        return None
    return flow


async def set_auth_identity(s: AsyncSession, identity_id: int, auth_identity_id: int) -> None:
    await s.execute(
        update(ExternalIdentityRow)
        .where(ExternalIdentityRow.id == identity_id)
        .values(auth_identity_id=auth_identity_id)
    )
