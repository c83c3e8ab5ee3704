"""Customers signing in with an external provider over Medusa's wire (shared/specs/medusa.md §1):
`POST /auth/customer/{provider}` answers `{"location"}`, the storefront's callback page calls
`/auth/customer/{provider}/callback?code&state`, answered `{"token"}`. A customer not registered
yet gets Medusa's actorless token (accounts/medusa_auth.py), and POST /store/customers creates the
customer from the provider's verified email."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from tillkey.accounts.signin import Attempt, ExternalAssertion, SecondFactorDue, SignedIn, Subject
from tillkey.accounts.signin.factors import Account
from tillkey.errors import Conflict, Unauthenticated
from tillkey.federation.linking import LinkedElsewhere
from tillkey.federation.oidc import Assertion, Refused
from tillkey.principal import Principal, UserType
from tillkey.store import identities as auth_identities
from tillkey.store import idps as repo
from tillkey.store.identities import Identity
from tillkey.store.idps import Linked, Provider

if TYPE_CHECKING:
    from tillkey.accounts.medusa_auth import MedusaAuth
    from tillkey.accounts.signin.machine import SignIn
    from tillkey.clock import Clock
    from tillkey.federation.linking import Linking
    from tillkey.federation.service import Federation
    from tillkey.store.db import Database

ACTOR = "customer"
T = TypeVar("T")
SECOND_FACTOR = (
    "Your account has two-step verification on: sign in with your password and code instead, or with an "
    "identity provider this shop trusts to check a second factor."
)


class CustomerFederation:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        federation: Federation,
        linking: Linking,
        medusa: MedusaAuth,
        sign_in: SignIn,
    ) -> None:
        self.db = db
        self.clock = clock
        self.federation = federation
        self.linking = linking
        self.medusa = medusa
        self.sign_in = sign_in

    async def location(self, name: str, attempt: Attempt) -> str:
        provider = await self.federation.provider(name, ACTOR)
        return await self.federation.start(provider, attempt)

    async def link_location(self, name: str, caller: Principal, attempt: Attempt) -> str:
        """Where to send the browser to link a provider to the signed-in customer `caller` (its
        bearer token: it signed in with its password and second factor, or a linked provider).
        The flow's state, kept server-side, carries the customer's id."""
        if caller.user_type != UserType.CUSTOMER:  # an actorless (registration) token has no customer yet
            raise Unauthenticated("Sign in to your account to link an identity provider.")
        provider = await self.federation.provider(name, ACTOR)
        return await self.federation.start(provider, attempt, {"link_customer": str(caller.user_id)})

    async def link(
        self, name: str, params: Mapping[str, str], caller: Principal, attempt: Attempt
    ) -> list[tuple[Linked, Provider]]:
        """The provider's callback of a link flow, relayed with the same customer's bearer token:
        the (provider, subject) is linked to that customer (audited `identity.linked`); answers
        the customer's linked identities. A subject linked to another account is a 409."""
        if caller.user_type != UserType.CUSTOMER:  # an actorless (registration) token has no customer yet
            raise Unauthenticated("Sign in to your account to link an identity provider.")
        provider = await self.federation.provider(name, ACTOR)
        try:
            await self.federation.complete(provider, params, attempt, customer=caller.user_id)
        except LinkedElsewhere as exc:  # audited as a refusal by complete(); a conflict, not bad credentials
            raise Conflict(exc.message) from None
        return await self.linking.identities(UserType.CUSTOMER, caller.user_id)

    async def callback(self, name: str, params: Mapping[str, str], attempt: Attempt) -> str:
        provider = await self.federation.provider(name, ACTOR)
        assertion, resolved = await self.federation.complete(provider, params, attempt)
        amr = ("fed", *(("mfa",) if provider.mfa_from_amr and assertion.asserts_mfa else ()))
        if resolved.account is None:
            assert resolved.pending is not None
            # Not a customer yet: the actorless token POST /store/customers needs (as registration).
            await self.federation.signed_in(assertion, int(UserType.GUEST), resolved.pending.id, attempt)
            return await self.medusa.token(ACTOR, resolved.pending, UserType.CUSTOMER, None, amr, provider=name)
        customer = resolved.account
        identity = await self._auth_identity(
            assertion, resolved.identity.id, resolved.identity.auth_identity_id, customer.id
        )

        async def issue(who: SignedIn) -> str:
            return await self.medusa.token(ACTOR, identity, who.user_type, who.user_id, who.amr, provider=name)

        return await self._sign_in(assertion, customer, attempt, issue)

    async def magento(
        self, name: str, params: Mapping[str, str], attempt: Attempt, issue: Callable[[SignedIn], Awaitable[T]]
    ) -> T:
        """The same flow for a Magento-style storefront, ending in `issue` (a Magento customer token
        and the refresh cookie). Magento has no actorless registration step, so a first sign-in
        that may provision (`--provision jit`, a verified email) creates the customer at once, the
        way POST /store/customers does with the Medusa registration token."""
        provider = await self.federation.provider(name, ACTOR)
        assertion, resolved = await self.federation.complete(provider, params, attempt)
        customer = resolved.account
        if customer is None:
            assert resolved.pending is not None
            registration = Principal(UserType.GUEST, resolved.pending.id, issued_at=self.clock.now_int())
            first, _, last = assertion.name.partition(" ")
            customer = await self.medusa.create_customer(registration, {"first_name": first, "last_name": last})
        return await self._sign_in(assertion, customer, attempt, issue)

    async def _sign_in(
        self, assertion: Assertion, customer: Account, attempt: Attempt, issue: Callable[[SignedIn], Awaitable[T]]
    ) -> T:
        """The provider's assertion as the first factor of the one sign-in state machine."""
        name = assertion.provider.name
        trusted_mfa = assertion.provider.mfa_from_amr and assertion.asserts_mfa
        try:
            outcome = await self.sign_in.begin(
                Subject(UserType.CUSTOMER, customer.email),
                ExternalAssertion(UserType.CUSTOMER, customer.id, trusted_mfa, assertion.amr),
                attempt,
                issue,
            )
        except Unauthenticated as exc:
            await self.federation.refused(name, Refused(exc.detail or "sign-in refused"), attempt)
            raise
        if isinstance(outcome, SecondFactorDue):
            # The customer set up a second factor and this provider is not trusted to check one:
            # a redirect flow has no step to ask for the code (and a 500 would say nothing).
            refusal = Refused("second factor due: the provider asserted none it is trusted for", SECOND_FACTOR)
            await self.federation.refused(name, refusal, attempt)
            raise refusal
        await self.federation.signed_in(assertion, int(UserType.CUSTOMER), customer.id, attempt)
        return outcome.credential

    async def _auth_identity(
        self, assertion: Assertion, linked_id: int, auth_id: int | None, customer_id: int
    ) -> Identity:
        """The Medusa auth identity behind the token's auth_identity_id: the registration's, or one
        made for an identity linked another way (keyed by the link, never by the email)."""
        if auth_id is not None:
            async with self.db.session() as s:
                found = await auth_identities.by_id(s, auth_id)
            if found is not None:
                return found
        now_ms = int(self.clock.now() * 1000)
        async with self.db.transaction() as s:
            made = await auth_identities.create(
                s,
                provider=assertion.provider.name,
                actor_type=ACTOR,
                entity_id=f"external:{linked_id}",
                password_hash=None,
                user_type=int(UserType.CUSTOMER),
                user_id=customer_id,
                now_ms=now_ms,
            )
            await repo.set_auth_identity(s, linked_id, made.id)
        return made
