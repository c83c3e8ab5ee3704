"""The console's identity providers page: every provider, and for an LDAP / Active Directory one
its health (issue 15): the last sync, its error if it failed, what it changed. Changes are made
with `tillkey idp` or the admin API (surfaces/idps.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from tillkey.console.routing import Console, ConsolePages

pages = ConsolePages()
IDPS = "Tillkey::idps"


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "never"


@pages.route("GET", "/console/idps", resources=[IDPS], summary="Identity providers and directory health")
async def idps_page(c: Console) -> Response:
    health = await c.tk.services.directory.health()
    rows: list[dict[str, Any]] = []
    for p in await c.tk.services.identity_providers.listed():
        h = health.get(p.name)
        rows.append(
            {
                "name": p.name,
                "protocol": p.protocol,
                "actor": p.actor,
                "enabled": p.enabled,
                "endpoint": p.issuer,
                "health": None
                if h is None
                else {
                    **h,
                    "last_sync": _when(h["last_sync_ms"]),
                    "last_ok": _when(h["last_ok_ms"]),
                    "interval": p.settings.get("sync_interval", ""),
                },
            }
        )
    return c.render("idps.html", "Identity providers", providers=rows)
