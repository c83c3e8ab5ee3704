"""An external sign-in from start to the account: the provider (enabled, for this actor), the
relying party's checks (oidc.py), the account (linking.py), and the audit of every refusal.
Surfaces then run the sign-in state machine with the `ExternalAssertion` first factor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tillkey import audit
from tillkey.accounts.signin import Attempt
from tillkey.federation.linking import Linking, Resolved
from tillkey.federation.oidc import Assertion, Refused, RelyingParty
from tillkey.federation.providers import IdentityProviders
from tillkey.principal import UserType
from tillkey.store import idps as repo
from tillkey.store.idps import Provider

if TYPE_CHECKING:
    from tillkey.runtime import Tillkey


class UnknownProvider(Refused):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"no enabled provider {name[:64]!r}", f"Unable to retrieve the auth provider with id: {name[:64]}"
        )


class Federation:
    def __init__(self, tk: Tillkey) -> None:
        self.tk = tk
        self.rp = RelyingParty(tk)
        self.providers = IdentityProviders(tk)

    async def provider(self, name: str, actor: str) -> Provider:
        async with self.tk.db.session() as s:
            found = await repo.by_name(s, name[:64])
        if found is None or not found.enabled or found.actor != actor:
            raise UnknownProvider(name)
        return found

    async def enabled(self, actor: str) -> list[Provider]:
        return [p for p in await self.providers.listed() if p.enabled and p.actor == actor]

    async def start(self, provider: Provider, attempt: Attempt, context: Mapping[str, str] | None = None) -> str:
        await self.tk.ratelimiter.hit(self.tk.login_ip_limit, "login-ip", attempt.ip)
        try:
            return await self.rp.begin(provider, self.providers.client_secret(provider), context or {})
        except Refused as exc:
            await self.refused(provider.name, exc, attempt)
            raise

    async def complete(
        self, provider: Provider, params: Mapping[str, str], attempt: Attempt
    ) -> tuple[Assertion, Resolved]:
        """The provider's verified assertion and the account it signs in to; every refusal audited."""
        await self.tk.ratelimiter.hit(self.tk.login_ip_limit, "login-ip", attempt.ip)
        try:
            assertion = await self.rp.finish(provider, self.providers.client_secret(provider), params)
            link = assertion.context.get("link_admin")  # the flow was started to link, by this admin
            if link is not None and provider.actor == "admin":
                return assertion, await Linking(self.tk).link_to(assertion, UserType.ADMIN, int(link))
            return assertion, await Linking(self.tk).resolve(assertion)
        except Refused as exc:
            await self.refused(provider.name, exc, attempt)
            raise

    async def refused(self, provider: str, exc: Refused, attempt: Attempt) -> None:
        await self.tk.audit.record(
            audit.LOGIN_EXTERNAL, outcome=audit.FAILURE, ip=attempt.ip, user_agent=attempt.user_agent,
            request_id=attempt.request_id, details={"provider": provider, "reason": (exc.detail or "")[:300]},
        )  # fmt: skip

    async def signed_in(self, assertion: Assertion, user_type: int, user_id: int, attempt: Attempt) -> None:
        await self.tk.audit.record(
            audit.LOGIN_EXTERNAL, actor_type=user_type, actor_id=user_id, ip=attempt.ip,
            user_agent=attempt.user_agent, request_id=attempt.request_id,
            details={"provider": assertion.provider.name, "amr": list(assertion.amr)},
        )  # fmt: skip
