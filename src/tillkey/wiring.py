"""The composition root of the services: each is built once per process, here, from the narrow
parts it uses (contracts.py: the unit of work, the audit sink, the revoker, the hasher, the stores
of store/repositories.py; the database, the in-memory state it writes through, settings, the
clock), never from the runtime.

runtime.Tillkey assembles the process (settings -> database -> keys and in-memory auth state)
and ends with `Services(...)`; surfaces, the console and the CLI take theirs from
`tk.services` instead of building one per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

from tillkey.access.grants import GrantsState
from tillkey.access.stepup import StepUpPolicy
from tillkey.access.tree import ResourceTree
from tillkey.accounts.api_keys import ApiKeys
from tillkey.accounts.headless import Headless
from tillkey.accounts.integrations import Integrations
from tillkey.accounts.medusa_auth import MedusaAuth
from tillkey.accounts.medusa_mfa import MedusaMfa
from tillkey.accounts.medusa_verification import MedusaVerification
from tillkey.accounts.own_password import OwnPassword
from tillkey.accounts.passkeys import Passkeys
from tillkey.accounts.service import Accounts
from tillkey.accounts.sessions import Sessions
from tillkey.accounts.signin.budget import FailureBudget, LoginLimits
from tillkey.accounts.signin.factors import FactorParts
from tillkey.accounts.signin.machine import SignIn
from tillkey.accounts.totp import Totp
from tillkey.clock import Clock
from tillkey.console.sign_in_session import ConsoleSessions
from tillkey.contracts import Audit, Changes, Hasher
from tillkey.credentials.api_keys import ApiKeyState
from tillkey.credentials.binding import require_certificate
from tillkey.credentials.dpop import DPoPVerifier, ReplayCache
from tillkey.credentials.sessions import SessionState
from tillkey.crypto.secrets import MasterSecret
from tillkey.federation.customers import CustomerFederation
from tillkey.federation.directory import Directory
from tillkey.federation.directory_sync import DirectorySync
from tillkey.federation.linking import Linking
from tillkey.federation.oidc import RelyingParty
from tillkey.federation.providers import IdentityProviders
from tillkey.federation.saml import ServiceProvider
from tillkey.federation.saml_admin import SamlProviders
from tillkey.federation.service import Federation
from tillkey.oauth1.handshake import Exchange
from tillkey.oauth2.client_assertion import ClientKeys
from tillkey.oauth2.clients import Clients
from tillkey.oauth2.service import OAuth2, TokenRevoker
from tillkey.principal import UserType
from tillkey.security.flood import LoginAdmission, Pacer
from tillkey.security.ratelimit import RateLimiter
from tillkey.settings import Settings
from tillkey.store.accounts import Admin
from tillkey.store.db import Database
from tillkey.store.oauth2 import Client
from tillkey.store.repositories import ClientRows, CodeRows, KeyRows, ProfileRows, RefreshRows
from tillkey.tokens.issuer import Issuer
from tillkey.tokens.keys import Keyring
from tillkey.tokens.refresh import RefreshTokens
from tillkey.tokens.revocation import RevocationState, Validator
from tillkey.tokens.rotation import KeyRotation
from tillkey.tokens.service import Authenticator


class Services:
    """Every service of one process, built once."""

    def __init__(
        self,
        *,
        replay: ReplayCache,
        settings: Settings,
        clock: Clock,
        db: Database,
        changes: Changes,
        audit: Audit,
        master: MasterSecret,
        passwords: Hasher,
        tree: ResourceTree,
        issuer: Issuer,
        revoker: TokenRevoker,
        revocations: RevocationState,
        api_key_state: ApiKeyState,
        session_state: SessionState,
        live_client: Callable[[str], Client | None],
        grants: GrantsState,
        issued: Counter[tuple[str, str]],
        keyring: Callable[[], Keyring],
        reload_keys: Callable[[], Awaitable[None]],
        authenticator: Authenticator,
        login_limits: LoginLimits,
        pacer: Pacer,
        login_admission: LoginAdmission,
        admin_profile: Callable[[int], Admin | None],
        validator: Validator,
        ratelimiter: RateLimiter,
        step_up: StepUpPolicy,
        dpop: DPoPVerifier | None = None,
    ) -> None:
        self.keys = KeyRotation(
            settings=settings,
            clock=clock,
            master=master,
            changes=changes,
            store=KeyRows(),
            keyring=keyring,
            reload=reload_keys,
        )
        refreshes = RefreshRows(db)
        self.refresh_tokens = RefreshTokens(
            settings=settings,
            clock=clock,
            store=refreshes,
            master=master,
            audit=audit,
            revoker=revoker,
            revocations=revocations,
            grants=grants,
            issued=issued,
        )
        self.sessions = Sessions(
            state=session_state,
            changes=changes,
            db=db,
            clock=clock,
            settings=settings,
            wait_past_revocation=issuer.wait_past_revocation,
        )
        self.accounts = Accounts(
            settings=settings,
            clock=clock,
            db=db,
            changes=changes,
            audit=audit,
            passwords=passwords,
            issuer=issuer,
            revoker=revoker,
            tree=tree,
            api_keys=api_key_state,
            sessions=self.sessions,
        )
        self.api_keys = ApiKeys(state=api_key_state, changes=changes, db=db, tree=tree, master=master, clock=clock)
        # An imported Medusa key's first use writes its keyed digest (credentials/api_keys.py).
        api_key_state.upgrade = self.api_keys.upgrade_legacy
        self.integrations = Integrations(
            db=db, changes=changes, audit=audit, tree=tree, master=master, settings=settings, clock=clock
        )
        self.oauth1_exchange = Exchange(
            db=db,
            changes=changes,
            master=master,
            settings=settings,
            clock=clock,
            require_certificate=partial(require_certificate, what="integration", challenge=None),
        )
        client_rows = ClientRows(db)
        self.clients = Clients(
            store=client_rows,
            refreshes=refreshes,
            changes=changes,
            revoker=revoker,
            tree=tree,
            master=master,
            clock=clock,
            live=live_client,
            settings=settings,
            keys=ClientKeys(settings=settings, clock=clock),
            replay=replay,
        )
        self.oauth2 = OAuth2(
            settings=settings,
            clock=clock,
            master=master,
            issuer=issuer,
            authenticator=authenticator,
            revocations=revocations,
            revoker=revoker,
            audit=audit,
            clients=self.clients,
            refresh_tokens=self.refresh_tokens,
            client_store=client_rows,
            codes=CodeRows(db),
            refreshes=refreshes,
            profiles=ProfileRows(db),
            dpop=dpop,
        )
        self.headless = Headless(
            authenticator=authenticator, refresh_tokens=self.refresh_tokens, accounts=self.accounts, clock=clock
        )
        self.console_sessions = ConsoleSessions(
            sessions=self.sessions, revocations=revocations, master=master, settings=settings, clock=clock
        )
        self._totp = {
            utype: Totp(
                db=db,
                master=master,
                settings=settings,
                clock=clock,
                audit=audit,
                revoker=revoker,
                accounts=self.accounts,
                user_type=utype,
            )
            for utype in (UserType.ADMIN, UserType.CUSTOMER)
        }
        self.totp = self._totp[UserType.ADMIN]
        self.passkeys = Passkeys(db=db, master=master, settings=settings, clock=clock, audit=audit, totp=self.totp)
        # The one sign-in state machine (accounts/signin/), and what its factors check against.
        self.identity_providers = IdentityProviders(
            db=db, audit=audit, settings=settings, master=master, clock=clock, tree=tree, accounts=self.accounts
        )
        # LDAP / Active Directory (issue 15): directory accounts' passwords, and the sync.
        self.directory = Directory(db=db, clock=clock, providers=self.identity_providers)
        self.factor_parts = FactorParts(
            settings=settings,
            clock=clock,
            db=db,
            audit=audit,
            passwords=passwords,
            tree=tree,
            passkeys=self.passkeys,
            totp_for=self.totp_for,
            directory=self.directory,
        )
        self.login_budget = FailureBudget(
            limits=login_limits, pacer=pacer, admission=login_admission, db=db, settings=settings, clock=clock
        )
        self.sign_in = SignIn(budget=self.login_budget, parts=self.factor_parts)
        self.linking = Linking(
            db=db, changes=changes, audit=audit, settings=settings, clock=clock, accounts=self.accounts
        )
        self.directory_sync = DirectorySync(
            db=db,
            clock=clock,
            audit=audit,
            providers=self.identity_providers,
            accounts=self.accounts,
            linking=self.linking,
        )
        self.relying_party = RelyingParty(db=db, settings=settings, master=master, clock=clock)
        self.saml_sp = ServiceProvider(db=db, settings=settings, master=master, clock=clock, replay=replay)
        self.saml_providers = SamlProviders(
            db=db, audit=audit, settings=settings, master=master, clock=clock, providers=self.identity_providers
        )
        self.federation = Federation(
            db=db,
            audit=audit,
            limits=login_limits,
            rp=self.relying_party,
            saml=self.saml_sp,
            providers=self.identity_providers,
            linking=self.linking,
        )
        self.medusa_auth = MedusaAuth(
            settings=settings,
            clock=clock,
            db=db,
            master=master,
            audit=audit,
            passwords=passwords,
            revoker=revoker,
            limits=login_limits,
            authenticator=authenticator,
            grants=grants,
            accounts=self.accounts,
            sessions=self.sessions,
            sign_in=self.sign_in,
            admin_profile=admin_profile,
        )
        self.medusa_mfa = MedusaMfa(
            settings=settings,
            clock=clock,
            db=db,
            parts=self.factor_parts,
            auth=self.medusa_auth,
            accounts=self.accounts,
            sign_in=self.sign_in,
            authenticator=authenticator,
            validator=validator,
            counters=ratelimiter,
            step_up=step_up,
        )
        self.medusa_verification = MedusaVerification(
            settings=settings,
            clock=clock,
            db=db,
            master=master,
            audit=audit,
            limits=login_limits,
            revoker=revoker,
            auth=self.medusa_auth,
            mfa=self.medusa_mfa,
        )
        self.customer_federation = CustomerFederation(
            db=db,
            clock=clock,
            federation=self.federation,
            linking=self.linking,
            medusa=self.medusa_auth,
            sign_in=self.sign_in,
        )
        self.own_password = OwnPassword(
            db=db, passwords=passwords, audit=audit, settings=settings, budget=self.login_budget, accounts=self.accounts
        )

    def totp_for(self, user_type: UserType) -> Totp:
        """The TOTP service of admins or of customers."""
        return self._totp[user_type]
