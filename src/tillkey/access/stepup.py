"""Step-up for critical calls (RFC 9470): a route or a resource of the tree may require that the
caller signed in recently and strongly enough, beyond holding the resource.

A requirement is an authentication context class (`acr`: "1fa" one factor, "mfa" two or more), any
RFC 8176 methods (`amr`) that must all have been used, and a maximum age of the sign-in (seconds
since `auth_time`, which every token carries forward unchanged through refresh). A token that falls
short gets 401 `insufficient_user_authentication` with the `acr_values` and `max_age` to sign in
again with; the client re-authenticates (OAuth 2 authorize honours both) and retries.

Machines (integrations, secret API keys, OAuth 2 clients acting for themselves) have no person who
could sign in again, so a 401 would only make them loop: a requirement says what they get instead,
`machines = "deny"` (403, the default: a leaked machine credential cannot do what a person needs a
fresh second factor for) or `"allow"` (the resource grant alone suffices).

Requirements come from two places, combined strictest-wins: `TILLKEY_STEP_UP` (resource id → rule,
applying to the resource and its subtree; by default `Magento_Sales::cancel` needs MFA within five
minutes) and a route's own declaration (web/routing.py `Api.route(step_up=...)`). The check
runs in the access check's one place (routing.enforce), after the resource check, on in-memory
facts only: the Principal's amr and auth_time come from the token (cached for opaque tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from tillkey.access.tree import SPECIAL, ResourceTree
from tillkey.errors import Forbidden, Unauthenticated
from tillkey.principal import Principal, UserType

ONE_FACTOR: Final = "1fa"
MULTI_FACTOR: Final = "mfa"
# Ordered weakest first: a stronger class satisfies a weaker requirement.
ACR_VALUES = (ONE_FACTOR, MULTI_FACTOR)
Acr = Literal["1fa", "mfa"]
PEOPLE = frozenset({UserType.ADMIN, UserType.CUSTOMER})
MACHINE_DENIED = "This operation needs a person's recent sign-in; %kind credentials cannot perform it."
_KIND = {UserType.INTEGRATION: "integration", UserType.API_KEY: "API key", UserType.OAUTH_CLIENT: "client"}


@dataclass(frozen=True, kw_only=True)
class StepUp:
    """One requirement: `acr` class, `amr` methods all used, `max_age` seconds since sign-in (None:
    any age), and what machines get (`deny`: 403, `allow`: the grant suffices).

    A dataclass, not a pydantic model: the library guard (tillkey.guard) uses it and must stand on
    the base dependencies; settings still validate it (pydantic reads dataclasses, with this config)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    acr: Acr = MULTI_FACTOR
    amr: tuple[str, ...] = ()
    max_age: int | None = 300
    machines: Literal["allow", "deny"] = "deny"

    def __post_init__(self) -> None:
        if self.acr not in ACR_VALUES:
            raise ValueError(f"acr must be one of {', '.join(ACR_VALUES)}")
        if self.max_age is not None and (isinstance(self.max_age, bool) or self.max_age <= 0):
            raise ValueError("max_age must be a positive number of seconds, or null")
        if self.machines not in ("allow", "deny"):
            raise ValueError("machines must be allow or deny")
        object.__setattr__(self, "amr", tuple(self.amr))

    def merged(self, other: StepUp) -> StepUp:
        """The strictest of both."""
        ages = [a for a in (self.max_age, other.max_age) if a is not None]
        return StepUp(
            acr=max(self.acr, other.acr, key=ACR_VALUES.index),
            amr=tuple(dict.fromkeys((*self.amr, *other.amr))),
            max_age=min(ages) if ages else None,
            machines="deny" if "deny" in (self.machines, other.machines) else "allow",
        )

    def describe(self) -> str:
        what = "a multi-factor sign-in" if self.acr == MULTI_FACTOR else "a sign-in"
        if self.amr:
            what += f" using {', '.join(self.amr)}"
        return what + (f" within the last {self.max_age} seconds" if self.max_age is not None else "") + " is required"


DEFAULT_RULES: dict[str, StepUp] = {"Magento_Sales::cancel": StepUp()}


def acr_of(amr: Iterable[str]) -> str | None:
    """The class a sign-in reached: "mfa" for two or more distinct methods (or RFC 8176's own
    "mfa"), "1fa" for one, None for none (machines)."""
    methods = set(amr)
    if not methods:
        return None
    return MULTI_FACTOR if len(methods) >= 2 or MULTI_FACTOR in methods else ONE_FACTOR


def satisfies(principal: Principal, rule: StepUp, now: int) -> bool:
    acr = acr_of(principal.auth_methods)
    if acr is None or ACR_VALUES.index(acr) < ACR_VALUES.index(rule.acr):
        return False
    if any(m not in principal.auth_methods for m in rule.amr):
        return False
    if rule.max_age is None:
        return True
    return principal.auth_time is not None and 0 <= now - principal.auth_time <= rule.max_age


class InsufficientUserAuthentication(Unauthenticated):
    """401 (RFC 9470 §3): the token is valid but its sign-in is too old or too weak."""

    oauth_error = "insufficient_user_authentication"
    tell_client = True

    def __init__(self, rule: StepUp) -> None:
        description = rule.describe()
        challenge = 'Bearer realm="tillkey", error="insufficient_user_authentication"'
        challenge += f', error_description="{description}", acr_values="{rule.acr}"'
        if rule.max_age is not None:
            challenge += f', max_age="{rule.max_age}"'
        super().__init__(
            description + ".",
            detail=f"step-up: {description}",
            headers={"WWW-Authenticate": challenge},
        )
        self.rule = rule


class StepUpPolicy:
    """The resource-level requirements, validated against the tree once; per route, the combined
    requirement is computed on first use and cached (routes are few, resources fixed)."""

    def __init__(self, rules: Mapping[str, StepUp], tree: ResourceTree, now: Callable[[], int]) -> None:
        unknown = [r for r in tree.unknown(rules) if r not in SPECIAL]
        if unknown:
            raise ValueError(f"TILLKEY_STEP_UP: unknown resource id(s) {', '.join(unknown)}")
        # Each rule covers its resource's subtree, as a grant does.
        self._by_resource: dict[str, StepUp] = {}
        for resource, rule in rules.items():
            for covered in tree.subtree(resource) if resource in tree else {resource}:
                have = self._by_resource.get(covered)
                self._by_resource[covered] = rule if have is None else have.merged(rule)
        self._now = now
        self._cache: dict[tuple[tuple[str, ...], StepUp | None], StepUp | None] = {}

    def rule_for(self, resources: Sequence[str], declared: StepUp | None = None) -> StepUp | None:
        key = (tuple(resources), declared)
        if key in self._cache:
            return self._cache[key]
        found = declared
        for resource in resources:
            rule = self._by_resource.get(resource)
            if rule is not None:
                found = rule if found is None else found.merged(rule)
        self._cache[key] = found
        return found

    def require(self, principal: Principal, resources: Sequence[str], declared: StepUp | None = None) -> None:
        """Raise if `principal` (already allowed the resources) falls short of the requirement."""
        rule = self.rule_for(resources, declared)
        if rule is None or principal.is_guest:
            return
        if principal.user_type not in PEOPLE:
            if rule.machines == "allow":
                return
            raise Forbidden(
                MACHINE_DENIED,
                parameters={"kind": _KIND.get(principal.user_type, "machine")},
                detail="step-up: machine credential",
            )
        if not satisfies(principal, rule, self._now()):
            raise InsufficientUserAuthentication(rule)
