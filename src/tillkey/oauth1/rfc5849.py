"""RFC 5849 signed requests as Magento verifies them (magento.md §7, lib/.../Framework/Oauth/Oauth.php).

The crypto and the base-string pieces are oauthlib's (oauthlib.oauth1.rfc5849.signature). What is
Tillkey's: which parameters are signed (the OAuth header, a form body and the query; never a JSON
body), Magento's error texts, and Laminas' natural-order parameter sort (strnatcmp), accepted
beside RFC 5849's byte order because PHP clients written against Magento sign that way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from oauthlib.oauth1.rfc5849 import signature, utils

from tillkey.crypto.secrets import constant_time_equals
from tillkey.errors import InvalidRequest, TillkeyError, Unauthenticated
from tillkey.parsing import ascii_int

HMAC_SHA256 = "HMAC-SHA256"
HMAC_SHA1 = "HMAC-SHA1"
TIMESTAMP_AHEAD = 600  # seconds a timestamp may be ahead of the server's clock (Magento)
TOKEN_LENGTH = 32  # consumer keys, tokens and secrets: 32 characters of [0-9a-z] (magento.md §7)
NONCE_MAX = 128  # the nonce column's size

# Magento's texts (lib/.../Framework/Oauth/Oauth.php, Integration/Model/Oauth/Nonce/Generator.php).
REQUIRED = '"%fieldName" is required. Enter and try again.'
BAD_SIGNATURE = "The signature is invalid. Verify and try again."
BAD_METHOD = "Signature method %1 is not supported"
BAD_VERSION = 'The "%1" Oauth version isn\'t supported.'
BAD_NONCE = "An error occurred validating the nonce"
USED_NONCE = "The nonce is already being used by the consumer with ID %1"
KEY_LENGTH = "Consumer key is not the correct length"
TOKEN_LENGTH_INVALID = "The token length is invalid. Check the length and try again."  # noqa: S105


class SignatureRefused(Unauthenticated):
    """A refused OAuth 1.0a request. Unlike a bad bearer token, Magento tells the client (§7)."""

    tell_client = True


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The protocol parameters of one request and what its signature covers."""

    method: str
    uri: str  # scheme://host[:port]/path as the client addressed it (no query)
    params: tuple[tuple[str, str], ...]  # every signed parameter, oauth_signature excluded
    # Magento's view of the same parameters: one value per name, query over body over header
    # (Oauth\Helper\Request::_processRequest merges them into one PHP array).
    merged: tuple[tuple[str, str], ...]
    oauth: dict[str, str]  # the oauth_* parameters, oauth_signature included

    @property
    def consumer_key(self) -> str:
        return self.oauth["oauth_consumer_key"]

    @property
    def token(self) -> str | None:
        return self.oauth.get("oauth_token")


def parse(
    method: str,
    uri: str,
    header: str,
    query: str = "",
    form_body: str = "",
) -> SignedRequest:
    """Collect the signed parameters (RFC 5849 §3.4.1.3.1) from an `Authorization: OAuth` header,
    the query and a form-encoded body. Raises InvalidRequest for an unreadable header."""
    header_params: list[tuple[str, str]] = []
    if header:
        try:
            header_params = [
                (k, utils.unescape(v)) for k, v in utils.parse_authorization_header(header) if k != "realm"
            ]
        except (ValueError, TypeError):
            raise InvalidRequest("The OAuth Authorization header cannot be read.") from None
    query_params = parse_qsl(query, keep_blank_values=True)
    body_params = parse_qsl(form_body, keep_blank_values=True) if form_body else []
    params = [*query_params, *header_params, *body_params]
    oauth: dict[str, str] = {}
    for k, v in params:
        if k.startswith("oauth_"):
            oauth.setdefault(k, v)
    merged = {k: v for k, v in [*header_params, *body_params, *query_params] if k != "oauth_signature"}
    signed = tuple((k, v) for k, v in params if k != "oauth_signature")
    return SignedRequest(method.upper(), uri, signed, tuple(merged.items()), oauth)


