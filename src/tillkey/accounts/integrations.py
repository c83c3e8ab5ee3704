"""Integrations: create (consumer key and secret, a grant of resources like a role's), activate
(manually, or by the handshake with the integration's endpoint), deactivate, revoke, delete, and
bind to a client certificate (RFC 8705: its calls and token exchange then need that certificate,
checked by credentials/binding.require_certificate).

Every change writes the change feed's "integrations" kind in its transaction, so every process's
in-memory table (oauth1/state.py) follows within the sync interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tillkey import audit
from tillkey.access import delegation
from tillkey.access.tree import ALL, ResourceTree
from tillkey.clock import Clock
from tillkey.contracts import Audit, Changes
from tillkey.credentials import mtls
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import Conflict, InvalidRequest, NotFound
from tillkey.oauth1 import handshake, rfc5849
from tillkey.principal import Principal, UserType
from tillkey.security import outbound
from tillkey.settings import Settings
from tillkey.store import integrations as repo
from tillkey.store.db import Database
from tillkey.store.integrations import Integration
from tillkey.store.unit_of_work import Work

INTEGRATION = int(UserType.INTEGRATION)


@dataclass(frozen=True, slots=True)
class Created:
    """A new integration; the consumer secret is shown here once."""

    id: int
    name: str
    consumer_key: str
    consumer_secret: str
    resources: tuple[str, ...]
    endpoint_url: str | None
    # The x5t#S256 of the client certificate it is bound to; None: unbound.
    certificate: str | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    id: int
    name: str
    consumer_key: str
    # Manual activation: the access token and secret, shown once.
    access_token: str | None = None
    access_token_secret: str | None = None
    # With an endpoint: the handshake was posted; the integration must finish it by this time.
    handshake_expires_at: int | None = None
    identity_link_url: str | None = None


def describe(i: Integration, *, has_token: bool | None = None) -> dict[str, Any]:
    """What listings show: never a secret."""
    out: dict[str, Any] = {
        "id": i.id,
        "name": i.name,
        "email": i.email,
        "status": "active" if i.is_active else "inactive",
        "consumer_key": i.consumer_key,
        "endpoint_url": i.endpoint_url,
        "identity_link_url": i.identity_link_url,
        "resources": list(i.resources),
        # RFC 8705: the x5t#S256 of the client certificate its calls must come with; None: any.
        "certificate": i.cert_x5t,
        "created_at": i.created_at.isoformat(),
    }
    if has_token is not None:
        out["has_access_token"] = has_token
    return out


def certificate_x5t(pem: str | None) -> str | None:
    """The x5t#S256 of an operator's PEM certificate (None: no binding); InvalidRequest if the text
    is not one certificate."""
    if pem is None:
        return None
    try:
        return mtls.certificate_file(pem)
    except ValueError as exc:
        raise InvalidRequest(f"The client certificate is {exc}.") from None


def _url(value: str | None, what: str, *, allow_private: bool) -> str | None:
    """A URL Tillkey will call (endpoint) or show (identity link): security/outbound.py's rules,
    so neither can aim at the server's own network."""
    if not value:
        return None
    try:
        return outbound.check_url(value, allow_private=allow_private, what=what)
    except outbound.RefusedURL as exc:
        raise InvalidRequest(str(exc)) from None


def _changed(w: Work, acting: Principal | None, integration_id: int, name: str, change: str, **details: Any) -> None:
    """An integration changed in the unit of work `w`: every process reloads it (the change feed),
    and the audit log says what changed and who did it."""
    w.changed("integrations", user_type=INTEGRATION, user_id=integration_id)
    w.audit(
        audit.INTEGRATION_CHANGED,
        **delegation.audit_actor(acting),
        details={"target_type": INTEGRATION, "target_id": integration_id, "name": name, "change": change, **details},
    )


