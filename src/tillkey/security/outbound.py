"""Outbound calls to URLs an operator typed in (an integration's endpoint): the SSRF guard.

The threat: whoever may save an integration (or controls DNS for a name they save) points Tillkey
at 127.0.0.1, the cloud metadata service (169.254.169.254), or a host of the private network, and
learns from activation what answers there. So, unless the operator allows private endpoints:

- when the URL is saved, a literal address that is not global is refused, in every spelling a
  resolver accepts (`2130706433`, `0x7f.1`, `017700000001`, `[::ffff:127.0.0.1]`), and so are
  `localhost` names, user info (`http://good@127.0.0.1/`) and backslashes (parsers disagree on them);
- when the URL is called, the name is resolved and every address must be global (a name that
  resolves to 127.0.0.1, or rebinds to it after it was saved, is refused), and the request goes to
  the address that was checked, not to a second resolution; redirects are never followed;
- the caller learns "delivered" or one generic failure, never the status, body or error of the
  target (the reason goes to the log only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 1024
# NAT64 prefixes (RFC 6052, RFC 8215): the low 32 bits are an IPv4 address the gateway reaches.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class RefusedURL(ValueError):
    """The URL is not one Tillkey calls (the message is safe to show to whoever saved it)."""


class Undeliverable(Exception):
    """The call did not deliver; `str()` is the private reason, for the log only."""


def is_public(addr: IPAddress) -> bool:
    """True for a globally routable unicast address; IPv6 forms that embed an IPv4 address
    (mapped, 6to4, Teredo, NAT64) are judged by the address they embed."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return is_public(addr.ipv4_mapped)
        if addr.sixtofour is not None:
            return is_public(addr.sixtofour)
        if addr.teredo is not None:
            return all(is_public(a) for a in addr.teredo)
        if any(addr in net for net in _NAT64):
            return is_public(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
        if addr.is_site_local:
            return False
    return addr.is_global and not addr.is_multicast and not addr.is_unspecified and not addr.is_reserved


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling the C resolver accepts (inet_aton:
    decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`), or None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761 §6.3


def check_url(value: str, *, allow_private: bool, what: str = "URL") -> str:
    """A URL fit to be saved and called later, or RefusedURL saying why."""
    if len(value) > MAX_URL_LENGTH or any(c in value for c in "\\\x00\t\r\n "):
        raise RefusedURL(f"The {what} must be an http(s) URL of at most {MAX_URL_LENGTH} characters.")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise RefusedURL(f"The {what} must be an http(s) URL of at most {MAX_URL_LENGTH} characters.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise RefusedURL(f"The {what} must be an http(s) URL of at most {MAX_URL_LENGTH} characters.")
    if url.userinfo:
        raise RefusedURL(f"The {what} must not carry a user name or password.")
    # Two parsers must agree on the host (the one that checks and the one that connects).
    split_host = (urlsplit(value).hostname or "").lower()
    if split_host not in (url.host.lower().strip("[]"), url.raw_host.decode("ascii", "replace").lower().strip("[]")):
        raise RefusedURL(f"The {what} names its host ambiguously; write the host plainly.")
    if not allow_private:
        addr = literal_address(url.host)
        if _is_localhost(url.host) or (addr is not None and not is_public(addr)):
            raise RefusedURL(
                f"The {what} points to a loopback, private or link-local address; "
                "set TILLKEY_INTEGRATION_ALLOW_PRIVATE_ENDPOINTS=true to allow that."
            )
    return value


async def _resolve(host: str, port: int, seconds: float) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), seconds)
    except (OSError, TimeoutError) as exc:
        raise Undeliverable(f"cannot resolve {host}: {type(exc).__name__}") from None
    # Drop an IPv6 zone ("fe80::1%eth0"): the address alone is what is judged.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that applies the guard to every request an httpx client (or a library
    built on one, such as Authlib's OAuth 2 client) sends: the URL is checked, the name resolved,
    every address judged, and the connection made to the address that was checked."""

    def __init__(self, *, allow_private: bool, seconds: float) -> None:
        self.allow_private = allow_private
        self.seconds = seconds
        self._inner = httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        try:
            check_url(url, allow_private=self.allow_private)
        except RefusedURL as exc:
            raise Undeliverable(f"refused URL: {exc}") from None
        name = request.url.raw_host.decode("ascii")
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        addresses = await _resolve(name, port, self.seconds)
        if not self.allow_private:
            refused = [str(a) for a in addresses if not is_public(a)]
            if refused or not addresses:
                raise Undeliverable(f"{name} resolves to non-global address(es) {', '.join(refused)}")
        if literal_address(name) is None:
            # The Host header was set from the name when the request was built; SNI follows it too.
            request.url = request.url.copy_with(host=str(addresses[0]))
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": name}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def post_form(url: str, data: Mapping[str, str], *, allow_private: bool, seconds: float) -> None:
    """POST a form to a saved URL; returns when the target answered 2xx, else Undeliverable."""
    try:
        check_url(url, allow_private=allow_private)
    except RefusedURL as exc:
        raise Undeliverable(f"refused URL: {exc}") from None
    target = httpx.URL(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    name = target.raw_host.decode("ascii")  # IDNA-encoded, as DNS, Host and SNI want it
    addresses = await _resolve(name, port, seconds)
    if not allow_private:
        refused = [str(a) for a in addresses if not is_public(a)]
        if refused or not addresses:
            raise Undeliverable(f"{name} resolves to non-global address(es) {', '.join(refused)}")
    # Connect to the address just checked: a second lookup could answer differently (DNS rebinding).
    pinned = target.copy_with(host=str(addresses[0]))
    headers: dict[str, str] = {}
    extensions: dict[str, str] = {}
    if literal_address(name) is None:  # a name: keep it in Host and in TLS SNI (and the certificate check)
        headers["Host"] = name if target.port is None else f"{name}:{target.port}"
        if target.scheme == "https":
            extensions["sni_hostname"] = name
    try:
        async with httpx.AsyncClient(timeout=seconds, follow_redirects=False, trust_env=False) as client:
            answer = await client.post(pinned, data=dict(data), headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        raise Undeliverable(f"{type(exc).__name__}: {exc}") from None
    if not answer.is_success:
        raise Undeliverable(f"the endpoint answered HTTP {answer.status_code}")
