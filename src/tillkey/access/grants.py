"""Who holds which resources, in memory: admin id -> expanded grants of their role, integration
id -> expanded grant of that integration (Magento gives each integration a role of its own), the
grant of a secret API key (its own resources, never more than its creating admin holds now), and
the live OAuth 2 clients with the scopes they may hold (a deleted client's tokens stop here)."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from tillkey.access.tree import ResourceTree
from tillkey.principal import GUEST, SECOND_FACTOR_PENDING, Principal, UserType


class Claims(Protocol):
    """What a grant lookup reads of verified token claims (tokens/contracts.py TokenClaims has it):
    the access layer names only these fields, so it needs nothing from the token layer above it."""

    @property
    def user_type(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def jti(self) -> str: ...
    @property
    def issued_at(self) -> int: ...
    @property
    def expires_at(self) -> int | None: ...
    @property
    def auth_methods(self) -> tuple[str, ...]: ...
    @property
    def scope(self) -> tuple[str, ...] | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def auth_time(self) -> int | None: ...
    @property
    def surface(self) -> str | None: ...


class GrantsState:
    def __init__(self, tree: ResourceTree) -> None:
        self.tree = tree
        self._admins: dict[int, tuple[frozenset[str], bool]] = {}
        self._integrations: dict[int, tuple[frozenset[str], bool]] = {}
        # client_id -> (client row id, scopes the client may hold now)
        self._clients: dict[str, tuple[int, frozenset[str]]] = {}
        # Bumped on every reload so cached Principals built from older grants are rebuilt.
        self.version = 0

    def _expand_all(self, grants: dict[int, tuple[str, ...]]) -> dict[int, tuple[frozenset[str], bool]]:
        expanded: dict[tuple[str, ...], tuple[frozenset[str], bool]] = {}
        out = {}
        for holder, granted in grants.items():
            key = tuple(sorted(granted))
            if key not in expanded:
                expanded[key] = self.tree.expand(key)
            out[holder] = expanded[key]
        return out

    def load_admins(self, grants: dict[int, tuple[str, ...]]) -> None:
        self._admins = self._expand_all(grants)
        self.version += 1

    def admin(self, admin_id: int, auth_methods: tuple[str, ...] = ()) -> Principal:
        """An admin's Principal as their role grants it now (the console's caller)."""
        resources, everything = self._admins.get(admin_id, (frozenset(), False))
        return Principal(
            UserType.ADMIN,
            admin_id,
            resources=resources,
            all_resources=everything,
            auth_methods=auth_methods,
            credential="console",
        )

    def admin_active(self, admin_id: int) -> bool:
        """Active with a role that grants something: what a secret key's creator must stay."""
        return admin_id in self._admins

    def api_key_principal(self, key_id: int, created_by: int, granted: tuple[str, ...]) -> Principal | None:
        """A secret key's caller: the key's resources narrowed to its creator's current grant, so a
        key can never do more than the admin who made it, and demoting that admin narrows the key.
        None when the creator is deactivated, deleted or role-less: the key stops with them."""
        creator = self._admins.get(created_by)
        if creator is None:
            return None
        creator_res, creator_all = creator
        key_res, key_all = self.tree.expand(granted)
        if key_all and creator_all:
            resources, everything = creator_res | key_res, True
        elif key_all:
            resources, everything = creator_res, False
        elif creator_all:
            resources, everything = key_res, False
        else:
            resources, everything = key_res & creator_res, False
        return Principal(UserType.API_KEY, key_id, resources=resources, all_resources=everything, credential="api_key")

    def load_integrations(self, grants: dict[int, tuple[str, ...]]) -> None:
        """Grants of the integrations that may act (active ones); others get none."""
        self._integrations = self._expand_all(grants)
        self.version += 1

    def integration(self, integration_id: int, credential: str) -> Principal:
        """An integration's Principal (Magento: user type 1, id = integration id)."""
        resources, everything = self._integrations.get(integration_id, (frozenset(), False))
        return Principal(
            UserType.INTEGRATION,
            integration_id,
            resources=resources,
            all_resources=everything,
            credential=credential,
        )

    def load_clients(self, clients: dict[str, tuple[int, frozenset[str]]]) -> None:
        self._clients = dict(clients)
        self.version += 1

    def client_active(self, client_id: str) -> bool:
        return client_id in self._clients

    def export_clients(self) -> dict[str, dict[str, object]]:
        """Live OAuth 2 clients, for library guards (GET /tillkey/v1/auth-state)."""
        return {cid: {"id": row, "scopes": sorted(scopes)} for cid, (row, scopes) in self._clients.items()}

    def load_exported_clients(self, exported: dict[str, dict[str, object]]) -> None:
        clients: dict[str, tuple[int, frozenset[str]]] = {}
        for cid, entry in exported.items():
            row, scopes = entry.get("id"), entry.get("scopes")
            if isinstance(row, int) and isinstance(scopes, list):
                clients[str(cid)] = (row, frozenset(str(s) for s in scopes))
        self.load_clients(clients)

    def principal(self, claims: Claims) -> Principal:
        if claims.client_id is None:
            return self._account(claims)
        # An OAuth 2 token: only while its client exists, and never beyond the scopes the client
        # holds now, whatever the token says.
        client = self._clients.get(claims.client_id)
        if client is None:
            return GUEST
        client_row, client_scopes = client
        scopes = frozenset(claims.scope or ()) & client_scopes
        granted, everything = self.tree.expand(scopes)
        if claims.user_type == UserType.OAUTH_CLIENT:
            if claims.user_id != client_row:
                return GUEST
            return Principal(
                UserType.OAUTH_CLIENT,
                client_row,
                resources=granted,
                all_resources=everything,
                token_id=claims.jti,
                issued_at=claims.issued_at,
                expires_at=claims.expires_at,
                auth_methods=claims.auth_methods,
                auth_time=claims.auth_time,
                scopes=scopes,
                client_id=claims.client_id,
            )
        base = self._account(claims)
        if base.is_guest:
            return GUEST
        # Acting for the user: the user's resources, narrowed to the scopes granted.
        if base.all_resources and everything:
            resources, all_resources = base.resources | granted, True
        elif base.all_resources:
            resources, all_resources = granted, False
        elif everything:
            resources, all_resources = base.resources, False
        else:
            resources, all_resources = base.resources & granted, False
        return dataclasses.replace(
            base, resources=resources, all_resources=all_resources, scopes=scopes, client_id=claims.client_id
        )

    def _account(self, claims: Claims) -> Principal:
        utype = claims.user_type
        if utype == UserType.CUSTOMER:
            return Principal(
                UserType.CUSTOMER,
                claims.user_id,
                token_id=claims.jti,
                issued_at=claims.issued_at,
                expires_at=claims.expires_at,
                auth_methods=claims.auth_methods,
                auth_time=claims.auth_time,
            )
        if utype == UserType.ADMIN:
            found = self._admins.get(claims.user_id)
            if found is None:
                # Inactive, deleted or role-less admin: Magento's null role, denied everything.
                return Principal(UserType.ADMIN, claims.user_id, token_id=claims.jti)
            resources, everything = found
            return Principal(
                UserType.ADMIN,
                claims.user_id,
                resources=resources,
                all_resources=everything,
                token_id=claims.jti,
                issued_at=claims.issued_at,
                expires_at=claims.expires_at,
                auth_methods=claims.auth_methods,
                auth_time=claims.auth_time,
            )
        if utype == UserType.GUEST and claims.user_id:
            # A Medusa registration token: no account yet, only the auth identity it was issued for
            # (user_id). A guest to every access check; POST /store/customers reads the identity.
            return Principal(
                UserType.GUEST,
                claims.user_id,
                token_id=claims.jti,
                issued_at=claims.issued_at,
                expires_at=claims.expires_at,
            )
        if utype == UserType.GUEST and claims.surface == SECOND_FACTOR_PENDING:
            # A pending MFA challenge's token: a guest, told apart only in how refusals read.
            return Principal(
                UserType.GUEST,
                0,
                token_id=claims.jti,
                issued_at=claims.issued_at,
                expires_at=claims.expires_at,
                second_factor_pending=True,
            )
        return GUEST

    def export(self) -> dict[str, dict[str, object]]:
        """Expanded grants by admin id, for library guards (GET /tillkey/v1/auth-state)."""
        return {
            str(admin_id): {"all": everything, "resources": sorted(resources)}
            for admin_id, (resources, everything) in self._admins.items()
        }

    def load_expanded(self, exported: dict[str, dict[str, object]]) -> None:
        """The inverse of export(): what a guard receives from the server."""
        admins: dict[int, tuple[frozenset[str], bool]] = {}
        for admin_id, entry in exported.items():
            resources = entry.get("resources")
            names = frozenset(str(r) for r in resources) if isinstance(resources, list) else frozenset()
            admins[int(admin_id)] = (names, bool(entry.get("all")))
        self._admins = admins
        self.version += 1
