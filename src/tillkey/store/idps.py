"""Repository for external identity providers, the identities linked from them and the
authorization requests in flight (issue 14). Returns dataclasses; secrets stay encrypted here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey.errors import Conflict
from tillkey.principal import UserType
from tillkey.store import saml as saml_repo
from tillkey.store.models import (
    AdminRow,
    CustomerRow,
    DirectoryDeactivationRow,
    DirectorySyncRow,
    ExternalIdentityRow,
    IdentityProviderRow,
    IdpFlowRow,
)


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
    # Options added after migration 0014, kept in the role_map column's JSON (see _options).
    userinfo: bool = False  # merge the userinfo endpoint's claims into the ID token's
    preset: str | None = None  # google, entra, apple, github: how the endpoints were filled
    settings: dict[str, str] = field(default_factory=dict)  # a preset's own (Apple: team_id, key_id)


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


def _role_map_text(p: Provider) -> str:
    """The role_map column: the map as ordered pairs (the operator's order decides between groups;
    a JSON object loses it to sort_keys) and the provider's options, so options need no migration.
    Rows written before read as a plain {"group": "role"} object (its values are all strings, so
    never a list under "map")."""
    options = {"userinfo": p.userinfo, "preset": p.preset, "settings": p.settings}
    return json.dumps({"map": [[g, r] for g, r in p.role_map.items()], "options": options})


def _options(text: str) -> tuple[dict[str, str], dict[str, Any]]:
    doc = json.loads(text)
    if isinstance(doc.get("map"), list):
        return {str(g): str(r) for g, r in doc["map"]}, dict(doc.get("options") or {})
    return dict(doc), {}


def _provider(r: IdentityProviderRow) -> Provider:
    role_map, options = _options(r.role_map)
    return Provider(
        r.id,
        r.name,
        r.display_name,
        r.protocol,
        r.issuer,
        r.client_id,
        r.client_secret_enc,
        r.actor,
        r.scope,
        r.redirect_uri,
        r.groups_claim,
        role_map,
        r.default_role,
        r.provisioning,
        tuple(json.loads(r.allowed_domains)),
        r.trust_email_domains,
        r.mfa_from_amr,
        r.enabled,
        r.created_ms,
        bool(options.get("userinfo")),
        options.get("preset"),
        dict(options.get("settings") or {}),
    )


def _columns(p: Provider) -> dict[str, Any]:
    return {
        "display_name": p.display_name,
        "protocol": p.protocol,
        "issuer": p.issuer,
        "client_id": p.client_id,
        "client_secret_enc": p.client_secret_enc,
        "actor": p.actor,
        "scope": p.scope,
        "redirect_uri": p.redirect_uri,
        "groups_claim": p.groups_claim,
        "role_map": _role_map_text(p),
        "default_role": p.default_role,
        "provisioning": p.provisioning,
        "allowed_domains": json.dumps(list(p.allowed_domains)),
        "trust_email_domains": p.trust_email_domains,
        "mfa_from_amr": p.mfa_from_amr,
        "enabled": p.enabled,
    }


def _linked(r: ExternalIdentityRow) -> Linked:
    return Linked(
        r.id,
        r.provider_id,
        r.subject,
        r.user_type,
        r.user_id,
        r.email,
        r.auth_identity_id,
        r.created_ms,
        r.last_login_ms,
    )


# --- providers ------------------------------------------------------------------------------------


async def add(s: AsyncSession, provider: Provider) -> Provider:
    row = IdentityProviderRow(name=provider.name, created_ms=provider.created_ms, **_columns(provider))
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


async def save(s: AsyncSession, provider: Provider) -> None:
    """Every setting of an existing provider (by id; its name and creation time stay)."""
    await s.execute(
        update(IdentityProviderRow).where(IdentityProviderRow.id == provider.id).values(**_columns(provider))
    )


async def linked_accounts(s: AsyncSession, provider_id: int, user_type: int) -> list[int]:
    """The accounts of this type with an identity linked from the provider."""
    rows = await s.scalars(
        select(ExternalIdentityRow.user_id).where(
            ExternalIdentityRow.provider_id == provider_id,
            ExternalIdentityRow.user_type == user_type,
            ExternalIdentityRow.user_id.is_not(None),
        )
    )
    return sorted({int(u) for u in rows if u is not None})


async def set_enabled(s: AsyncSession, name: str, enabled: bool) -> bool:
    res = await s.execute(update(IdentityProviderRow).where(IdentityProviderRow.name == name).values(enabled=enabled))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def remove(s: AsyncSession, provider_id: int) -> None:
    # Children first: SQLite enforces ON DELETE CASCADE only with its foreign-key pragma on.
    await s.execute(delete(IdpFlowRow).where(IdpFlowRow.provider_id == provider_id))
    await saml_repo.remove(s, provider_id)
    await s.execute(delete(DirectorySyncRow).where(DirectorySyncRow.provider_id == provider_id))
    await s.execute(delete(DirectoryDeactivationRow).where(DirectoryDeactivationRow.provider_id == provider_id))
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


async def identities_from(s: AsyncSession, provider_id: int, user_type: int) -> list[Linked]:
    """Every identity linked from the provider for this actor (a directory sync compares them)."""
    rows = await s.scalars(
        select(ExternalIdentityRow).where(
            ExternalIdentityRow.provider_id == provider_id, ExternalIdentityRow.user_type == user_type
        )
    )
    return [_linked(r) for r in rows]


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
    s: AsyncSession,
    *,
    provider_id: int,
    subject: str,
    user_type: int,
    user_id: int | None,
    email: str | None,
    auth_identity_id: int | None,
    now_ms: int,
) -> Linked:
    row = ExternalIdentityRow(
        provider_id=provider_id,
        subject=subject,
        user_type=user_type,
        user_id=user_id,
        email=email,
        auth_identity_id=auth_identity_id,
        created_ms=now_ms,
        last_login_ms=None,
    )
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
            state_digest=state_digest,
            provider_id=flow.provider_id,
            nonce=flow.nonce,
            verifier_enc=flow.verifier_enc,
            context=json.dumps(flow.context),
            expires_ms=flow.expires_ms,
        )
    )


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