def check_protocol(req: SignedRequest, *, now: int, required: Sequence[str], allow_sha1: bool, max_age: int) -> None:
    """Magento's checks before any secret is touched: required parameters, version, method,
    timestamp, key and token lengths."""
    missing = [
        name
        for name in (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
            *required,
        )
        if not req.oauth.get(name)
    ]
    if missing:
        errors: list[TillkeyError] = [InvalidRequest(REQUIRED, parameters={"fieldName": m}) for m in missing]
        raise InvalidRequest(errors[0].message, parameters=errors[0].parameters, errors=errors)
    version = req.oauth.get("oauth_version")
    if version is not None and version != "1.0":
        raise SignatureRefused(BAD_VERSION, parameters=[version[:20]], detail="bad oauth_version")
    method = req.oauth["oauth_signature_method"]
    if method != HMAC_SHA256 and not (allow_sha1 and method == HMAC_SHA1):
        raise InvalidRequest(BAD_METHOD, parameters=[method[:40]], detail="unsupported signature method")
    ts = req.oauth["oauth_timestamp"]
    # Magento: > 0 and at most 600 s ahead. Magento sets no lower bound; Tillkey refuses timestamps
    # older than the nonces it keeps (max_age), or pruning a nonce would allow its replay.
    seconds = ascii_int(ts, 12)
    if seconds is None or seconds > now + TIMESTAMP_AHEAD:
        raise SignatureRefused(BAD_NONCE, detail="timestamp not a number or too far ahead")
    if seconds <= 0 or seconds < now - max_age:
        raise SignatureRefused(BAD_NONCE, detail="timestamp too old")
    if len(req.oauth["oauth_nonce"]) > NONCE_MAX:
        raise SignatureRefused(BAD_NONCE, detail="nonce too long")
    if len(req.consumer_key) != TOKEN_LENGTH:
        raise SignatureRefused(KEY_LENGTH, detail="consumer key length")
    token = req.token
    if token is not None and len(token) != TOKEN_LENGTH:
        raise SignatureRefused(TOKEN_LENGTH_INVALID, detail="token length")


# --- signatures -----------------------------------------------------------------------------------


def _strnatcmp(a: str, b: str) -> int:
    """PHP's strnatcmp for the characters RFC 3986 encoding leaves ([A-Za-z0-9-._~%]): runs of
    digits compare as numbers, everything else byte by byte."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i].isdigit() and b[j].isdigit():
            ei, ej = i, j
            while ei < len(a) and a[ei].isdigit():
                ei += 1
            while ej < len(b) and b[ej].isdigit():
                ej += 1
            na, nb = int(a[i:ei]), int(b[j:ej])
            if na != nb:
                return -1 if na < nb else 1
            i, j = ei, ej
            continue
        if a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i += 1
        j += 1
    rest = (len(a) - i) - (len(b) - j)
    return (rest > 0) - (rest < 0)


def _natural_pair(x: tuple[str, str], y: tuple[str, str]) -> int:
    return _strnatcmp(x[0], y[0]) or _strnatcmp(x[1], y[1])


def natural_normalized(params: Sequence[tuple[str, str]]) -> str:
    """Laminas' toByteValueOrderedQueryString: encoded names in strnatcmp order (uksort), the
    values of a repeated name in natural order (natsort)."""
    encoded = [(utils.escape(k), utils.escape(v)) for k, v in params]
    encoded.sort(key=functools.cmp_to_key(_natural_pair))
    return "&".join(f"{k}={v}" for k, v in encoded)


def base_strings(req: SignedRequest) -> list[str]:
    """The signature base strings a client may have signed: RFC 5849's (every parameter, byte
    order), Magento's (one value per name, natural order), and one value per name in byte order
    (clients that keep parameters in a map, such as oauth-1.0a, and send one twice)."""
    uri = signature.base_string_uri(req.uri)
    normalized = [
        signature.normalize_parameters(list(req.params)),
        natural_normalized(req.merged),
        signature.normalize_parameters(list(req.merged)),
    ]
    return [signature.signature_base_string(req.method, uri, n) for n in dict.fromkeys(normalized)]


@dataclass(frozen=True, slots=True)
class _Secrets:
    """What oauthlib's sign_*_with_client functions read from a client."""

    client_secret: str
    resource_owner_secret: str


def verify(req: SignedRequest, consumer_secret: str, token_secret: str) -> bool:
    """Whether oauth_signature matches. Every candidate is computed and compared in constant
    time, whatever matched first, so timing tells nothing about which order or secret was wrong."""
    sha1 = req.oauth["oauth_signature_method"] == HMAC_SHA1
    sign = signature.sign_hmac_sha1_with_client if sha1 else signature.sign_hmac_sha256_with_client
    keys = _Secrets(consumer_secret, token_secret)
    given = req.oauth.get("oauth_signature", "")
    try:
        candidates = base_strings(req)
    except ValueError:  # a URI oauthlib cannot normalize (a bad port, say)
        return False
    ok = False
    for base in candidates:
        ok |= constant_time_equals(sign(base, keys), given)
    return ok
