"""A tiny shop extension protected by Tillkey in library mode (see docs/library-mode.md).

Tokens are verified here, offline, with the Tillkey server's public keys; revocations and admin
grants arrive through the auth-state feed the guard polls. Configuration (environment):

    TILLKEY_URL                   the Tillkey server, e.g. http://127.0.0.1:8000 (required)
    TILLKEY_GUARD_CONSUMER_KEY, TILLKEY_GUARD_CONSUMER_SECRET, TILLKEY_GUARD_ACCESS_TOKEN,
    TILLKEY_GUARD_ACCESS_TOKEN_SECRET
                                  feed account: an integration granted Tillkey::auth_state (works
                                  with the server's default TILLKEY_ADMIN_2FA=required)
    TILLKEY_GUARD_USERNAME        or an admin whose role grants Tillkey::auth_state (only where
    TILLKEY_GUARD_PASSWORD        admins may log in without a second factor)
    TILLKEY_GUARD_ISSUER          the server's TILLKEY_ISSUER (default: TILLKEY_URL)
    TILLKEY_GUARD_POLL_INTERVAL   seconds between auth-state polls (default 5)
    TILLKEY_GUARD_MAX_STALENESS   seconds without a fresh auth state before failing closed (default 60)
    TILLKEY_GUARD_PUBLIC_URL      the origin clients use for this app, named by DPoP proofs
                                  (default: each request's own scheme and Host)
    TILLKEY_GUARD_TRUSTED_PROXIES the TLS proxy passing client certificates, for certificate-bound
                                  tokens (default: none, such tokens are refused)

Run with `uvicorn examples.library_app:app --port 8100 --no-proxy-headers` or
`python examples/library_app.py --port 8100`.
"""

# No `from __future__ import annotations` here: the Annotated aliases below are local to
# create_app(), and FastAPI must see them as real objects, not as names to look up globally.
import argparse
import logging
import os
from typing import Annotated

from fastapi import Depends, FastAPI

from tillkey.guard import Guard, IntegrationCredential
from tillkey.principal import Principal


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise SystemExit(f"library_app: set {name} (see the docstring of examples/library_app.py)")
    return value


def _feed_integration() -> IntegrationCredential | None:
    if not os.environ.get("TILLKEY_GUARD_CONSUMER_KEY"):
        return None
    return IntegrationCredential(
        consumer_key=_env("TILLKEY_GUARD_CONSUMER_KEY"),
        consumer_secret=_env("TILLKEY_GUARD_CONSUMER_SECRET"),
        access_token=_env("TILLKEY_GUARD_ACCESS_TOKEN"),
        access_token_secret=_env("TILLKEY_GUARD_ACCESS_TOKEN_SECRET"),
    )


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per feed poll is noise
    integration = _feed_integration()
    guard = Guard(
        _env("TILLKEY_URL"),
        issuer=os.environ.get("TILLKEY_GUARD_ISSUER") or None,
        feed_integration=integration,
        feed_username=None if integration else _env("TILLKEY_GUARD_USERNAME"),
        feed_password=None if integration else _env("TILLKEY_GUARD_PASSWORD"),
        poll_interval=float(_env("TILLKEY_GUARD_POLL_INTERVAL", "5")),
        max_staleness=float(_env("TILLKEY_GUARD_MAX_STALENESS", "60")),
        public_url=os.environ.get("TILLKEY_GUARD_PUBLIC_URL") or None,
        trusted_proxies=os.environ.get("TILLKEY_GUARD_TRUSTED_PROXIES", ""),
    )
    app = FastAPI(title="Shop extension (Tillkey library mode)")
    guard.install(app)  # JSON 401/403/503 answers, and the guard starts and stops with the app

    # Same resource ids as Tillkey's own routes (`tillkey role resources` lists them).
    Anyone = Annotated[Principal, Depends(guard.requires("anonymous"))]
    Customer = Annotated[Principal, Depends(guard.requires("self"))]
    InventoryAdmin = Annotated[Principal, Depends(guard.requires("Magento_CatalogInventory::cataloginventory"))]

    @app.get("/public/ping")
    async def ping(caller: Anyone) -> dict[str, object]:
        return {"pong": True, "caller_type": int(caller.user_type)}

    @app.get("/me")
    async def me(caller: Customer) -> dict[str, object]:
        return {"customer_id": caller.user_id, "token_expires_at": caller.expires_at}

    @app.get("/inventory/report")
    async def inventory_report(caller: InventoryAdmin) -> dict[str, object]:
        return {
            "requested_by_admin": caller.user_id,
            "low_stock": [{"sku": "24-MB01", "qty": 3}, {"sku": "24-WG02", "qty": 0}],
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    # No proxy headers: the client-certificate header is believed from the direct peer only, which
    # uvicorn would otherwise replace by X-Forwarded-For's client first.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", proxy_headers=False)


if __name__ == "__main__":
    main()
else:  # imported, e.g. by `uvicorn examples.library_app:app`
    app = create_app()
