"""Signing-key rotation and retirement: the cold path that moves keys along their life (keys.py, key_material.py).

Rotation publishes the next key at once and lets it sign only after `publish_ahead` seconds, so a
verifier that caches the JWKS (Tillkey sends max-age=JWKS_MAX_AGE) has it before the first token
it signs. The keys it replaces stop signing at that moment and keep verifying for `grace` seconds,
by default the longest token lifetime plus the clock leeway: every token they signed has expired
by the time they leave the JWKS. Retirement ends a key at once (a suspected leak): its tokens are
refused everywhere within the sync interval, and a replacement signs immediately if needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tillkey import audit
from tillkey.clock import Clock
from tillkey.contracts import Changes, KeyStore
from tillkey.crypto.secrets import MasterSecret
from tillkey.errors import NotFound
from tillkey.settings import Settings
from tillkey.tokens import key_material
from tillkey.tokens.jwt import LEEWAY
from tillkey.tokens.keys import JWKS_MAX_AGE, Keyring


@dataclass(frozen=True, slots=True)
class Rotated:
    kid: str
    alg: str
    signs_from: int
    replaced: list[str]
    replaced_verify_until: int


def default_grace(settings: Settings) -> int:
    """Long enough for every JWT a replaced key signed to expire: admin, customer and Medusa tokens,
    OAuth 2 access and ID tokens (integration, refresh and opaque tokens are not signed)."""
    signed = (
        settings.admin_token_ttl,
        settings.customer_token_ttl,
        settings.oauth2_access_token_ttl,
        settings.id_token_ttl,
    )
    return max(signed) + LEEWAY


class KeyRotation:
    """Built once (wiring.py): `tk.services.keys`. `keyring`: the process's current keyring (the
    runtime replaces it on every reload); `reload`: read the keys from the database into it."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        master: MasterSecret,
        changes: Changes,
        store: KeyStore,
        keyring: Callable[[], Keyring],
        reload: Callable[[], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.master = master
        self.changes = changes
        self.store = store
        self.keyring = keyring
        self.reload = reload

    async def rotate(self, *, publish_ahead: int = JWKS_MAX_AGE, grace: int | None = None) -> Rotated:
        if publish_ahead < 0 or (grace is not None and grace < 0):
            raise ValueError("publish_ahead and grace must not be negative")
        grace = default_grace(self.settings) if grace is None else grace
        now = self.clock.now_int()
        signs_from = now + publish_ahead
        await self.reload()
        # Every key that signs now or was waiting to: a rotation replaces a pending rotation too.
        replaced = [k.kid for k in self.keyring().by_kid.values() if k.retired_at is None and k.verifies_at(now)]
        _key, stored = key_material.generate(self.settings.jwt_alg, now, self.master, signs_from)
        async with self.changes() as w:
            await self.store.add(w, stored)
            await self.store.end(w, replaced, retired_at=signs_from, verify_until=signs_from + grace)
            w.changed("keys")
            w.audit(
                audit.KEY_ROTATED,
                details={
                    "kid": stored.kid,
                    "alg": stored.alg,
                    "signs_from": signs_from,
                    "replaced": replaced,
                    "replaced_verify_until": signs_from + grace,
                },
            )
        return Rotated(stored.kid, stored.alg, signs_from, replaced, signs_from + grace)

    async def retire(self, kid: str) -> str | None:
        """End `kid` now. Returns the kid of the replacement signing key, if one had to be made."""
        await self.reload()
        now = self.clock.now_int()
        keyring = self.keyring()
        key = keyring.by_kid.get(kid)
        if key is None:
            raise NotFound("No signing key with kid %kid.", parameters={"kid": kid})
        signer = keyring.signer(now)
        replacement = None
        async with self.changes() as w:
            if signer is None or signer.kid == kid:
                _new, stored = key_material.generate(self.settings.jwt_alg, now, self.master)
                await self.store.add(w, stored)
                replacement = stored.kid
            await self.store.end(w, [kid], retired_at=now, verify_until=now)
            w.changed("keys")
            w.audit(audit.KEY_RETIRED, details={"kid": kid, "replacement": replacement})
        return replacement
