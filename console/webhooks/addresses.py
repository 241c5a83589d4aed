"""Where webhooks may go: the guard against server-side request forgery.

An endpoint's URL is chosen by whoever manages webhooks; without a guard it could
make the console POST to its own admin ports, a cloud's metadata service
(169.254.169.254) or anything on the internal network. So:

* only ``http`` and ``https`` URLs, without user information, are accepted;
* every address the host name resolves to must be *public*: loopback,
  link-local, private (RFC 1918, unique-local), shared (100.64/10), multicast,
  reserved, unspecified, IPv4-mapped forms of those, and the console's own
  addresses are refused;
* unless the address is in a network the admin allowed explicitly in
  ``console.toml``::

      [webhooks]
      allow_networks = ["127.0.0.0/8", "10.20.0.0/16"]

The check runs when an endpoint is added and again at every send, on the
addresses resolved for that send; the dispatcher then connects to the address it
checked (``pinned``), not to a name resolved a second time, so a DNS answer that
changes between check and connection (DNS rebinding) cannot get around it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from deskside.console.errors import InvalidRequest

__all__ = [
    "Address",
    "AddressGuard",
    "Destination",
    "ForbiddenAddress",
    "Network",
    "check_url",
    "own_addresses",
    "parse_networks",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (``getaddrinfo`` off the event loop).
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL: Final = 2048
# How long a name may take to resolve.
RESOLVE_TIMEOUT: Final = 5.0
# Networks refused besides what ``ipaddress`` calls non-global: 100.64/10 (shared, CGNAT)
# is not private to ``ipaddress`` but is no public destination either.
_ALSO_REFUSED: Final = (ipaddress.ip_network("100.64.0.0/10"),)


class ForbiddenAddress(InvalidRequest):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


def check_url(url: str) -> SplitResult:
    """The parts of an endpoint URL; ``InvalidRequest`` unless it is an absolute
    ``http``/``https`` URL with a host, without user information or fragment."""
    if not url or len(url) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidRequest(f"a webhook URL is 1-{MAX_URL} printable characters, no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("a webhook URL is http:// or https://")
    if not parts.hostname:
        raise InvalidRequest("a webhook URL names a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("a webhook URL carries no user or password")
    if parts.fragment:
        raise InvalidRequest("a webhook URL has no #fragment")
    if port == 0:
        raise InvalidRequest("a webhook URL's port is 1-65535")
    return parts


def _refused(address: Address) -> str | None:
    """Why ``address`` is no public destination, or None if it is one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _refused(address.ipv4_mapped)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("shared", any(address in net for net in _ALSO_REFUSED)),
        ("not global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def own_addresses(names: Iterable[str]) -> frozenset[Address]:
    """The addresses of this machine's names (its host name, the console's public
    host, its listening address), as far as the resolver knows them."""
    found: set[Address] = set()
    for name in names:
        if not name or name in ("0.0.0.0", "::"):  # noqa: S104 - wildcards, not addresses
            continue
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError:
            continue
        for info in infos:
            try:
                found.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            except ValueError:
                continue
    return frozenset(found)


@dataclass(frozen=True)
class Destination:
    """Where one send goes: the URL, and the checked address to connect to."""

    url: str
    host: str
    address: str


class AddressGuard:
    """Decides which addresses webhooks may reach (see the module's docstring).

    (A plain class, not a dataclass: Litestar would try to validate a dataclass's
    fields when it hands the guard to a route.)
    """

    def __init__(
        self,
        allow_networks: Sequence[Network] = (),
        own: frozenset[Address] = frozenset(),
        resolver: Resolver = _resolve,
    ) -> None:
        # Networks the admin allowed, even if private, loopback or the console's own.
        self.allow_networks = tuple(allow_networks)
        # The console's own addresses, refused unless allowed.
        self.own = own
        # Name resolution (replaced in tests by a table of names).
        self._resolver = resolver

    def why_refused(self, address: Address) -> str | None:
        """Why webhooks may not reach ``address``; None if they may."""
        if any(address in net for net in self.allow_networks if net.version == address.version):
            return None
        if address in self.own:
            return "the console's own"
        return _refused(address)

    async def resolve(self, url: str) -> Destination:
        """Check ``url`` and every address its host resolves to; the first address.

        ``ForbiddenAddress`` if any address is refused (a name with one public and
        one private address is refused: which one a connection gets is not ours to
        choose), ``InvalidRequest`` if the URL is bad or the name does not resolve.
        """
        parts = check_url(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            literal: Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            names = [str(literal)]
        else:
            try:
                names = await asyncio.wait_for(self._resolver(host, port), RESOLVE_TIMEOUT)
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise InvalidRequest(f"cannot resolve {host!r}: {type(exc).__name__}") from exc
        addresses: list[Address] = []
        for name in names:
            try:
                addresses.append(ipaddress.ip_address(name.split("%")[0]))
            except ValueError:
                continue
        if not addresses:
            raise InvalidRequest(f"{host!r} resolves to no address")
        for address in addresses:
            reason = self.why_refused(address)
            if reason is not None:
                raise ForbiddenAddress(
                    f"{host} resolves to {address}, a {reason} address: webhooks may not go "
                    "there unless [webhooks] allow_networks in console.toml allows it"
                )
        return Destination(url=url, host=host, address=str(addresses[0]))


def parse_networks(values: Iterable[object]) -> tuple[Network, ...]:
    """CIDR networks; ``InvalidRequest`` naming the first that is not one."""
    networks = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidRequest(f"allow_networks holds CIDR strings, not {value!r}")
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise InvalidRequest(f"allow_networks: {value!r} is not a network") from exc
    return tuple(networks)
