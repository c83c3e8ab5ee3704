"""Identity providers as data: add, list, show, disable, remove.

A provider's role map and default role hand out roles to whoever the provider vouches for, so
saving them is delegation: every role named must be within the acting credential's grant
(access/delegation.py; the CLI acts as OPERATOR). The client secret is encrypted with the master
secret and never shown again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import audit
from tillkey.access import delegation
from tillkey.accounts.service import role_grant
from tillkey.errors import InvalidRequest, NotFound
from tillkey.federation import presets
from tillkey.federation.ldap import check_settings as ldap_settings
from tillkey.principal import Principal, UserType
from tillkey.security.outbound import RefusedURL, check_url
from tillkey.store import accounts as accounts_repo
from tillkey.store import idps as repo
from tillkey.store.idps import Provider

if TYPE_CHECKING:
    from tillkey.access.tree import ResourceTree
    from tillkey.accounts.service import Accounts
    from tillkey.clock import Clock
    from tillkey.contracts import Audit
    from tillkey.crypto.secrets import MasterSecret
    from tillkey.settings import Settings
    from tillkey.store.db import Database

ACTORS = ("admin", "customer")
PROTOCOLS = ("oidc", "github", "saml", "ldap")  # github: plain OAuth 2 and its user API; saml: federation/saml.py
# ldap (federation/ldap.py): the URL as issuer, the bind DN as client id, the bind password as secret.
PROVISIONING = ("jit", "existing")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Names a provider cannot take: Medusa's own provider and the literal segments beside
# /auth/{actor}/{provider} (providers, token, session).
RESERVED = frozenset({"emailpass", "providers", "token", "session"})
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def secret_context(name: str) -> str:
    """The AEAD context of a provider's client secret: a blob copied to another provider's row
    does not decrypt there."""
    return f"idp-client-secret:{name}"


@dataclass(frozen=True, slots=True)
class NewProvider:
    """What `tillkey idp add` (or the admin API) asks for, before it is checked."""

    name: str
    issuer: str
    client_id: str
    actor: str
    client_secret: str | None = field(default=None, repr=False)
    protocol: str = "oidc"
    display_name: str = ""
    scope: str = "openid email profile"
    redirect_uri: str = ""
    groups_claim: str | None = None
    role_map: Mapping[str, str] = field(default_factory=dict)
    default_role: str | None = None
    provisioning: str = "existing"
    allowed_domains: Iterable[str] = ()
    trust_email_domains: bool = False
    mfa_from_amr: bool = False
    userinfo: bool = False
    preset: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Changes:
    """What `tillkey idp update` (or PATCH /tillkey/v1/idps/{name}) changes; None keeps the value,
    "" clears an optional text."""

    role_map: Mapping[str, str] | None = None
    default_role: str | None = None
    groups_claim: str | None = None
    userinfo: bool | None = None
    display_name: str | None = None
    settings: Mapping[str, str] | None = None  # merged into the provider's (SAML: idp_initiated)

    def applied_to(self, p: Provider) -> NewProvider:
        return NewProvider(
            name=p.name,
            issuer=p.issuer,
            client_id=p.client_id,
            actor=p.actor,
            protocol=p.protocol,
            display_name=p.display_name if self.display_name is None else self.display_name,
            scope=p.scope,
            redirect_uri=p.redirect_uri,
            groups_claim=p.groups_claim if self.groups_claim is None else self.groups_claim,
            role_map=p.role_map if self.role_map is None else self.role_map,
            default_role=p.default_role if self.default_role is None else (self.default_role or None),
            provisioning=p.provisioning,
            allowed_domains=p.allowed_domains,
            trust_email_domains=p.trust_email_domains,
            mfa_from_amr=p.mfa_from_amr,
            userinfo=p.userinfo if self.userinfo is None else self.userinfo,
            preset=p.preset,
            settings=p.settings if self.settings is None else {**p.settings, **self.settings},
        )


def decides_roles(p: Provider) -> tuple[object, ...]:
    """What decides the role a sign-in maps to (the map's order too: the first listed group wins)."""
    return (list(p.role_map.items()), p.default_role, p.groups_claim)


def provider_json(p: Provider) -> dict[str, Any]:
    """The public view of a provider: never its secret, only whether it has one."""
    return {
        "name": p.name,
        "display_name": p.display_name,
        "protocol": p.protocol,
        "issuer": p.issuer,
        "client_id": p.client_id,
        "has_client_secret": p.client_secret_enc is not None,
        "actor": p.actor,
        "scope": p.scope,
        "redirect_uri": p.redirect_uri,
        "groups_claim": p.groups_claim,
        "role_map": dict(p.role_map),
        "default_role": p.default_role,
        "provisioning": p.provisioning,
        "allowed_domains": list(p.allowed_domains),
        "trust_email_domains": p.trust_email_domains,
        "mfa_from_amr": p.mfa_from_amr,
        "userinfo": p.userinfo,
        "preset": p.preset,
        "settings": dict(p.settings),
        "enabled": p.enabled,
    }


def parse_role_map(pairs: Iterable[str]) -> dict[str, str]:
    """GROUP=ROLE pairs (the last '=' splits: group names may hold one, role names not)."""
    mapped: dict[str, str] = {}
    for pair in pairs:
        group, sep, role = pair.rpartition("=")
        if not sep or not group.strip() or not role.strip():
            raise InvalidRequest(f"A role map entry must read GROUP=ROLE, not {pair!r}.")
        mapped[group.strip()] = role.strip()
    return mapped


_LIMITS = {"display_name": 128, "client_id": 255, "scope": 512, "groups_claim": 128, "default_role": 128}


def _plain_text(new: NewProvider) -> None:
    """Bounded, printable text in every field a database stores (PostgreSQL refuses NUL)."""
    secret = new.client_secret or ""
    if new.preset == "apple":  # Apple's "secret" is its .p8 key: PEM text, lines and all
        secret = secret.replace("\r", "").replace("\n", "")
    texts = {k: getattr(new, k) or "" for k in _LIMITS} | {"client_secret": secret}
    texts |= {f"role_map {g}": f"{g}={r}" for g, r in new.role_map.items()}
    texts |= {f"{k} setting": v for k, v in new.settings.items()}
    for field_name, value in texts.items():
        limit = _LIMITS.get(field_name, 1024)
        if len(value) > limit or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise InvalidRequest(
                f"The {field_name.replace('_', ' ')} must be printable text of at most {limit} characters."
            )


class IdentityProviders:
    def __init__(
        self,
        *,
        db: Database,
        audit: Audit,
        settings: Settings,
        master: MasterSecret,
        clock: Clock,
        tree: ResourceTree,
        accounts: Accounts,
    ) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.master = master
        self.clock = clock
        self.tree = tree
        self.accounts = accounts

    async def add(
        self,
        acting: Principal,
        new: NewProvider,
        also: Callable[[AsyncSession, Provider], Awaitable[None]] | None = None,
    ) -> Provider:
        """`also`: what a protocol stores beside the provider, in the same transaction (SAML)."""
        if new.protocol == "saml" and also is None:
            raise InvalidRequest("A SAML provider is added with its metadata: tillkey idp add --protocol saml.")
        provider = await self._checked(acting, new)
        async with self.db.transaction() as s:
            added = await repo.add(s, provider)
            if also is not None:
                await also(s, added)
            await self._audit(s, added.name, "added", actor=added.actor, issuer=added.issuer)
        return added

    async def _audit(self, s: AsyncSession, name: str, change: str, **details: object) -> None:
        await self.audit.record_in(s, audit.IDP_CHANGED, details={"provider": name, "change": change, **details})

    async def _checked(self, acting: Principal, new: NewProvider, *, fill: bool = True) -> Provider:
        _plain_text(new)
        if fill:
            new = presets.filled(new)
        name = new.name.strip()
        if not NAME.match(name) or name in RESERVED:
            raise InvalidRequest(
                "A provider name is 1 to 64 lower-case letters, digits, '-' or '_' (not emailpass, providers, "
                "token or session)."
            )
        if new.protocol not in PROTOCOLS:
            raise InvalidRequest("The protocol must be oidc, saml or ldap (or github, through --preset github).")
        if new.actor not in ACTORS:
            raise InvalidRequest("The actor must be admin or customer.")
        if new.provisioning not in PROVISIONING:
            raise InvalidRequest("Provisioning must be jit or existing.")
        if new.protocol == "ldap":  # a directory Tillkey binds to; no browser redirect
            issuer, redirect = new.issuer.strip(), ""
            ldap_settings(issuer, new.settings, new.client_id.strip())
        else:
            issuer, redirect = self._endpoints(new, name)
        if new.protocol == "oidc" and "openid" not in new.scope.split():
            raise InvalidRequest('The scope must include "openid".')
        if not new.client_id.strip() or len(new.client_id) > 255:
            raise InvalidRequest("The client id must be 1 to 255 characters.")
        domains = tuple(sorted({d.strip().lower().lstrip("@") for d in new.allowed_domains if d.strip()}))
        bad = [d for d in domains if not _DOMAIN.match(d)]
        if bad:
            raise InvalidRequest(f"Not a domain name: {', '.join(bad)}.")
        if new.trust_email_domains and not domains:
            raise InvalidRequest("Trusting email domains needs the domains: give --allowed-domain.")
        role_map = dict(new.role_map)
        if new.actor == "customer" and (role_map or new.default_role):
            raise InvalidRequest("Customers have no roles: a role map or default role is for admin providers.")
        await self._require_roles_within(
            acting, [*role_map.values(), *([new.default_role] if new.default_role else [])]
        )
        secret = new.client_secret
        return Provider(
            # The issuer is kept exactly as given: OpenID discovery compares it character for character.
            0,
            name,
            new.display_name.strip() or name,
            new.protocol,
            issuer,
            new.client_id.strip(),
            self.master.encrypt(secret.encode(), secret_context(name)) if secret else None,
            new.actor,
            " ".join(new.scope.split()),
            redirect,
            (new.groups_claim or "").strip() or None,
            role_map,
            new.default_role,
            new.provisioning,
            domains,
            new.trust_email_domains,
            new.mfa_from_amr,
            True,
            int(self.clock.now() * 1000),
            new.userinfo,
            new.preset,
            dict(new.settings),
        )

    def _endpoints(self, new: NewProvider, name: str) -> tuple[str, str]:
        """(issuer, redirect URI) of a provider the browser is sent to (OpenID Connect, SAML)."""
        allow_private = self.settings.federation_allow_private_endpoints
        # A SAML issuer is the IdP's entity ID (often a URN): a name, never fetched.
        saml = new.protocol == "saml"
        try:
            issuer = (
                new.issuer.strip()
                if saml
                else check_url(new.issuer.strip(), allow_private=allow_private, what="issuer")
            )
            redirect = new.redirect_uri.strip() or self._default_redirect(name, new.actor)
            check_url(redirect, allow_private=True, what="redirect URI")  # the browser goes there, not Tillkey
        except RefusedURL as exc:
            raise InvalidRequest(str(exc).replace("INTEGRATION_ALLOW", "FEDERATION_ALLOW")) from None
        if saml and not 0 < len(issuer) <= 1024:
            raise InvalidRequest("The SAML metadata names no entity ID.")
        if not saml and not issuer.startswith("https://") and not allow_private:
            raise InvalidRequest("The issuer must be an https URL.")
        return issuer, redirect

    def _default_redirect(self, name: str, actor: str) -> str:
        base = self.settings.issuer.rstrip("/")
        if actor == "admin":
            return f"{base}/console/login/idp/{name}/callback"
        raise InvalidRequest(
            "A customer provider needs --redirect-uri: the storefront page the provider returns to, which "
            "then calls /auth/customer/{provider}/callback (as @medusajs/js-sdk's auth.callback does)."
        )

    async def _require_roles_within(self, acting: Principal, roles: Iterable[str], *, missing_ok: bool = False) -> None:
        """Every role the provider may hand out exists and is within the actor's grant (`missing_ok`:
        a role deleted since grants nothing, so it needs no check)."""
        for role in roles:
            async with self.db.session() as s:
                row = await accounts_repo.role_by_name(s, role)
            if row is None and missing_ok:
                continue
            if row is None:
                raise NotFound(f"There is no role named {role!r}.")
            delegation.require_within(acting, role_grant(self.tree, row), what="identity provider role map")

    async def listed(self) -> list[Provider]:
        async with self.db.session() as s:
            return await repo.listed(s)

    async def get(self, name: str) -> Provider:
        async with self.db.session() as s:
            found = await repo.by_name(s, name)
        if found is None:
            raise NotFound("There is no identity provider named %name.", parameters={"name": name[:64]})
        return found

    async def update(self, acting: Principal, name: str, changes: Changes) -> Provider:
        """Change a provider's settings. A change to what decides roles (the map, its order, the
        default role, the groups claim) reaches running tokens at once: every admin linked through
        the provider is signed out everywhere (tokens revoked and console sessions ended, through the
        revocation and change feed every process follows), and its next sign-in maps its groups
        anew. The provider keeps no admin's groups, so it cannot recompute their roles by itself."""
        before = await self.get(name)
        # Like assigning a role: whoever changes the map holds both what it handed out and what it will.
        await self._require_roles_within(
            acting, [*before.role_map.values(), *filter(None, [before.default_role])], missing_ok=True
        )
        checked = await self._checked(acting, changes.applied_to(before), fill=False)
        after = replace(
            checked,
            id=before.id,
            client_secret_enc=before.client_secret_enc,
            enabled=before.enabled,
            created_ms=before.created_ms,
        )
        roles_changed = decides_roles(after) != decides_roles(before)
        async with self.db.transaction() as s:
            await repo.save(s, after)
            admins = await repo.linked_accounts(s, before.id, int(UserType.ADMIN)) if roles_changed else []
            await self._audit(s, name, "updated", roles_changed=roles_changed, signed_out_admins=len(admins))
        for admin_id in admins:
            await self.accounts.sign_out_everywhere(
                UserType.ADMIN, admin_id, reason=f"identity provider {name} role map changed"
            )
        return after

    async def set_enabled(self, name: str, enabled: bool) -> Provider:
        await self.get(name)
        async with self.db.transaction() as s:
            await repo.set_enabled(s, name, enabled)
            await self._audit(s, name, "enabled" if enabled else "disabled")
        return replace(await self.get(name), enabled=enabled)

    async def remove(self, name: str) -> int:
        """Remove a provider and the identities linked from it (their accounts stay); the count."""
        found = await self.get(name)
        async with self.db.transaction() as s:
            linked = await repo.count_for(s, found.id)
            await repo.remove(s, found.id)
            await self._audit(s, name, "removed", linked_identities=linked)
        return linked

    def client_secret(self, provider: Provider) -> str | None:
        """What the provider's token endpoint takes as the client secret: the stored one, or for
        Apple a JWT signed now with the stored key."""
        if provider.client_secret_enc is None:
            return None
        stored = self.master.decrypt(provider.client_secret_enc, secret_context(provider.name)).decode()
        if provider.preset == "apple":
            return presets.apple_client_secret(provider.client_id, provider.settings, stored, self.clock.now_int())
        return stored
