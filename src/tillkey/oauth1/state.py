"""What the hot path knows about integrations, in memory: consumers by key, access tokens by
keyed digest, with the decrypted secrets HMAC verification needs. Loaded at start and reloaded on
the change feed's "integrations" kind (runtime.py), so revocation reaches every process within
the sync interval and a signed request never reads the database (the nonce write aside)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Consumer:
    integration_id: int
    key: str
    secret: str = field(repr=False)
    active: bool
    # RFC 8705: its calls must come with the client certificate of this x5t#S256 (None: unbound).
    cert_x5t: str | None = None


@dataclass(frozen=True, slots=True)
class AccessToken:
    integration_id: int
    secret: str = field(repr=False)


class IntegrationState:
    def __init__(self) -> None:
        self.consumers: dict[str, Consumer] = {}
        self.tokens: dict[str, AccessToken] = {}
        self._by_id: dict[int, Consumer] = {}

    def load(self, consumers: list[Consumer], tokens: dict[str, AccessToken]) -> None:
        # Swapped whole, never mutated: a request in flight sees the old tables or the new ones.
        self.consumers = {c.key: c for c in consumers}
        self._by_id = {c.integration_id: c for c in consumers}
        self.tokens = tokens

    def active_token(self, digest: str) -> tuple[AccessToken, Consumer] | None:
        """The access token with this digest, if it exists and its integration is active."""
        token = self.tokens.get(digest)
        if token is None:
            return None
        consumer = self._by_id.get(token.integration_id)
        if consumer is None or not consumer.active:
            return None
        return token, consumer
