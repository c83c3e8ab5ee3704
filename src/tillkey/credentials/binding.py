"""The one binding check: a sender-constrained token is used only by its holder.

Every credential kind that accepts Tillkey's access tokens, userinfo, forward-auth and the library
guard (tillkey/guard.py) call `check` with the token's confirmation claim (`cnf`, RFC 7800) and what
the request presented:

- DPoP (RFC 9449 §7): `Authorization: DPoP <token>` and one `DPoP` proof for this method and URL,
  carrying the token's hash (`ath`), signed by the key the token names (`cnf.jkt`);
- a bound token sent as `Bearer` is refused (§7.2: no downgrade), and so is an unbound one sent as
  `DPoP` (the scheme promises a binding the token does not have);
- mTLS (RFC 8705 §3): a token naming a client certificate (`cnf.x5t#S256`) is used only on a
  request whose certificate (passed by a trusted proxy, credentials/mtls.py) has that thumbprint,
  whatever the scheme; refused with a `Bearer error="invalid_token"` challenge. The same check,
  `require_certificate`, guards integrations bound to a certificate: their OAuth 1.0a signed calls,
  their token as Bearer and their token exchange (credentials/oauth1.py, oauth1/handshake.py);
- a `cnf` naming no method Tillkey knows is refused (fail closed).

A bearer token without `cnf` costs nothing here. Refusals are 401 with a `DPoP` challenge and are
told to the client (`tell_client`): a DPoP client must learn to retry with a nonce or a new proof.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import Scope

from tillkey.credentials.dpop import ALGORITHMS, DPoPVerifier, InvalidDPoPProof, UseDPoPNonce, public_url
from tillkey.credentials.mtls import presented
from tillkey.errors import Unauthenticated

if TYPE_CHECKING:
    from tillkey.principal import Principal
    from tillkey.tokens.contracts import TokenClaims
    from tillkey.tokens.service import Authenticator

# The request scope key forward-auth sets: the URL the client asked the proxy for (scheme, host, path).
ORIGINAL_URL = "tillkey.original_url"
# The token whose proof this request already passed (the credential registry, then a route that
# reads the token itself, such as userinfo): a proof is single-use, checked once per request.
_CHECKED = "tillkey.dpop_checked"
_ALGS = " ".join(ALGORITHMS)
_KNOWN = frozenset({"jkt", "x5t#S256"})
# RFC 6750 §3.1: a certificate-bound token presented without its certificate.
BEARER_CHALLENGE = 'Bearer error="invalid_token"'


class BindingRefused(Unauthenticated):
    tell_client = True


def challenge(error: str | None = None) -> str:
    """RFC 9449 §7.1: the `WWW-Authenticate: DPoP` challenge."""
    return f'DPoP algs="{_ALGS}"' + ("" if error is None else f', error="{error}"')


def refused(error: str, message: str, detail: str | None, headers: dict[str, str] | None = None) -> BindingRefused:
    exc = BindingRefused(message, detail=detail, headers={"WWW-Authenticate": challenge(error), **(headers or {})})
    exc.oauth_error = error
    return exc


class Binding:
    def __init__(
        self, dpop: DPoPVerifier, base_url: str | None, *, certificates: bool = True, alias_url: str = ""
    ) -> None:
        """`base_url`: whose origin (scheme, host, port) the proofs' `htu` names — the server's
        issuer, a guarded app's public URL; None: the request's own scheme and Host as received.
        `certificates`: False where no trusted proxy can pass client certificates (a guard without
        trusted_proxies): a certificate-bound token is then refused, saying why. `alias_url`: a
        second origin of the same server (TILLKEY_MTLS_BASE_URL, RFC 8705 §5): a client that
        reached an endpoint through its mTLS alias names that URL in its proof."""
        self._dpop = dpop
        self._base_url = base_url
        self._certificates = certificates
        self._alias_url = alias_url

    def urls_of(self, request: Request) -> tuple[str, ...]:
        """The URLs a proof on this request may name (`htu`): forward-auth's original request's;
        else the request's path under the public base URL, and under the mTLS alias if there is one.
        Every endpoint that checks a proof asks here (the token endpoints, every protected route)."""
        original = request.scope.get(ORIGINAL_URL)
        if isinstance(original, str):
            return (original,)
        # The path as sent (percent-escapes kept: `%2F` is not `/`), compared after normalisation.
        raw = request.scope.get("raw_path")
        path = (raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path).partition("?")[0]
        base = self._base_url
        if base is None:
            base = f"{request.url.scheme}://{request.url.netloc}"
        if not self._alias_url:
            return (public_url(base, path),)
        return public_url(base, path), public_url(self._alias_url, path)

    async def check(self, request: Request, scheme: str, token: str, cnf: dict[str, str] | None) -> None:
        """Raises BindingRefused unless the presentation fits the token's binding."""
        jkt = None if cnf is None else cnf.get("jkt")
        if cnf is not None:
            if not cnf or not _KNOWN.issuperset(cnf):
                raise refused("invalid_token", "This access token's binding is not understood.", "unknown cnf")
            require_certificate(request.scope, cnf.get("x5t#S256"), readable=self._certificates)
        if scheme != "dpop":
            if jkt is not None:
                raise refused(
                    "invalid_token", "This access token is bound: present it as DPoP.", "bound token as bearer"
                )
            return
        if jkt is None:
            raise refused("invalid_token", "This access token is not DPoP-bound.", "unbound token as DPoP")
        if request.scope.get(_CHECKED) == token:
            return
        proofs = request.headers.getlist("dpop")
        if len(proofs) != 1:
            raise refused("invalid_dpop_proof", "Send exactly one DPoP proof.", f"{len(proofs)} DPoP headers")
        try:
            proof = await self._dpop.verify(proofs[0], request.method, self.urls_of(request), access_token=token)
        except UseDPoPNonce as exc:
            raise refused("use_dpop_nonce", exc.message, exc.detail, exc.headers) from None
        except InvalidDPoPProof as exc:
            raise refused("invalid_dpop_proof", exc.message, exc.detail) from None
        if proof.jkt != jkt:
            raise refused("invalid_dpop_proof", "The DPoP proof is not signed by the token's key.", "jkt mismatch")
        request.scope[_CHECKED] = token


