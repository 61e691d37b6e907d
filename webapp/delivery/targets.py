"""Where the service may send a request of its own (webhooks): resolve a URL's host the way the
sender will, refuse internal addresses, and pin the connection to the address that was checked.

Flask-free. `check(url)` takes the URL apart as `requests` does and resolves its host with
`socket.getaddrinfo`, as urllib3 does, so every spelling the socket layer accepts (`2130706433`,
`0x7f000001`, `0177.0.0.1`, `127.1`, `0`, `[::ffff:127.0.0.1]`, a name that resolves to 127.0.0.1)
means here what it means on the wire. It refuses the URL when *any* of the addresses is not
publicly routable: loopback, private, link-local, multicast, reserved, unspecified, shared
(100.64/10), documentation... and IPv6 forms that carry such an IPv4 address (mapped, 6to4,
NAT64).

`PinnedAdapter` is a requests adapter that runs that check itself, once per request, and
connects to the checked address while the Host header, TLS SNI and certificate verification keep
the URL's name: a DNS answer that changes between the check and the connection (rebinding)
cannot send the request anywhere else. Through an HTTP proxy (`HTTP_PROXY`), a plain-http
request names the host to the proxy, which resolves it again: there the proxy is the control.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.connection import allowed_gai_family

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as strings; raises OSError when it does not.
Resolver = Callable[[str, int], Iterable[str]]
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """A URL the service will not or cannot send to. `reason` names the host and the address at
    fault, never the rest of the URL (its path or query may hold the operator's token)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RefusedTarget(requests.RequestException):
    """`TargetRefused` raised inside a request sent through `PinnedAdapter`."""

    def __init__(self, reason: str, **kwargs):
        super().__init__(reason, **kwargs)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A URL's destination as the sender connects to it."""

    scheme: str
    host: str                       # lower case, IDNA-encoded, IPv6 without brackets
    port: int
    addresses: tuple[Address, ...]  # resolved, in getaddrinfo's order of preference

    @property
    def address(self) -> Address:
        """The address to connect to (the first, as a plain connection would try first)."""
        return self.addresses[0]

    @property
    def host_header(self) -> str:
        """The Host header a connection to the name would send (port only when not the default)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve as urllib3 does when it connects: getaddrinfo, IPv6 too where the host has it."""
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _short(host: str) -> str:
    return host if len(host) <= 80 else host[:77] + "..."


def split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL exactly as requests will connect to it; raises
    TargetRefused for a URL requests could not send."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        parts = urlparse(prepared.url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except (requests.RequestException, ValueError, UnicodeError):
        raise TargetRefused("not a valid http(s) URL") from None
    if scheme not in DEFAULT_PORTS or not host:
        raise TargetRefused("not a valid http(s) URL")
    return scheme, str(host), port or DEFAULT_PORTS[scheme]


def internal_kind(address: Address) -> str | None:
    """What makes an address internal ("loopback", "private", ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (kind := internal_kind(embedded)):
            return kind
    for kind, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                       ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return kind
    return None if address.is_global else "non-public"


def resolve(url: str, resolver: Resolver | None = None) -> Target:
    """The URL's destination with every address its host resolves to now."""
    scheme, host, port = split(url)
    try:
        found = list(dict.fromkeys((resolver or system_resolver)(host, port)))
        addresses = tuple(ipaddress.ip_address(a) for a in found)
    except (OSError, UnicodeError, ValueError):
        raise TargetRefused(f"{_short(host)} does not resolve") from None
    if not addresses:
        raise TargetRefused(f"{_short(host)} does not resolve")
    return Target(scheme, host, port, addresses)


def check(url: str, allow_private: bool = False, resolver: Resolver | None = None) -> Target:
    """Resolve the URL's host and, unless `allow_private`, refuse it if any address is internal
    (or the name is `localhost` or under `.localhost`, which are loopback by definition)."""
    _scheme, host, _port = split(url)
    name = host.rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise TargetRefused(f"{_short(host)} is a loopback name")
    target = resolve(url, resolver)
    if not allow_private:
        for address in target.addresses:
            if kind := internal_kind(address):
                shown = "" if str(address) == host else f" resolves to {address}, which"
                raise TargetRefused(f"{_short(host)}{shown} is a {kind} address")
    return target


class PinnedAdapter(HTTPAdapter):
    """Resolves and checks each request's host with `target_for(url)` (which raises
    TargetRefused), then connects to that very address: Host header, SNI and certificate
    verification stay on the URL's name. Needs requests 2.32.2 or later (the adapter hook
    `build_connection_pool_key_attributes`); refuses to be built without it rather than send
    unpinned."""

    def __init__(self, target_for: Callable[[str], Target], **kwargs):
        if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):
            raise RuntimeError("pinned webhook connections need requests 2.32.2 or later")
        self.target_for = target_for
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        try:
            target = self.target_for(request.url)
        except TargetRefused as refused:
            raise RefusedTarget(refused.reason, request=request) from None
        host_params.update(host=str(target.address), port=target.port)
        if target.scheme == "https":
            pool_kwargs["server_hostname"] = target.host
            pool_kwargs["assert_hostname"] = target.host
        request.headers["Host"] = target.host_header
        return host_params, pool_kwargs
