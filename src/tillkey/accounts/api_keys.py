"""API keys (Medusa-style): create, rename, revoke (at once or later), delete.

The secret is generated here, shown once in the create answer, and stored only as a keyed HMAC
digest. Every change writes a change-feed row ("api_keys") in the same transaction and is applied
to this process before the call returns, so a revoked key is refused on the very next request here
and within one sync interval everywhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from tillkey import audit
from tillkey.access import delegation
from tillkey.access.delegation import OPERATOR
from tillkey.access.tree import ResourceTree
from tillkey.clock import Clock
from tillkey.contracts import Changes
from tillkey.credentials.api_keys import MEDUSA_SECRET, PUBLISHABLE_PREFIX, SECRET_PREFIX, ApiKeyState, redact
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import InvalidRequest, NotAllowed, NotFound
from tillkey.principal import Principal, UserType
from tillkey.store import api_keys as repo
from tillkey.store.api_keys import LEGACY_SCRYPT, PUBLISHABLE, SECRET, TYPES, ApiKey
from tillkey.store.db import Database

ALL = "Magento_Backend::all"
MAX_REVOKE_IN = 10 * 365 * 86400  # seconds


@dataclass(frozen=True, slots=True)
class Created:
    key: ApiKey
    token: str  # the raw key: shown once, never stored


class ApiKeys:
    """Built once (wiring.py); `tk.services.api_keys`. `state`: the keys requests are checked against."""

    def __init__(
        self,
        *,
        state: ApiKeyState,
        changes: Changes,
        db: Database,
        tree: ResourceTree,
        master: MasterSecret,
        clock: Clock,
    ) -> None:
        self.state = state
        self.changes = changes
        self.db = db
        self.tree = tree
        self.master = master
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def create(
        self,
        acting: Principal,
        *,
        title: str,
        type: str,
        resources: Sequence[str] | None = None,
        for_admin: int | None = None,
    ) -> Created:
        """A secret key acts for an admin and never exceeds their current grant (access/grants.py);
        its own grant is at most the ACTING credential's effective grant (delegation rule), so a
        key or an OAuth token holding only Tillkey::api_keys cannot mint a key with its creator's
        full grant. `resources` None: the acting credential's effective grant as it is now.
        `for_admin`: the admin the key acts for, given by the operator only
        (the CLI's --for); anyone else mints keys for themselves, or a key for its own admin."""
        actor_type, actor_id = (None, None) if acting is OPERATOR else (int(acting.user_type), acting.user_id)
        created_by = for_admin if acting is OPERATOR else self._acting_admin(acting)
        title = title.strip()
        if not title or len(title) > 255:
            raise InvalidRequest("Invalid request: Field 'title' is required")
        if type not in TYPES:
            raise InvalidRequest(f"Invalid request: Expected 'publishable' | 'secret', received '{type[:20]}'")
        granted: tuple[str, ...] = ()
        if type == SECRET:
            if created_by is None:
                raise InvalidRequest("A secret key needs the admin it acts for.")
            granted = tuple(sorted(set(resources))) if resources is not None else self._default_grant(acting)
            unknown = self.tree.unknown(granted)
            if unknown:
                raise InvalidRequest(f"Invalid request: unknown resource id(s): {', '.join(unknown)}")
            delegation.require_ids_within(acting, self.tree, granted, what="secret api key")
        elif resources:
            raise InvalidRequest("Publishable keys grant no resources: they name a storefront, not a caller.")
        raw = (SECRET_PREFIX if type == SECRET else PUBLISHABLE_PREFIX) + secrets.token_hex(32)
        now = self._now_ms()
        async with self.changes() as w:
            key = await repo.create(
                w.s,
                type=type,
                title=title,
                digest=self.master.digest(raw),
                public_token=raw if type == PUBLISHABLE else None,
                redacted=redact(raw),
                resources=granted,
                created_by=created_by,
                now_ms=now,
            )
            w.changed("api_keys", ref=str(key.id), apply=functools.partial(self.state.put, key))
            w.audit(
                audit.API_KEY_CREATED,
                actor_type=actor_type,
                actor_id=actor_id,
                details={
                    "target_type": int(UserType.API_KEY),
                    "target_id": key.id,
                    "type": type,
                    "title": title,
                    "resources": list(granted),
                },
            )
        return Created(key, raw)

    async def import_existing(
        self,
        *,
        type: str,
        title: str,
        token: str,
        salt: str,
        redacted: str,
        created_by: int | None,
        created_ms: int,
        revoked_ms: int | None,
    ) -> ApiKey:
        """A key moved from Medusa (by the operator's import), as Medusa stores it: a publishable
        key's text, or a secret key's scrypt verifier (`token` the hex, `salt`), which stays until
        the key is first presented (credentials/api_keys.py). A secret key acts for its creator
        with the creator's whole grant, as in Medusa (its admin's grant still bounds it)."""
        title = title.strip()[:255] or "Imported key"
        granted: tuple[str, ...] = ()
        if type == PUBLISHABLE:
            if not token.startswith(PUBLISHABLE_PREFIX) or len(token) > 128:
                raise InvalidRequest("A publishable key must start with pk_.")
            digest, public, redacted = self.master.digest(token), token, redact(token)
        elif type == SECRET:
            if created_by is None:
                raise InvalidRequest("A secret key needs the admin it acts for.")
            if not MEDUSA_SECRET.fullmatch(redacted.replace("***", "0" * 58)) or not (
                len(salt) == 32 and len(token) == 128 and all(c in "0123456789abcdef" for c in salt + token)
            ):
                raise InvalidRequest("Not a Medusa secret key (scrypt hex, hex salt, redacted sk_…).")
            digest, public, granted = LEGACY_SCRYPT + salt, token, (ALL,)
        else:
            raise InvalidRequest(f"Invalid request: Expected 'publishable' | 'secret', received '{type[:20]}'")
        now = self._now_ms()
        async with self.changes() as w:
            key = await repo.create_imported(
                w.s,
                type=type,
                title=title,
                digest=digest,
                public_token=public,
                redacted=redacted,
                resources=granted,
                created_by=created_by,
                created_ms=created_ms,
                revoked_ms=revoked_ms,
                now_ms=now,
            )
            w.changed("api_keys", ref=str(key.id), apply=functools.partial(self.state.put, key))
            w.audit(
                audit.API_KEY_CREATED,
                details={
                    "target_type": int(UserType.API_KEY),
                    "target_id": key.id,
                    "type": type,
                    "title": title,
                    "resources": list(granted),
                    "imported": True,
                },
            )
        return key

    async def refresh_imported(
        self,
        key_id: int,
        *,
        title: str,
        created_by: int | None,
        revoked_ms: int | None,
        dry_run: bool = False,
    ) -> list[str]:
        """An import run's `--on-conflict update` of a key it moved before: its title, the admin a
        secret key acts for with that admin's whole grant (as in Medusa), and its revocation. A
        revocation is only ever added or brought forward, never lifted: a key revoked here stays
        revoked. Answers what changed (nothing written when nothing did, or `dry_run`); audited."""
        key = await self.get(key_id)
        title = title.strip()[:255] or key.title
        granted = key.resources
        if key.type == SECRET:
            if created_by is None:
                raise InvalidRequest("A secret key needs the admin it acts for.")
            granted = (ALL,)
        else:
            created_by = key.created_by
        revoked = key.revoked_ms
        if revoked_ms is not None and (revoked is None or revoked_ms < revoked):
            revoked = revoked_ms
        changed = [
            field
            for field, differs in (
                ("title", key.title != title),
                ("created_by", key.created_by != created_by),
                ("resources", key.resources != granted),
                ("revoked", key.revoked_ms != revoked),
            )
            if differs
        ]
        if not changed or dry_run:
            return changed
        now = self._now_ms()
        async with self.changes() as w:
            await repo.refresh_imported(
                w.s, key_id, title=title, resources=granted, created_by=created_by, revoked_ms=revoked, now_ms=now
            )
            refreshed = await repo.by_id(w.s, key_id)
            assert refreshed is not None
            w.changed("api_keys", ref=str(key_id), apply=functools.partial(self.state.put, refreshed))
            details = {"target_type": int(UserType.API_KEY), "target_id": key_id}
            w.audit(
                audit.API_KEY_CHANGED,
                details={**details, "change": "imported again", "fields": changed, "resources": list(granted)},
            )
            if "revoked" in changed:
                w.audit(
                    audit.API_KEY_REVOKED,
                    details={**details, "revoke_in": max(0.0, (revoked or now) - now) / 1000, "imported": True},
                )
        return changed

    async def upgrade_legacy(self, key_id: int, digest: str) -> None:
        """An imported secret key was presented and matched its scrypt verifier: store its keyed
        digest instead (once, whichever process sees it first), audited."""
        now = self._now_ms()
        async with self.changes() as w:
            if not await repo.upgrade_legacy(w.s, key_id, digest, now):
                return
            upgraded = await repo.by_id(w.s, key_id)  # None: deleted meanwhile, so reloaded
            apply = None if upgraded is None else functools.partial(self.state.put, upgraded)
            w.changed("api_keys", ref=str(key_id), apply=apply)
            w.audit(audit.API_KEY_REHASHED, details={"target_type": int(UserType.API_KEY), "target_id": key_id})

    def _acting_admin(self, acting: Principal) -> int | None:
        """The admin a new key acts for: the calling admin, or the admin behind the calling key."""
        if acting.user_type == UserType.ADMIN:
            return acting.user_id
        if acting.user_type == UserType.API_KEY:
            key = self.state.by_id(acting.user_id)
            return key.created_by if key else None
        return None

    def _default_grant(self, acting: Principal) -> tuple[str, ...]:
        """What `resources=None` means: the acting credential's whole effective grant as it is now
        (written out, so the key never outgrows what minted it even when its admin is promoted)."""
        have = delegation.effective(acting)
        if have.everything:
            return (ALL,)
        return self.tree.roots_of(have.resources)

    async def get(self, key_id: int) -> ApiKey:
        async with self.db.session() as s:
            key = await repo.by_id(s, key_id)
        if key is None:
            raise NotFound(f"API Key with id: apk_{key_id} was not found")
        return key

    async def rename(self, key_id: int, title: str) -> ApiKey:
        title = title.strip()
        if not title or len(title) > 255:
            raise InvalidRequest("Invalid request: Field 'title' is required")
        await self.get(key_id)
        async with self.db.transaction() as s:
            await repo.set_title(s, key_id, title, self._now_ms())
        return await self.get(key_id)

    async def revoke(
        self,
        key_id: int,
        *,
        revoke_in: float = 0,
        by: int | None,
        actor_type: int | None = None,
        actor_id: int | None = None,
    ) -> ApiKey:
        """Revoke now, or `revoke_in` seconds from now (the key works until then)."""
        if not 0 <= revoke_in <= MAX_REVOKE_IN:
            raise InvalidRequest(f"Invalid request: Field 'revoke_in' must be between 0 and {MAX_REVOKE_IN}")
        key = await self.get(key_id)
        now = self._now_ms()
        async with self.changes() as w:
            if not await repo.revoke(w.s, key_id, now + int(revoke_in * 1000), by, now):
                raise NotAllowed(f"There are 1 {key.type} keys that are already revoked.")
            revoked = await repo.by_id(w.s, key_id)
            assert revoked is not None
            w.changed("api_keys", ref=str(key_id), apply=functools.partial(self.state.put, revoked))
            w.audit(
                audit.API_KEY_REVOKED,
                actor_type=actor_type,
                actor_id=actor_id,
                details={"target_type": int(UserType.API_KEY), "target_id": key_id, "revoke_in": revoke_in},
            )
        return revoked

    async def delete(self, key_id: int, *, actor_type: int | None = None, actor_id: int | None = None) -> None:
        key = await self.get(key_id)
        if key.revoked_ms is None:
            raise NotAllowed(f"Cannot delete api keys that are not revoked - apk_{key_id}")
        now = self._now_ms()
        deleted = dataclasses.replace(key, deleted_ms=now)
        async with self.changes() as w:
            await repo.soft_delete(w.s, key_id, now)
            w.changed("api_keys", ref=str(key_id), apply=functools.partial(self.state.put, deleted))
            w.audit(
                audit.API_KEY_DELETED,
                actor_type=actor_type,
                actor_id=actor_id,
                details={"target_type": int(UserType.API_KEY), "target_id": key_id},
            )

    async def listing(self, *, type: str | None, q: str | None, limit: int, offset: int) -> tuple[list[ApiKey], int]:
        async with self.db.session() as s:
            return await repo.listing(s, type=type, q=q, limit=limit, offset=offset)
