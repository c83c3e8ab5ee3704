"""Assembly of one Tillkey process: settings -> database -> keys and in-memory auth state -> services.

The in-memory state (signing keys, revocations, grants) is what the hot path reads. It is loaded
at start and kept current by polling the database's change feed every `sync_interval` seconds,
plus a full reconcile every `reconcile_interval`, so changes made by the CLI or by other processes
arrive. With Redis configured, every committed change is also announced on pub/sub
(store/broadcast.py) and the other processes poll at once: the feed stays the truth, the message
is a wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

from tillkey.access import route_table
from tillkey.access.grants import GrantsState
from tillkey.access.stepup import StepUp, StepUpPolicy
from tillkey.access.tree import SELF, ResourceTree
from tillkey.accounts.signin.budget import LoginLimits
from tillkey.audit import AuditLog
from tillkey.audit.anchor import ANCHOR_KEY_PURPOSE, AnchorFile
from tillkey.audit.chain import CHAIN_KEY_PURPOSE
from tillkey.clock import Clock
from tillkey.credentials.api_keys import ApiKeyState, SecretApiKeys
from tillkey.credentials.binding import Binding
from tillkey.credentials.dpop import DPoPVerifier, Nonces
from tillkey.credentials.freshness import CatchUp
from tillkey.credentials.oauth1 import IntegrationBearer, OAuth1Signatures
from tillkey.credentials.registry import BearerTokens, Credentials
from tillkey.credentials.sessions import SessionCookies, SessionState
from tillkey.crypto.passwords import Cost, PasswordHashing
from tillkey.crypto.secrets import MasterSecret
from tillkey.oauth1.state import AccessToken, Consumer, IntegrationState
from tillkey.security.flood import LoginAdmission, Pacer
from tillkey.security.ratelimit import RateLimiter
from tillkey.settings import Settings
from tillkey.store import accounts as accounts_repo
from tillkey.store import api_keys as api_keys_repo
from tillkey.store import auth as auth_repo
from tillkey.store import email_verifications as email_verifications_repo
from tillkey.store import identities as identities_repo
from tillkey.store import integrations as integrations_repo
from tillkey.store import oauth2 as oauth2_repo
from tillkey.store import password_census, signal
from tillkey.store import sessions as sessions_repo
from tillkey.store.broadcast import Broadcast
from tillkey.store.db import Database, upgrade_async
from tillkey.store.models import AuthChangeRow
from tillkey.store.replay import DatabaseReplayCache
from tillkey.store.repositories import RevocationRows
from tillkey.store.unit_of_work import RELOADED, UnitOfWork
from tillkey.tokens import key_material, keys
from tillkey.tokens.issuer import Issuer, OpaqueStore
from tillkey.tokens.jwt import JwtReader
from tillkey.tokens.opaque import OpaqueReader
from tillkey.tokens.revocation import RevocationState, Validator
from tillkey.tokens.revoker import Revoker
from tillkey.tokens.service import Authenticator
from tillkey.wiring import Services

log = logging.getLogger("tillkey")

# Re-read changes this recent on every poll: a row whose transaction committed late can carry a
# lower seq than one already seen (sequence values are handed out before commit).
LATE_COMMIT_WINDOW = 5


def step_up_rules(settings: Settings) -> dict[str, StepUp]:
    """TILLKEY_STEP_UP, plus, under TILLKEY_CUSTOMER_2FA=required, an MFA sign-in for a customer's
    own records (`self`): a customer who has not set up a factor can only set one up."""
    rules = dict(settings.step_up)
    if settings.customer_2fa == "required":
        need = StepUp(acr="mfa", max_age=None, machines="allow")
        rules[SELF] = rules[SELF].merged(need) if SELF in rules else need
    return rules


class Tillkey:
    """One process: settings -> database -> keys and in-memory auth state (kept current here) ->
    the services (wiring.py, `tk.services`), each built once. Surfaces receive this and nothing
    global; services receive only the parts they use."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.master = MasterSecret.load(settings.secret_key, settings.data_dir)
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.resolved_database_url)
        self.tree = ResourceTree.load()
        # Compiled once: forward-auth matches every proxied request against it (ValueError if bad).
        self.forward_routes = route_table.build(
            settings.forward_auth_routes, settings.forward_auth_routes_file, self.tree
        )
        self.grants = GrantsState(self.tree)
        # Step-up requirements by resource (ValueError if one names no resource).
        self.step_up = StepUpPolicy(step_up_rules(settings), self.tree, self.clock.now_int)
        self.revocations = RevocationState()
        self.keyring = keys.Keyring([], settings.jwt_alg)
        self.passwords = PasswordHashing(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            workers=settings.password_hash_workers,
            queue=settings.login_queue_limit,
            nice=settings.password_hash_nice,
            dummy_key=self.master.derive("argon2-dummy-cost"),
        )
        self.ratelimiter = RateLimiter(settings.redis_url, settings.redis_key_prefix)
        # Wakes the sync loop for an immediate poll (a broadcast message arrived).
        self._wake = asyncio.Event()
        self.broadcast: Broadcast | None = None
        if settings.redis_url:
            self.broadcast = Broadcast(settings.redis_url, settings.redis_key_prefix, self._wake.set)
            self.db.after_commit = self._announce
        # Embedded (SQLite): the change signal file beside the database (store/signal.py).
        self._signal_file = signal.signal_path(self.db.url)
        self._watcher: signal.Watcher | None = None
        self._signals = self._settled = 0  # changes signalled by any process / caught up with
        if self._signal_file is not None:
            self.db.after_commit = self._committed_changes
        # Parsed once: every credential endpoint checks these per client IP and per username.
        self.login_ip_limit = RateLimiter.item(settings.rate_limit_login_ip)
        self.login_username_limit = RateLimiter.item(settings.rate_limit_login_username)
        self.pacer = Pacer(seconds=settings.refusal_pause_seconds, limit=settings.login_waiting_limit)
        # Logins in flight, from their first database read to their last write (accounts/signin/budget.py).
        self.login_admission = LoginAdmission(
            working=settings.password_hash_workers + settings.login_queue_limit,
            waiting=settings.login_waiting_limit,
            wait_seconds=settings.login_wait_seconds,
        )
        # Keyed under the master secret, anchored in a file: the database alone can neither
        # recompute the chain nor cut its tail unnoticed (tillkey/audit/).
        self.audit = AuditLog(
            self.db,
            self.clock,
            settings.audit_file,
            key=self.master.derive(CHAIN_KEY_PURPOSE),
            anchors=AnchorFile(settings.resolved_audit_anchor_file, self.master.derive(ANCHOR_KEY_PURPOSE)),
            anchor_interval=settings.audit_anchor_interval,
        )
        now_int = self.clock.now_int
        self.jwt_reader = JwtReader(lambda: self.keyring, settings.issuer, self.clock.now)
        self.validator = Validator(self.revocations, self.clock.now, lambda: self.keyring)
        # Row + change feed + audit in one transaction, then applied here (store/unit_of_work.py).
        self.uow = UnitOfWork(self.db, self.audit, self, now_int)
        self.revoker = Revoker(self.uow, self.revocations, RevocationRows())
        # The one issuer of every token Tillkey signs or stores (tokens/issuer.py).
        opaque_tokens = OpaqueStore(self.db, self.master, self.audit)
        self.issuer = Issuer(
            lambda: self.keyring,
            settings.issuer,
            self.clock.now,
            store=opaque_tokens,
            revoked_before=self._revoked_before,
        )
        self.authenticator = Authenticator(
            self.jwt_reader,
            OpaqueReader(opaque_tokens),
            self.validator,
            self.grants,
            settings.token_cache_size,
        )
        self.api_keys = ApiKeyState(self.master, settings.last_used_interval)
        self.sessions = SessionState(self.master, settings.last_used_interval)
        self.integrations = IntegrationState()
        # A credential memory does not know yet: one single-flight poll of the change feed first.
        self.catch_up = CatchUp(self.poll_changes, ttl=settings.sync_interval)
        # Single-use values (DPoP proof jtis, client assertion jtis): one table every process shares.
        self.replay = DatabaseReplayCache(self.db, self.clock.now)
        self.dpop = DPoPVerifier(
            self.replay,
            self.clock.now,
            nonces=Nonces(self.master.derive("dpop-nonce"), self.clock.now) if settings.dpop_nonces else None,
            window=settings.dpop_proof_max_age,
        )
        # The one check of a sender-constrained token's presentation (credentials/binding.py).
        self.binding = Binding(self.dpop, settings.issuer, alias_url=settings.mtls_base_url)
        # Credential kinds tried in order on every protected request (credentials/registry.py).
        self.credentials = Credentials(
            [
                OAuth1Signatures(
                    self.integrations,
                    self.grants,
                    self.master,
                    self.db,
                    self.audit,
                    self.clock,
                    allow_sha1=settings.oauth1_allow_hmac_sha1,
                    max_body_bytes=settings.max_body_bytes,
                    max_age=settings.oauth1_timestamp_max_age,
                    catch_up=self.catch_up,
                ),
                IntegrationBearer(
                    self.integrations,
                    self.grants,
                    self.master,
                    self.audit,
                    enabled=settings.integration_as_bearer,
                    catch_up=self.catch_up,
                ),
                BearerTokens(self.authenticator, self.grants, self.catch_up, self.binding),
                SecretApiKeys(self.api_keys, self.grants, self.audit, self.clock.now, self.catch_up),
                SessionCookies(self.sessions, self.grants, self.validator, self.clock.now),
            ]
        )
        # Tokens minted, by (kind, format): a plain tally the metrics read when scraped.
        self.issued: Counter[tuple[str, str]] = self.issuer.issued
        self.admin_profiles: dict[int, accounts_repo.Admin] = {}
        self.oauth_clients: dict[str, oauth2_repo.Client] = {}  # live ones, by client_id
        self._last_seq = 0
        self._applied: dict[int, int] = {}  # change seq -> when applied
        self._sync_task: asyncio.Task[None] | None = None
        self._directory_task: asyncio.Task[None] | None = None  # LDAP providers' syncs (issue 15)
        # The services, built once from the parts above (wiring.py): `tk.services.accounts`, ...
        self.services = Services(
            replay=self.replay,
            settings=settings,
            clock=self.clock,
            db=self.db,
            changes=self.uow,
            audit=self.audit,
            master=self.master,
            passwords=self.passwords,
            tree=self.tree,
            issuer=self.issuer,
            revoker=self.revoker,
            revocations=self.revocations,
            api_key_state=self.api_keys,
            session_state=self.sessions,
            live_client=self._live_client,
            grants=self.grants,
            issued=self.issued,
            keyring=self._keyring,
            reload_keys=self.reload_keys,
            authenticator=self.authenticator,
            login_limits=LoginLimits(self.ratelimiter, self.login_ip_limit, self.login_username_limit),
            pacer=self.pacer,
            login_admission=self.login_admission,
            admin_profile=self._admin_profile,
            validator=self.validator,
            ratelimiter=self.ratelimiter,
            step_up=self.step_up,
            dpop=self.dpop,
        )

    def _keyring(self) -> keys.Keyring:
        return self.keyring

    def _admin_profile(self, admin_id: int) -> accounts_repo.Admin | None:
        return self.admin_profiles.get(admin_id)

    def _live_client(self, client_id: str) -> oauth2_repo.Client | None:
        return self.oauth_clients.get(client_id)

    async def _revoked_before(self, user_type: int, user_id: int) -> int | None:
        """The user's revoke-before second, from the database (another process may have just set it)."""
        async with self.db.session() as s:
            return await auth_repo.revoke_before_of(s, user_type, user_id)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, migrate: bool = True, sync: bool = True) -> None:
        if self.broadcast:
            # Before anything commits (a first signing key); `sync`: a server listens, the CLI only tells.
            self.broadcast.start(listen=sync)
        if migrate:
            await upgrade_async(self.db.url, self.db.engine)
        await self.ensure_signing_key()
        await self.reconcile()
        await self.audit.migrate_legacy()  # once: a chain from before 0011 continues keyed
        if sync:  # a server: it signs people in (the CLI does not)
            await self.census_password_costs()
        self.audit.start()
        if sync:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="tillkey-sync")
            if self.settings.directory_sync_tick:
                self._directory_task = asyncio.create_task(
                    self.services.directory_sync.loop(self.settings.directory_sync_tick), name="tillkey-ldap-sync"
                )
            if self._signal_file is not None:
                self._watcher = signal.Watcher(self._signal_file, self._signalled)
                if not self._watcher.start():
                    self._watcher = None
                    log.info("no inotify: changes by other processes are seen at the next change-feed poll")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._directory_task:  # a sync cut short leaves its lease to expire (store/directory_syncs.py)
            self._directory_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._directory_task
        if self._sync_task:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        try:
            await self.flush_usage()
        except Exception:
            log.exception("could not write last-use times at stop")
        await self.audit.stop()  # writes what is still queued, so needs the database
        if self.broadcast:
            await self.broadcast.stop()
        self.passwords.close()
        await self.db.dispose()

    async def redis_ping(self) -> bool:
        """Does the configured Redis answer (within a second)? True when none is configured."""
        return await self.broadcast.ping() if self.broadcast else True

    def _committed_changes(self, changes: list[AuthChangeRow]) -> None:
        """Database.after_commit on SQLite: touch the signal file (and announce over Redis if set)."""
        assert self._signal_file is not None
        signal.touch(self._signal_file)
        if self.broadcast is not None:
            self._announce(changes)

    def _signalled(self) -> None:
        # Counted only: the next request waits for a poll (`settle`). Waking the sync loop here as
        # well (a poll after each of this process's own changes too) slowed one in-process test
        # from 6 to 44 s (tests/test_oauth2.py::test_denied_consent_and_bad_sign_in), cause not
        # yet found; the background poll keeps its interval.
        self._signals += 1

    @property
    def stale(self) -> bool:
        """A change was signalled (store/signal.py) that no poll started since has caught up with."""
        return self._signals != self._settled

    async def settle(self) -> None:
        """Wait for a poll that started after the latest signal (single-flight: credentials/freshness.py)."""
        seen = self._signals
        if await self.catch_up.settle():
            self._settled = max(self._settled, seen)

    def _announce(self, changes: list[AuthChangeRow]) -> None:
        """Database.after_commit: tell the other processes, whose poll then finds these rows."""
        assert self.broadcast is not None
        self.broadcast.publish([c.kind for c in changes], max(c.seq for c in changes))

    # --- state --------------------------------------------------------------------------------

    async def ensure_signing_key(self) -> None:
        """Load the keys; on first start (or a new algorithm) generate one and store it encrypted."""
        await self.reload_keys()
        if self.keyring.signer(self.clock.now()) is not None:
            return
        _key, stored = key_material.generate(self.settings.jwt_alg, self.clock.now_int(), self.master)
        async with self.uow() as w:
            # Processes starting together on a fresh database: one generates, the others use it.
            await auth_repo.lock_keys(w.s)
            found = [key_material.load(k, self.master) for k in await auth_repo.load_keys(w.s)]
            generated = keys.Keyring(found, self.settings.jwt_alg).signer(self.clock.now()) is None
            if generated:
                await auth_repo.add_key(w.s, stored)
                w.changed("keys")
        if generated:
            log.info("generated a new %s signing key %s", stored.alg, stored.kid)
        else:
            await self.reload_keys()  # the key another process just generated

    async def reload(self, kind: str, refs: Sequence[str] | None = None) -> None:
        """Bring one kind of in-memory state up to date with the database: after this process's
        own change (store/unit_of_work.py LocalState) or another's (the change feed)."""
        if kind == "grants":
            await self.reload_grants()
        elif kind == "keys":
            await self.reload_keys()
        elif kind == "oauth_clients":
            await self.reload_clients()
        elif kind == "api_keys":
            await self.reload_api_keys()
        elif kind == "sessions":
            await self.reload_sessions(None if refs is None else list(refs))
        elif kind == "integrations":
            await self.reload_integrations()
        else:
            raise ValueError(f"no reload for change kind {kind!r}")

    async def reload_keys(self) -> None:
        async with self.db.session() as s:
            stored = await auth_repo.load_keys(s)
        self.keyring = keys.Keyring([key_material.load(k, self.master) for k in stored], self.settings.jwt_alg)

    async def census_password_costs(self) -> None:
        """Which argon2 costs the stored hashes have, so an unknown name's dummy check follows them
        (crypto/passwords.py DummyHashes). At start: costs change with settings, that is a restart."""
        async with self.db.session() as s:
            found = await password_census.cost_prefixes(s)
        for utype, prefixes in found.items():
            counts: Counter[Cost] = Counter()
            for prefix, n in prefixes.items():
                if (cost := Cost.of(prefix)) is not None:
                    counts[cost] += n
            await self.passwords.learn_costs(str(int(utype)), counts)

    async def reload_grants(self) -> None:
        async with self.db.session() as s:
            self.grants.load_admins(await accounts_repo.admin_grants(s))
            admins = await accounts_repo.list_admins(s)
        # Profiles for "who am I" (GET /admin/users/me, called on every page of an admin app),
        # without password hashes. Admins are few; every change to one records a "grants" change.
        self.admin_profiles = {a.id: dataclasses.replace(a, password_hash="") for a in admins}

    async def reload_clients(self) -> None:
        """The live OAuth 2 clients and their scopes (access/grants.py reads them per request)."""
        async with self.db.session() as s:
            live = await oauth2_repo.clients(s, active_only=True)
        self.grants.load_clients({c.client_id: (c.id, frozenset(c.scopes)) for c in live})
        self.oauth_clients = {c.client_id: c for c in live}

    async def reload_api_keys(self) -> None:
        async with self.db.session() as s:
            self.api_keys.load(await api_keys_repo.live(s))

    async def reload_sessions(self, digests: list[str] | None = None) -> None:
        now_ms = int(self.clock.now() * 1000)
        async with self.db.session() as s:
            live = await sessions_repo.live(s, now_ms, digests)
        if digests is None:
            self.sessions.load(live)
        else:
            self.sessions.apply(digests, live)

    async def flush_usage(self) -> None:
        """Write the last-use times noted in memory (credentials/usage.py), one transaction."""
        keys, sessions = self.api_keys.usage.drain(), self.sessions.usage.drain()
        if not keys and not sessions:
            return
        async with self.db.transaction() as s:
            await api_keys_repo.record_use(s, keys)
            await sessions_repo.record_seen(s, sessions)

    async def reload_integrations(self) -> None:
        """Consumers, access tokens (secrets decrypted) and grants of integrations, into memory."""
        async with self.db.session() as s:
            found = await integrations_repo.list_all(s)
            tokens = await integrations_repo.access_tokens(s)
        consumers = [
            Consumer(
                i.id,
                i.consumer_key,
                self.master.decrypt(i.consumer_secret_enc, "oauth1-consumer").decode(),
                i.is_active,
                i.cert_x5t,
            )
            for i in found
        ]
        table = {
            digest: AccessToken(iid, self.master.decrypt(enc, "oauth1-token").decode()) for digest, iid, enc in tokens
        }
        self.grants.load_integrations({i.id: i.resources for i in found if i.is_active})
        self.integrations.load(consumers, table)

    async def reconcile(self) -> None:
        """Full reload of revocations and grants from the database (start, and periodically)."""
        now = self.clock.now_int()
        async with self.db.session() as s:
            seq = await auth_repo.last_change_seq(s)
            # Every watermark, however old: integration tokens never expire.
            before = await auth_repo.all_revoke_before(s, newer_than=-1)
            revoked = await auth_repo.revoked_tokens(s, now)
        for (utype, uid), ts in before.items():
            self.revocations.note_user(utype, uid, ts)
        for jti, exp in revoked.items():
            self.revocations.note_token(jti, exp)
        self.revocations.prune(now)
        await self.reload_grants()
        await self.reload_api_keys()
        await self.reload_sessions()
        await self.reload_integrations()
        await self.reload_clients()
        self._last_seq = max(self._last_seq, seq)

    @property
    def change_feed_seq(self) -> int:
        """The newest change-feed entry this process has applied (a gauge in /metrics): another
        process, or a test, compares it with the feed's newest to tell whether this one caught up."""
        return self._last_seq

    async def poll_changes(self) -> None:
        now = self.clock.now_int()
        async with self.db.session() as s:
            rows = await auth_repo.changes_since(s, self._last_seq, recent_since=now - LATE_COMMIT_WINDOW)
            changes = [c for c in rows if c.seq not in self._applied]
            if not changes:
                return
            users = {(c.user_type, c.user_id) for c in changes if c.kind == "revoke_user"}
            for utype, uid in users:
                if utype is not None and uid is not None:
                    ts = await auth_repo.revoke_before_of(s, utype, uid)
                    if ts is not None:
                        self.revocations.note_user(utype, uid, ts)
            jtis = [c.ref for c in changes if c.kind == "revoke_token" and c.ref]
            if jtis:
                for jti, exp in (await auth_repo.revoked_tokens(s, now, jtis)).items():
                    self.revocations.note_token(jti, exp)
        kinds = {c.kind for c in changes}
        for kind in RELOADED:  # this order: grants before the credentials that use them
            if kind in kinds:
                await self.reload(kind, [c.ref for c in changes if c.kind == kind and c.ref])
        for c in changes:
            self._applied[c.seq] = now
        self._applied = {q: t for q, t in self._applied.items() if t >= now - 2 * LATE_COMMIT_WINDOW}
        self._last_seq = max(self._last_seq, max(c.seq for c in changes))

    async def _sync_loop(self) -> None:
        """Poll the change feed every sync_interval, or at once when woken by a broadcast; a full
        reconcile every reconcile_interval. One task: two polls never run at once, and a burst of
        wake-ups while a poll runs makes one more poll, not one per message."""
        clock = asyncio.get_running_loop().time
        cfg = self.settings
        next_poll = clock() + cfg.sync_interval
        next_reconcile = clock() + cfg.reconcile_interval
        next_flush = clock() + cfg.last_used_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(next_poll, next_reconcile) - clock()))
            self._wake.clear()
            now = clock()
            next_poll = now + cfg.sync_interval
            try:
                if now >= next_flush:
                    next_flush = now + cfg.last_used_interval
                    await self.flush_usage()
                if now >= next_reconcile:
                    next_reconcile = now + cfg.reconcile_interval
                    await self.reconcile()
                    await self._purge()
                else:
                    await self.poll_changes()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database may be briefly unreachable; keep serving from memory and retry.
                log.exception("auth state sync failed; retrying")

    async def _purge(self) -> None:
        now = self.clock.now_int()
        async with self.db.transaction() as s:
            await auth_repo.purge_expired(s, now)
            await oauth2_repo.purge_expired(s, now)
            await auth_repo.trim_changes(s, now - 86400)
            await sessions_repo.purge_expired(s, int(self.clock.now() * 1000))
            await identities_repo.purge_expired_resets(s, int(self.clock.now() * 1000))
            await email_verifications_repo.purge_expired(s, int(self.clock.now() * 1000))
            stale = int(self.clock.now() * 1000) - self.settings.pending_registration_ttl * 1000
            await identities_repo.purge_stale_registrations(s, stale)
            # Older timestamps are refused (oauth1/rfc5849.py), so these can go.
            await integrations_repo.prune_nonces(s, now - self.settings.oauth1_timestamp_max_age)
        self.sessions.prune(self.clock.now())