def require_certificate(
    scope: Scope,
    x5t: str | None,
    what: str = "access token",
    *,
    challenge: str | None = BEARER_CHALLENGE,
    readable: bool = True,
) -> None:
    """RFC 8705 §3.2: when `x5t` names a certificate (a token's `cnf.x5t#S256`, an integration's
    binding), the request's client certificate, as a trusted proxy passed it, is that one. None:
    unbound, nothing to check, so a caller passes what it holds and cannot forget the case.
    `challenge`: the WWW-Authenticate header (None for OAuth 1.0a, where Magento sends none).
    `readable`: False where no trusted proxy can pass certificates (a guard without
    trusted_proxies): a bound credential is then refused, saying why."""
    if x5t is None:
        return
    headers = None if challenge is None else {"WWW-Authenticate": challenge}
    if not readable:
        exc = BindingRefused(
            f"This {what} is bound to a client certificate, and this service reads none "
            "(no trusted TLS proxy is configured).",
            detail="certificate-bound credential where no proxy passes certificates",
            headers=headers,
        )
    else:
        cert = presented(scope)
        if cert is not None and hmac.compare_digest(cert.thumbprint.encode(), x5t.encode()):
            return
        exc = BindingRefused(
            f"This {what} is bound to another client certificate.",
            detail="no client certificate" if cert is None else "another client certificate",
            headers=headers,
        )
    exc.oauth_error = "invalid_token"
    raise exc


async def authenticate(
    authenticator: Authenticator, binding: Binding | None, request: Request, scheme: str, token: str
) -> tuple[Principal, TokenClaims]:
    """The caller of an access token presented with `scheme` ("bearer" or "dpop"), its binding
    checked: what every surface that reads Tillkey's access tokens calls. A bearer token without
    `cnf` goes straight through; where there is no binding check (`binding` None), a bound token
    or a DPoP presentation is refused."""
    principal, claims = await authenticator.authenticate_claims(token)
    if claims.cnf is not None or scheme != "bearer":
        if binding is None:
            raise refused("invalid_token", "Sender-constrained tokens are not accepted here.", "no binding check")
        await binding.check(request, scheme, token, claims.cnf)
    return principal, claims
