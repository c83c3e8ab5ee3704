"""An external sign-in from start to the account: the provider (enabled, for this actor), the
relying party's checks (oidc.py), the account (linking.py), and the audit of every refusal.
Surfaces then run the sign-in state machine with the `ExternalAssertion` first factor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tillkey import audit
from tillkey.accounts.signin import Attempt
from tillkey.federation.linking import LINK_NOT_SIGN_IN, NOT_A_LINK, Resolved
from tillkey.federation.oidc import Assertion, Refused, RelyingParty
from tillkey.principal import UserType
from tillkey.store import idps as repo
from tillkey.store.idps import Provider

if TYPE_CHECKING:
    from tillkey.accounts.signin.budget import LoginLimits
    from tillkey.contracts import Audit
    from tillkey.federation.linking import Linking
    from tillkey.federation.providers import IdentityProviders
    from tillkey.federation.saml import ServiceProvider
    from tillkey.store.db import Database


class UnknownProvider(Refused):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"no enabled provider {name[:64]!r}", f"Unable to retrieve the auth provider with id: {name[:64]}"
        )


class Federation:
    def __init__(
        self,
        *,
        db: Database,
        audit: Audit,
        limits: LoginLimits,
        rp: RelyingParty,
        providers: IdentityProviders,
        linking: Linking,
        saml: ServiceProvider | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.limits = limits
        self.rp = rp
        self.providers = providers
        self.linking = linking
        self.saml = saml

    async def provider(self, name: str, actor: str) -> Provider:
        async with self.db.session() as s:
            found = await repo.by_name(s, name[:64])
        if found is None or not found.enabled or found.actor != actor:
            raise UnknownProvider(name)
        return found

    async def enabled(self, actor: str) -> list[Provider]:
        return [p for p in await self.providers.listed() if p.enabled and p.actor == actor]

    async def start(self, provider: Provider, attempt: Attempt, context: Mapping[str, str] | None = None) -> str:
        await self.limits.ip(attempt.ip)
        try:
            if provider.protocol == "saml" and self.saml is not None:
                return await self.saml.begin(provider, context or {})
            return await self.rp.begin(provider, self.providers.client_secret(provider), context or {})
        except Refused as exc:
            await self.refused(provider.name, exc, attempt)
            raise

    async def complete(
        self, provider: Provider, params: Mapping[str, str], attempt: Attempt, *, customer: int | None = None
    ) -> tuple[Assertion, Resolved]:
        """The provider's verified assertion and the account it signs in to (or is linked to);
        every refusal audited. `customer`: the signed-in customer finishing a link flow."""
        await self.limits.ip(attempt.ip)
        try:
            if provider.protocol == "saml" and self.saml is not None:
                assertion = await self.saml.finish(provider, params)
            else:
                assertion = await self.rp.finish(provider, self.providers.client_secret(provider), params)
            return assertion, await self._resolve(provider, assertion, customer)
        except Refused as exc:
            await self.refused(provider.name, exc, attempt)
            raise

    async def _resolve(self, provider: Provider, assertion: Assertion, customer: int | None) -> Resolved:
        link = assertion.context.get("link_admin")  # the flow was started to link, by this admin
        if link is not None and provider.actor == "admin":
            return await self.linking.link_to(assertion, UserType.ADMIN, int(link))
        # A customer's link: started with its bearer token (the state holds its id) and finished
        # with the same customer's token. Neither half turns into the other: a sign-in's state
        # links nothing, and a link's state signs nobody in.
        bound = assertion.context.get("link_customer")
        if customer is None and bound is None:
            return await self.linking.resolve(assertion)
        if bound is None:
            raise Refused("the state of a sign-in flow offered to link", NOT_A_LINK)
        if customer is None:
            raise Refused("the state of a link flow offered to sign in", LINK_NOT_SIGN_IN)
        if provider.actor != "customer" or int(bound) != customer:
            raise Refused(f"link flow of customer {bound} finished by customer {customer}")
        return await self.linking.link_to(assertion, UserType.CUSTOMER, customer)

    async def refused(self, provider: str, exc: Refused, attempt: Attempt) -> None:
        await self.audit.record(
            audit.LOGIN_EXTERNAL,
            outcome=audit.FAILURE,
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            request_id=attempt.request_id,
            details={"provider": provider, "reason": (exc.detail or "")[:300]},
        )

    async def signed_in(self, assertion: Assertion, user_type: int, user_id: int, attempt: Attempt) -> None:
        await self.audit.record(
            audit.LOGIN_EXTERNAL,
            actor_type=user_type,
            actor_id=user_id,
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            request_id=attempt.request_id,
            details={"provider": assertion.provider.name, "amr": list(assertion.amr)},
        )
