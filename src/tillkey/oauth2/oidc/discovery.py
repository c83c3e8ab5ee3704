"""OpenID Connect Discovery 1.0 §3: the RFC 8414 metadata plus the OpenID Provider fields."""

from __future__ import annotations

from typing import Any

from tillkey.access.stepup import ACR_VALUES
from tillkey.oauth2.rfc8414 import metadata
from tillkey.settings import Settings


def openid_configuration(settings: Settings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3."""
    return {
        **metadata(settings),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.jwt_alg],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "azp",
            "at_hash",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
        ],
        "acr_values_supported": list(ACR_VALUES),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
