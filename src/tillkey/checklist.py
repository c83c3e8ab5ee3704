"""The production checklist behind `tillkey config check`: settings that are fine on a laptop and
wrong in front of real customers. Each finding is a problem (exit 1) or a note (worth a look)."""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from tillkey.configuration import redacted_url
from tillkey.settings import Settings

Level = Literal["ok", "note", "problem"]
SECRET_GOOD_CHARS = 43  # 256 bits in URL-safe base64


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    text: str


def check(settings: Settings, *, workers: int = 1) -> list[Finding]:
    return [
        _issuer(settings),
        _https(settings),
        _proxies(settings),
        _secret(settings),
        *_files(settings),
        _two_factor(settings),
        _database(settings, workers),
        _redis(settings, workers),
        _metrics(settings),
        *_legacy(settings),
    ]


def _issuer(s: Settings) -> Finding:
    url = urlsplit(s.issuer)
    if url.scheme != "https":
        return Finding("problem", "issuer", f"TILLKEY_ISSUER is {s.issuer}: set it to the public https:// URL")
    return Finding("ok", "issuer", f"{s.issuer}")


def _https(s: Settings) -> Finding:
    if not s.require_https:
        return Finding("problem", "https", "TILLKEY_REQUIRE_HTTPS is off: passwords may cross the network in clear")
    return Finding("ok", "https", "credential endpoints refuse plain HTTP (except from loopback)")


def _proxies(s: Settings) -> Finding:
    if not s.trusted_proxies.strip():
        return Finding(
            "note",
            "proxies",
            "TILLKEY_TRUSTED_PROXIES is empty: behind a reverse proxy, set it to the proxy's address, or every "
            "client shares the proxy's rate limits and plain HTTP is assumed",
        )
    for part in s.trusted_proxies.split(","):
        part = part.strip()
        if part == "*" or (part and ipaddress.ip_network(part, strict=False).prefixlen == 0):
            text = f"TILLKEY_TRUSTED_PROXIES trusts {part}: anyone can forge X-Forwarded-For"
            return Finding("problem", "proxies", text)
    return Finding("ok", "proxies", s.trusted_proxies)


def _secret(s: Settings) -> Finding:
    if s.secret_key:
        if len(s.secret_key) < SECRET_GOOD_CHARS:
            return Finding("note", "secret", "TILLKEY_SECRET_KEY is shorter than 43 characters (256 bits)")
        return Finding("ok", "secret", "TILLKEY_SECRET_KEY is set")
    path = s.data_dir.resolve() / "secret.key"
    if not path.exists():
        return Finding("note", "secret", f"{path} does not exist yet; the first start generates it")
    if s.database_url:
        return Finding(
            "note",
            "secret",
            f"the master secret is {path}: every host sharing the database needs the same one "
            "(or set TILLKEY_SECRET_KEY); back it up",
        )
    return Finding("ok", "secret", f"{path} (back it up: without it, encrypted secrets are lost)")


def _files(s: Settings) -> list[Finding]:
    found = []
    paths = [s.data_dir / "secret.key"] + ([] if s.database_url else [s.data_dir / "tillkey.db"])
    for path in paths:
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            mode = oct(stat.S_IMODE(path.stat().st_mode))
            found.append(Finding("problem", "files", f"{path.resolve()} is mode {mode}: chmod 600 it"))
    return found


def _two_factor(s: Settings) -> Finding:
    if s.admin_2fa == "off":
        return Finding("problem", "2fa", "TILLKEY_ADMIN_2FA=off: an admin password alone opens everything")
    if s.admin_2fa == "optional":
        return Finding("note", "2fa", "TILLKEY_ADMIN_2FA=optional: admins without TOTP sign in with a password alone")
    return Finding("ok", "2fa", "admins need a second factor")


def _database(s: Settings, workers: int) -> Finding:
    if not s.database_url:
        if workers > 1:
            return Finding(
                "problem",
                "database",
                f"{workers} workers on SQLite: use PostgreSQL (TILLKEY_DATABASE_URL) and Redis for several processes",
            )
        return Finding("ok", "database", f"SQLite in {s.data_dir.resolve()} (one process)")
    return Finding("ok", "database", redacted_url(s.database_url))


def _redis(s: Settings, workers: int) -> Finding:
    if s.database_url and not s.redis_url:
        return Finding(
            "note",
            "redis",
            "no TILLKEY_REDIS_URL: with several processes, rate limits are per process and changes arrive by polling",
        )
    return Finding("ok", "redis", "set" if s.redis_url else "not needed for one process")


def _metrics(s: Settings) -> Finding:
    wide = []
    for part in s.metrics_networks.split(","):
        if part.strip():
            net = ipaddress.ip_network(part.strip(), strict=False)
            if not (net.is_loopback or net.is_private):
                wide.append(part.strip())
    if wide:
        return Finding("problem", "metrics", f"/metrics is open without a credential to {', '.join(wide)}")
    return Finding("ok", "metrics", f"/metrics without a credential only from {s.metrics_networks or 'nobody'}")


def _legacy(s: Settings) -> list[Finding]:
    found = []
    if s.oauth1_allow_hmac_sha1:
        found.append(Finding("note", "oauth1", "HMAC-SHA1 signatures are accepted (Magento 2.4.6 refuses them)"))
    if s.integration_as_bearer:
        found.append(Finding("note", "oauth1", "integration tokens work as Bearer tokens (only pymagento needs it)"))
    if s.log_level.upper() == "DEBUG":
        found.append(Finding("note", "logging", "TILLKEY_LOG_LEVEL=DEBUG"))
    return found
