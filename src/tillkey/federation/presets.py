"""Presets: the settings of well-known providers filled in, so `tillkey idp add --preset NAME` needs
only what the provider issued to the shop (client id and secret, a tenant, Apple's key).

Each preset was written from the provider's published documentation and discovery document (no
test reaches the provider itself):
- google: OpenID Connect at https://accounts.google.com (its discovery document's issuer; its ID
  tokens may also say "accounts.google.com", which is accepted for this preset only).
- entra: Microsoft Entra ID v2.0 at https://login.microsoftonline.com/{tenant}/v2.0. The tenant is
  its id (a GUID): "common", "organizations" and "consumers" publish a templated issuer
  (`{tenantid}`) that an exact issuer check cannot accept, and a domain name's discovery document
  names the GUID, so it would fail the same check.
- apple: Sign in with Apple at https://appleid.apple.com. Its client secret is a JWT signed ES256
  with the .p8 key Apple issued (iss: team id, sub: the client id (Services ID), aud: Apple, kid:
  the key id), made afresh for each code exchange; the key is stored encrypted like any client
  secret. Apple answers with a cross-site form post (`response_mode=form_post`, required when a
  name or email is asked for), so it is for customers: the storefront's callback page takes the
  post and calls /auth/customer/{provider}/callback, as with any provider.
- github: plain OAuth 2 (no ID token, federation/github.py). `--issuer` may name a GitHub
  Enterprise Server host instead of https://github.com.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tillkey.errors import InvalidRequest

if TYPE_CHECKING:
    from tillkey.federation.providers import NewProvider
    from tillkey.store.idps import Provider

PRESETS = ("google", "entra", "apple", "github")
GOOGLE = "https://accounts.google.com"
ENTRA = "https://login.microsoftonline.com/{tenant}/v2.0"
APPLE = "https://appleid.apple.com"
GITHUB = "https://github.com"
APPLE_SECRET_SECONDS = 300  # Apple accepts up to six months; one exchange needs a few seconds
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")
_DEFAULT_SCOPE = "openid email profile"
_NAMES = {"google": "Google", "entra": "Microsoft", "apple": "Apple", "github": "GitHub"}


def filled(new: NewProvider) -> NewProvider:
    """`new` with its preset's endpoints and defaults; what the operator gave explicitly stays,
    except an issuer that contradicts the preset (only GitHub's may differ: Enterprise Server)."""
    if new.preset is None:
        return new
    if new.preset not in PRESETS:
        raise InvalidRequest(f"The preset must be one of {', '.join(PRESETS)}.")
    named = replace(new, display_name=new.display_name or _NAMES[new.preset])
    return {"google": _google, "entra": _entra, "apple": _apple, "github": _github}[new.preset](named)


def _issuer(new: NewProvider, issuer: str) -> NewProvider:
    if new.issuer and new.issuer != issuer:
        raise InvalidRequest(f"The {new.preset} preset's issuer is {issuer}: leave --issuer out.")
    return replace(new, issuer=issuer, protocol="oidc")


def _google(new: NewProvider) -> NewProvider:
    return _issuer(new, GOOGLE)


def _entra(new: NewProvider) -> NewProvider:
    tenant = (new.settings.get("tenant") or "").strip().lower()
    if not _GUID.match(tenant):
        raise InvalidRequest(
            "The entra preset needs --tenant: the directory (tenant) id, a GUID (not common, organizations, "
            "consumers or a domain name: their issuer is not the tenant's)."
        )
    groups = new.groups_claim or ("groups" if new.role_map else None)  # Entra's groups claim: object ids
    return replace(_issuer(new, ENTRA.format(tenant=tenant)), groups_claim=groups, settings={"tenant": tenant})


def _apple(new: NewProvider) -> NewProvider:
    team, key_id = (new.settings.get(k, "").strip() for k in ("team_id", "key_id"))
    if not _APPLE_ID.match(team) or not _APPLE_ID.match(key_id):
        raise InvalidRequest("The apple preset needs --team-id and --key-id: 10 letters or digits each, from Apple.")
    if new.actor != "customer":
        raise InvalidRequest(
            "The apple preset is for customers: Apple answers by a cross-site form post, which the console's "
            "browser-bound sign-in refuses."
        )
    if not new.client_secret:
        raise InvalidRequest(
            "The apple preset needs --private-key-file: the .p8 key Apple issued for Sign in with Apple."
        )
    check_apple_key(new.client_secret)
    scope = new.scope if new.scope != _DEFAULT_SCOPE else "openid email name"
    return replace(_issuer(new, APPLE), scope=scope, settings={"team_id": team, "key_id": key_id})


def _github(new: NewProvider) -> NewProvider:
    scope = new.scope if new.scope != _DEFAULT_SCOPE else "read:user user:email"
    return replace(new, issuer=new.issuer or GITHUB, protocol="github", scope=scope)


def check_apple_key(pem: str) -> None:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidRequest("The Apple key is not a PEM private key (the .p8 file's text).") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidRequest("The Apple key must be an ES256 (P-256) key, as Apple issues them.")


def apple_client_secret(client_id: str, settings: Mapping[str, str], pem: str, now: int) -> str:
    """Apple's client secret: a JWT signed ES256 with the .p8 key (PyJWT), short-lived."""
    claims = {"iss": settings["team_id"], "iat": now, "exp": now + APPLE_SECRET_SECONDS, "aud": APPLE, "sub": client_id}
    return jwt.encode(claims, pem, algorithm="ES256", headers={"kid": settings["key_id"]})


def issuers(provider: Provider) -> list[str]:
    """The `iss` values an ID token may carry: the configured issuer, and for Google also the
    scheme-less "accounts.google.com" its documentation says tokens may carry."""
    return [provider.issuer, *(["accounts.google.com"] if provider.preset == "google" else [])]


def authorization_params(preset: str | None) -> dict[str, str]:
    """Parameters a preset adds to the authorization request."""
    return {"response_mode": "form_post"} if preset == "apple" else {}