class Integrations:
    """Built once (wiring.py); `tk.services.integrations`."""

    def __init__(
        self,
        *,
        db: Database,
        changes: Changes,
        audit: Audit,
        tree: ResourceTree,
        master: MasterSecret,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.db = db
        self.changes = changes
        self.audit = audit
        self.tree = tree
        self.master = master
        self.settings = settings
        self.clock = clock

    async def _get(self, name_or_id: str | int) -> Integration:
        async with self.db.session() as s:
            if isinstance(name_or_id, int):
                found = await repo.by_id(s, name_or_id)
            else:
                found = await repo.by_name(s, name_or_id)
        if found is None:
            raise NotFound("The integration doesn't exist.")
        return found

    async def create(
        self,
        acting: Principal,
        *,
        name: str,
        resources: Iterable[str] = (),
        all_resources: bool = False,
        email: str = "",
        endpoint_url: str | None = None,
        identity_link_url: str | None = None,
        certificate_pem: str | None = None,
    ) -> Created:
        """`certificate_pem`: bind the integration to this client certificate (PEM) at once."""
        x5t = certificate_x5t(certificate_pem)
        name = name.strip()
        if not name or len(name) > 255:
            raise InvalidRequest("The integration name must be 1 to 255 characters.")
        granted = list(resources)
        if all_resources == bool(granted):
            raise InvalidRequest("Give the integration's resources, or all resources, but not both.")
        if all_resources:
            granted = [ALL]
        unknown = self.tree.unknown(granted)
        if unknown:
            raise InvalidRequest(f"Unknown resource id(s): {', '.join(unknown)}. See `tillkey role resources`.")
        delegation.require_ids_within(acting, self.tree, granted, what="integration grant")
        key, secret = handshake.new_token(), handshake.new_token()
        private = self.settings.integration_allow_private_endpoints
        async with self.changes() as w:
            created = await repo.create(
                w.s,
                name=name,
                email=email.strip()[:255],
                consumer_key=key,
                endpoint_url=_url(endpoint_url, "endpoint URL", allow_private=private),
                # Opened by the admin's browser, never fetched by Tillkey: an intranet address is fine.
                identity_link_url=_url(identity_link_url, "identity link URL", allow_private=True),
                consumer_secret_enc=self.master.encrypt(secret.encode(), handshake.CONSUMER_CONTEXT),
                resources=granted,
                cert_x5t=x5t,
            )
            w.changed("integrations", user_type=INTEGRATION)
            w.audit(
                audit.INTEGRATION_CREATED,
                **delegation.audit_actor(acting),
                details={
                    "target_type": INTEGRATION,
                    "target_id": created.id,
                    "name": created.name,
                    "resources": list(created.resources),
                    "certificate": x5t,
                },
            )
        return Created(created.id, created.name, key, secret, created.resources, created.endpoint_url, x5t)

    async def get(self, name_or_id: str | int) -> dict[str, Any]:
        """One integration as listings show it."""
        found = await self._get(name_or_id)
        async with self.db.session() as s:
            has_token = bool(await repo.token_digests(s, found.id, repo.ACCESS))
        return describe(found, has_token=has_token)

    async def bind_certificate(
        self, name_or_id: str | int, certificate_pem: str | None, *, acting: Principal | None = None
    ) -> dict[str, Any]:
        """Bind the integration to a client certificate (PEM), or unbind it (None). Its tokens stay:
        from the change on, every process refuses (or accepts) its calls by the new binding."""
        x5t = certificate_x5t(certificate_pem)
        integration = await self._get(name_or_id)
        async with self.changes() as w:
            await repo.set_certificate(w.s, integration.id, x5t)
            _changed(
                w,
                acting,
                integration.id,
                integration.name,
                "certificate bound" if x5t else "certificate unbound",
                certificate=x5t,
                previous_certificate=integration.cert_x5t,
            )
        return await self.get(integration.id)

    async def import_existing(
        self,
        acting: Principal,
        *,
        name: str,
        email: str,
        endpoint_url: str | None,
        identity_link_url: str | None,
        consumer_key: str,
        consumer_secret: str,
        resources: Iterable[str],
        active: bool,
        access_token: handshake.TokenPair | None,
    ) -> Integration:
        """An integration moved from another shop with its own consumer key and secret and access
        token and secret, so its callers keep signing with what they have. The same rules as
        `create` (known resources, the delegation rule); the secrets are sealed as Tillkey's own."""
        name = name.strip()
        if not name or len(name) > 255:
            raise InvalidRequest("The integration name must be 1 to 255 characters.")
        granted = sorted(set(resources))
        if not granted:
            raise InvalidRequest("The integration grants no resource Tillkey knows.")
        unknown = self.tree.unknown(granted)
        if unknown:
            raise InvalidRequest(f"Unknown resource id(s): {', '.join(unknown)}.")
        delegation.require_ids_within(acting, self.tree, granted, what="integration grant")
        values = [consumer_key, consumer_secret]
        if access_token is not None:
            values += [access_token.token, access_token.secret]
        if any(len(v) != rfc5849.TOKEN_LENGTH for v in values):
            raise InvalidRequest("OAuth keys, tokens and secrets must be 32 characters.")
        private = self.settings.integration_allow_private_endpoints
        now = self.clock.now_int()
        async with self.changes() as w:
            created = await repo.create(
                w.s,
                name=name,
                email=email.strip()[:255],
                consumer_key=consumer_key,
                endpoint_url=_url(endpoint_url, "endpoint URL", allow_private=private),
                identity_link_url=_url(identity_link_url, "identity link URL", allow_private=True),
                consumer_secret_enc=self.master.encrypt(consumer_secret.encode(), handshake.CONSUMER_CONTEXT),
                resources=granted,
            )
            if access_token is not None:
                await repo.add_token(
                    w.s,
                    created.id,
                    repo.ACCESS,
                    self.master.digest(access_token.token),
                    self.master.encrypt(access_token.secret.encode(), handshake.TOKEN_CONTEXT),
                    now,
                )
            await repo.set_active(w.s, created.id, active)
            w.changed("integrations", user_type=INTEGRATION)
            w.audit(
                audit.INTEGRATION_CREATED,
                details={
                    "target_type": INTEGRATION,
                    "target_id": created.id,
                    "name": created.name,
                    "resources": list(created.resources),
                    "imported": True,
                    "activated": active,
                },
            )
        return await self._get(created.id)

    async def refresh_imported(
        self,
        acting: Principal,
        integration_id: int,
        *,
        name: str,
        email: str,
        endpoint_url: str | None,
        identity_link_url: str | None,
        consumer_secret: str,
        resources: Iterable[str],
        active: bool,
        access_token: handshake.TokenPair | None,
        keep_tokens: bool,
        dry_run: bool = False,
    ) -> list[str]:
        """An import run's `--on-conflict update` of an integration it moved before (the same
        consumer key): its name, email, URLs, status, grant and secrets as the source has them now.
        The source's access token replaces this one's tokens when it is another (reauthorized
        there; none: the tokens go), unless `keep_tokens` (Tillkey issued its own since). Answers
        what changed (nothing written when nothing did, or `dry_run`); audited with that list."""
        current = await self._get(integration_id)
        name = name.strip()
        if not name or len(name) > 255:
            raise InvalidRequest("The integration name must be 1 to 255 characters.")
        granted = tuple(sorted(set(resources)))
        if not granted:
            raise InvalidRequest("The integration grants no resource Tillkey knows.")
        unknown = self.tree.unknown(granted)
        if unknown:
            raise InvalidRequest(f"Unknown resource id(s): {', '.join(unknown)}.")
        delegation.require_ids_within(acting, self.tree, granted, what="integration grant")
        values = [consumer_secret] + ([access_token.token, access_token.secret] if access_token else [])
        if any(len(v) != rfc5849.TOKEN_LENGTH for v in values):
            raise InvalidRequest("OAuth keys, tokens and secrets must be 32 characters.")
        email = email.strip()[:255]
        endpoint = _url(endpoint_url, "endpoint URL", allow_private=self.settings.integration_allow_private_endpoints)
        link = _url(identity_link_url, "identity link URL", allow_private=True)
        async with self.db.session() as s:
            holder = await repo.by_name(s, name)
            have = await repo.token_digests(s, integration_id, repo.ACCESS)
        if holder is not None and holder.id != integration_id:
            raise Conflict(f"Another integration is named {name!r}.")
        old_secret = self.master.decrypt(current.consumer_secret_enc, handshake.CONSUMER_CONTEXT).decode()
        wanted = {self.master.digest(access_token.token)} if access_token else set()
        changed = [
            field
            for field, differs in (
                ("name", current.name != name),
                ("email", current.email != email),
                ("endpoint_url", current.endpoint_url != endpoint),
                ("identity_link_url", current.identity_link_url != link),
                ("status", current.is_active != active),
                ("resources", current.resources != granted),
                ("consumer_secret", old_secret != consumer_secret),
                ("access_token", not keep_tokens and have != wanted),
            )
            if differs
        ]
        if not changed or dry_run:
            return changed
        async with self.changes() as w:
            await repo.refresh(
                w.s,
                integration_id,
                name=name,
                email=email,
                endpoint_url=endpoint,
                identity_link_url=link,
                consumer_secret_enc=None
                if "consumer_secret" not in changed
                else self.master.encrypt(consumer_secret.encode(), handshake.CONSUMER_CONTEXT),
                resources=granted,
                active=active,
            )
            if "access_token" in changed:
                await repo.delete_tokens(w.s, integration_id)
                if access_token is not None:
                    await repo.add_token(
                        w.s,
                        integration_id,
                        repo.ACCESS,
                        self.master.digest(access_token.token),
                        self.master.encrypt(access_token.secret.encode(), handshake.TOKEN_CONTEXT),
                        w.now,
                    )
            _changed(w, acting, integration_id, name, "imported again", fields=changed, resources=list(granted))
        return changed

    async def list(self) -> list[dict[str, Any]]:
        async with self.db.session() as s:
            found = await repo.list_all(s)
            with_token = {iid for _d, iid, _e in await repo.access_tokens(s)}
        return [describe(i, has_token=i.id in with_token) for i in found]

    async def activate(self, acting: Principal, name_or_id: str | int) -> Activation:
        """Magento's Activate / Reauthorize: issues (or starts the handshake for) a token carrying
        the integration's grant, so the activator must hold all of it, whoever created it."""
        integration = await self._get(name_or_id)
        delegation.require_ids_within(acting, self.tree, integration.resources, what="integration activation")
        details = {"target_type": INTEGRATION, "target_id": integration.id, "name": integration.name}
        if integration.endpoint_url is None:
            async with self.changes() as w:
                pair = await handshake.issue_access_token(self.master, w, integration.id)
                w.audit(
                    audit.INTEGRATION_ACTIVATED,
                    **delegation.audit_actor(acting),
                    details={**details, "mode": "manual"},
                )
                w.audit(
                    audit.TOKEN_ISSUED,
                    actor_type=INTEGRATION,
                    actor_id=integration.id,
                    details={"format": "oauth1", "via": "manual activation"},
                )
            return Activation(integration.id, integration.name, integration.consumer_key, pair.token, pair.secret)
        expires = await handshake.start(self.db, self.master, self.settings, self.clock, integration)
        await self.audit.record(
            audit.INTEGRATION_ACTIVATED, **delegation.audit_actor(acting), details={**details, "mode": "endpoint"}
        )
        link = None
        if integration.identity_link_url:
            sep = "&" if "?" in integration.identity_link_url else "?"
            link = f"{integration.identity_link_url}{sep}oauth_consumer_key={integration.consumer_key}"
        return Activation(
            integration.id,
            integration.name,
            integration.consumer_key,
            handshake_expires_at=expires,
            identity_link_url=link,
        )

    async def deactivate(self, name_or_id: str | int, *, acting: Principal | None = None) -> Integration:
        """Refuse the integration's calls; its tokens stay, for a later activation to replace."""
        integration = await self._get(name_or_id)
        async with self.changes() as w:
            await repo.set_active(w.s, integration.id, False)
            _changed(w, acting, integration.id, integration.name, "deactivated")
        return await self._get(integration.id)

    async def revoke(self, name_or_id: str | int, *, acting: Principal | None = None) -> int:
        """Delete the integration's tokens (access, and any handshake in progress); answers how many."""
        integration = await self._get(name_or_id)
        async with self.changes() as w:
            count = await repo.delete_tokens(w.s, integration.id)
            w.changed("integrations", user_type=INTEGRATION, user_id=integration.id)
            w.audit(
                audit.TOKEN_REVOKED,
                **delegation.audit_actor(acting),
                details={"target_type": INTEGRATION, "target_id": integration.id, "count": count},
            )
        return count

    async def delete(self, name_or_id: str | int, *, acting: Principal | None = None) -> None:
        integration = await self._get(name_or_id)
        async with self.changes() as w:
            await repo.delete_integration(w.s, integration.id)
            w.changed("integrations", user_type=INTEGRATION, user_id=integration.id)
            w.audit(
                audit.INTEGRATION_DELETED,
                **delegation.audit_actor(acting),
                details={"target_type": INTEGRATION, "target_id": integration.id, "name": integration.name},
            )
