"""Prometheus metrics (prometheus-client), one registry per app.

Nothing here costs the hot path more than an integer addition: the request middleware and the
services keep plain counters (credentials/registry.py, tokens/service.py, runtime.issued, the rate
limiter, the audit log, the scale-out broadcast), and one collector turns them into metric families
only when /metrics is scraped. Every label has a fixed, small set of values: a route's template
(never the raw path), a known method, a status code, a credential kind, a coarse reason.

Each process has its own registry: with several processes (or `--workers`), scrape each one as its
own target; Prometheus sums across them.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import Scope

from tillkey import __version__
from tillkey.observability.health import ReadinessProbe

if TYPE_CHECKING:
    from collections import Counter

    from tillkey.audit import AuditLog
    from tillkey.credentials.registry import Credentials
    from tillkey.security.ratelimit import RateLimiter
    from tillkey.store.broadcast import Broadcast
    from tillkey.tokens.service import Authenticator

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"  # the route label of a request no route matched: raw paths would be unbounded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """'127.0.0.1/32, ::1' → networks (ValueError for a bad one)."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in spec.split(",") if p.strip())


def count_request(metrics: Metrics, scope: Scope, status: int) -> None:
    """One finished request into (route, method, status): the matched route's template is in the
    scope once the router (or web/edge.py's hot dispatch) has run."""
    route = scope.get("route")
    method = scope["method"]
    key = (route.path if route is not None else UNMATCHED, method if method in METHODS else "other", status)
    metrics.requests[key] = metrics.requests.get(key, 0) + 1


class Metrics:
    """The registry of one app, and the counters only the middleware keeps."""

    def __init__(
        self,
        readiness: ReadinessProbe,
        *,
        networks: str,
        credentials: Credentials,
        issued: Counter[tuple[str, str]],
        authenticator: Authenticator,
        audit: AuditLog,
        ratelimiter: RateLimiter,
        broadcast: Broadcast | None,
        change_feed_seq: Callable[[], int],
    ) -> None:
        """What it reads when scraped: the process's plain counters (runtime.py builds them)."""
        self.readiness = readiness
        self.credentials = credentials
        self.issued = issued
        self.authenticator = authenticator
        self.audit = audit
        self.ratelimiter = ratelimiter
        self.broadcast = broadcast
        self.change_feed_seq = change_feed_seq
        self.requests: dict[tuple[str, str, int], int] = {}
        self.in_progress = 0
        self.networks = parse_networks(networks)
        # Its own registry, not the library's global one: tests run several apps in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(TillkeyCollector(self))

    def allows_anonymous(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    async def render(self) -> bytes:
        # Fresh reachability for the up gauges (cached for a second, like /readyz).
        await self.readiness.check()
        return generate_latest(self.registry)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class TillkeyCollector(Collector):
    """Reads the plain counters when scraped (on the event loop, so they do not move meanwhile)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        info = InfoMetricFamily("tillkey_build", "Tillkey version")
        info.add_metric([], {"version": __version__})
        yield info

        requests = CounterMetricFamily(
            "tillkey_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), n in sorted(self.m.requests.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        yield _gauge("tillkey_http_requests_in_progress", "HTTP requests being handled now", self.m.in_progress)

        creds = m.credentials
        auth = CounterMetricFamily(
            "tillkey_auth",
            "Credentials presented on protected routes, by kind and outcome (ok or why refused)",
            labels=["kind", "outcome"],
        )
        for kind, n in sorted(creds.accepted.items()):
            auth.add_metric([kind, "ok"], n)
        for (kind, reason), n in sorted(creds.refused.items()):
            auth.add_metric([kind, reason], n)
        yield auth
        yield _counter("tillkey_auth_anonymous", "Requests to routes that presented no credential", creds.anonymous)

        issued = CounterMetricFamily(
            "tillkey_tokens_issued",
            "Tokens minted, by kind (access, oauth2_access, refresh, id_token) and format",
            labels=["kind", "format"],
        )
        for (kind, fmt), n in sorted(m.issued.items()):
            issued.add_metric([kind, fmt], n)
        yield issued

        auth_cache = m.authenticator
        hits, misses = auth_cache.cache_hits, auth_cache.cache_misses
        yield _counter("tillkey_token_cache_hits", "Bearer tokens found in the verified-token cache", hits)
        yield _counter("tillkey_token_cache_misses", "Bearer tokens verified (signature or lookup)", misses)
        yield _gauge(
            "tillkey_token_cache_hit_ratio",
            "hits / (hits + misses) since the process started (0 before any)",
            hits / (hits + misses) if hits + misses else 0.0,
        )
        yield _gauge("tillkey_token_cache_entries", "Tokens in the verified-token cache", auth_cache.cache_entries)

        yield _gauge(
            "tillkey_change_feed_seq", "The newest change-feed entry this process has applied", m.change_feed_seq()
        )

        yield from self._dependencies()

        audit = m.audit
        yield _counter("tillkey_audit_dropped", "Queued audit events dropped: the queue was full", audit.dropped)
        yield _counter("tillkey_audit_failed", "Queued audit events lost after repeated write failures", audit.failed)

    def _dependencies(self) -> Iterator[Metric]:
        checks = self.m.readiness.last.checks
        if "database" in checks:
            yield _gauge("tillkey_database_up", "1 if the database answered the last check", checks["database"])
        if "redis" in checks:
            yield _gauge("tillkey_redis_up", "1 if Redis answered the last check (PING)", checks["redis"])
        yield _counter(
            "tillkey_ratelimit_redis_failures",
            "Rate-limit checks that fell back to per-process memory because Redis failed",
            self.m.ratelimiter.redis_failures,
        )
        # The scale-out broadcast (revocations over Redis pub/sub), when this process has one.
        broadcast = self.m.broadcast
        if broadcast is None:
            return
        yield _gauge(
            "tillkey_broadcast_up", "1 while the revocation broadcast is connected to Redis", broadcast.redis_up
        )
        yield _counter("tillkey_broadcast_published", "Revocation broadcasts sent", broadcast.published)
        yield _counter(
            "tillkey_broadcast_received", "Revocation broadcasts received from other processes", broadcast.received
        )
        yield _counter(
            "tillkey_broadcast_publish_failures",
            "Revocation broadcasts that could not be sent (the change feed still carries them)",
            broadcast.publish_failures,
        )
        # Seconds from a change's commit in another process to its arrival here.
        cumulative, buckets = 0, []
        for bound, count in zip([*broadcast.LAG_BUCKETS, math.inf], broadcast.lag_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "tillkey_revocation_broadcast_lag_seconds",
            "Seconds from a change's commit in another process to its broadcast's arrival here",
            buckets=buckets,
            sum_value=broadcast.lag_sum,
        )
