"""The one delegation rule: no credential ever yields more than what minted it.

Every path that creates, assigns, exchanges or renews a credential or a grant (roles, role
assignment, API keys, integrations, OAuth clients, sessions made from tokens, token refresh, any
future exchange or import) asks this module, and only this module, whether the acting caller may
hand out what is requested:

    requested grant ⊆ the acting credential's *effective* grant

The effective grant is what the access check already sees on the Principal: its own grant ∩ its
creator's current grant (secret API keys) ∩ its OAuth scope (OAuth 2 tokens), expanded over the
resource tree (access/grants.py computes it on the hot path). A caller who holds
`Magento_Backend::all` may delegate anything; everyone else only resources they hold, and never
`Magento_Backend::all` itself.

Self-service is narrower still: nobody raises their own grant or removes their own second factor,
on any surface (`require_not_self`).

The local operator (the CLI, run by whoever owns the server's files) is `OPERATOR`: it holds
everything, as root does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from tillkey.access.tree import ALL, ResourceTree
from tillkey.errors import Forbidden
from tillkey.principal import Principal, UserType

BEYOND_GRANT = "You cannot grant access you do not hold: %resources."
OWN_GRANT = "You cannot change your own access."
OWN_FACTOR = "You cannot reset your own second factor; ask another administrator."

# The CLI's caller. Not a token holder: it never reaches the hot path.
OPERATOR = Principal(UserType.ADMIN, 0, all_resources=True, credential="operator")


class AuditActor(TypedDict):
    actor_type: int | None
    actor_id: int | None


def audit_actor(acting: Principal | None) -> AuditActor:
    """An audit record's actor fields for a change this caller makes: the acting credential (an
    admin, or a secret key by its id); none for the operator's CLI or when nobody is named."""
    if acting is None or acting is OPERATOR:
        return AuditActor(actor_type=None, actor_id=None)
    return AuditActor(actor_type=int(acting.user_type), actor_id=acting.user_id)


class DelegationRefused(Forbidden):
    """403: the request would hand out more than the caller holds."""


@dataclass(frozen=True, slots=True)
class Grant:
    """An expanded grant: the resources covered, and whether it is `Magento_Backend::all`."""

    resources: frozenset[str]
    everything: bool

    @classmethod
    def of(cls, principal: Principal) -> Grant:
        return cls(principal.resources, principal.all_resources)

    @classmethod
    def expand(cls, tree: ResourceTree, resource_ids: Iterable[str]) -> Grant:
        resources, everything = tree.expand(resource_ids)
        return cls(resources, everything)

    def covers(self, other: Grant) -> bool:
        if self.everything:
            return True
        return not other.everything and other.resources <= self.resources

    def missing(self, other: Grant) -> list[str]:
        if self.covers(other):
            return []
        return ([ALL] if other.everything else []) + sorted(other.resources - self.resources)


def effective(principal: Principal) -> Grant:
    """What `principal` may pass on: its grant as the access check sees it, and nothing when it is
    a guest or a customer (customers hold only `self`, which is theirs and not delegable)."""
    if principal.user_type in (UserType.GUEST, UserType.CUSTOMER):
        return Grant(frozenset(), False)
    return Grant.of(principal)


def require_within(acting: Principal, requested: Grant, *, what: str) -> None:
    """Raise DelegationRefused unless `requested` ⊆ the acting credential's effective grant.

    `what` names the path for the server log ("api key", "role grant", …); the client only sees
    which resources it lacks."""
    have = effective(acting)
    missing = have.missing(requested)
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise DelegationRefused(
            BEYOND_GRANT,
            parameters={"resources": shown},
            detail=f"{what}: {acting.user_type.name}:{acting.user_id} lacks {len(missing)} resource(s)",
        )


def require_ids_within(acting: Principal, tree: ResourceTree, resource_ids: Iterable[str], *, what: str) -> Grant:
    """`require_within` for a list of resource ids as a request names them; returns the expanded grant."""
    requested = Grant.expand(tree, resource_ids)
    require_within(acting, requested, what=what)
    return requested


def require_not_self(
    acting: Principal,
    target_type: UserType,
    target_id: int,
    *,
    message: str = OWN_GRANT,
    acts_for: tuple[UserType, int] | None = None,
) -> None:
    """Nobody changes their own grant or resets their own second factor, whatever they hold.
    `acts_for`: the account behind the acting credential when that is not the credential itself
    (a secret API key acts for the admin who made it): that account is "self" too, so a stolen
    key cannot strip its admin's second factor either."""
    if acting is OPERATOR:
        return
    selves = {(acting.user_type, acting.user_id)} | ({acts_for} if acts_for is not None else set())
    if (target_type, target_id) in selves:
        raise DelegationRefused(message, detail=f"self-service refused for {target_type.name}:{target_id}")


def require_renewal_within(acting: Principal, renewed: Principal, *, what: str) -> None:
    """A renewal or exchange (a token refreshed, a cookie session made from a token) yields no more
    than the credential presented: its grant within the acting one's, and its OAuth scope no wider
    (an unscoped result of a scoped credential is wider than any scope), nor another client's."""
    if renewed.user_type not in (UserType.GUEST, UserType.CUSTOMER):
        # Customers and guests hold only `self` (or nothing), which a renewal keeps as it was.
        require_within(acting, Grant.of(renewed), what=what)
    if acting.scopes is not None and (renewed.scopes is None or not renewed.scopes <= acting.scopes):
        raise DelegationRefused(
            BEYOND_GRANT,
            parameters={"resources": "unscoped access"},
            detail=f"{what}: a token scoped to {sorted(acting.scopes)[:5]} cannot be renewed unscoped",
        )
    if acting.client_id is not None and renewed.client_id != acting.client_id:
        raise DelegationRefused(BEYOND_GRANT, parameters={"resources": "another client"}, detail=f"{what}: client")
