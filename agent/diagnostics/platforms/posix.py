"""What the Unixes share: resolv.conf, ``route -n get default``; the BSDs and the rest.

* DNS servers: the ``nameserver`` lines of ``/etc/resolv.conf``; behind the local stub
  of systemd-resolved, also the upstream servers it lists in
  ``/run/systemd/resolve/resolv.conf``.
* Default gateway: the ``gateway:`` line of ``route -n get default`` (BSD route).
* ``ping -n -c 1 -W 1`` (seconds) here; the BSDs' ``-W`` counts milliseconds.
* ``PosixHost``, for a Unix Deskside has no backend of its own for: family "other",
  the name ``platform.system()`` gives.
"""

from __future__ import annotations

import platform
from typing import ClassVar, Final

from deskside.agent.diagnostics.commands import Tools
from deskside.protocol.messages import OsFamily

from .base import Host, Network

__all__ = [
    "BsdNetwork",
    "PosixHost",
    "PosixNetwork",
    "parse_resolv_conf",
    "parse_route_get",
    "read_text",
]

# The local stub of systemd-resolved, which hides the real servers.
_RESOLVED_STUBS: Final = frozenset({"127.0.0.53", "127.0.0.54"})


def read_text(path: str) -> str | None:
    """The first MiB of a text file, or None if it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read(1 << 20)
    except OSError:
        return None


def parse_resolv_conf(text: str) -> list[str]:
    """The ``nameserver`` addresses in the text of a resolv.conf, in order."""
    servers: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and fields[1] not in servers:
            servers.append(fields[1])
    return servers


def parse_route_get(text: str) -> str | None:
    """The gateway in the output of ``route -n get default`` (macOS, the BSDs)."""
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "gateway" and value.strip():
            return value.strip()
    return None


class PosixHost(Host):
    """A Unix without a backend of its own: what Python knows about it."""

    family: ClassVar[OsFamily] = OsFamily.OTHER

    def __init__(self, platform_name: str, tools: Tools | None = None) -> None:
        super().__init__(tools)
        # Python's name for the platform ("freebsd14", "sunos5"): the name of last resort.
        self.platform_name = platform_name

    def os_name(self) -> str:
        """``platform.system()``, else Python's name for the platform."""
        return platform.system() or self.platform_name


class PosixNetwork(Network):
    """BSD ``route``, resolv.conf and a ``ping`` whose ``-W`` counts seconds."""

    def default_gateway(self) -> str | None:
        """``route -n get default``; None without the tool or a default route."""
        tool = self.tools.find("route")
        if tool is None:
            return None
        return parse_route_get(self.tools.run([tool, "-n", "get", "default"], timeout=2.0).stdout)

    def dns_servers(self) -> list[str]:
        """The servers of resolv.conf; behind systemd-resolved's stub, its upstreams too."""
        servers = parse_resolv_conf(read_text("/etc/resolv.conf") or "")
        if servers and set(servers) <= _RESOLVED_STUBS:
            upstream = read_text("/run/systemd/resolve/resolv.conf")
            if upstream:
                servers += [s for s in parse_resolv_conf(upstream) if s not in servers]
        return servers

    def ping_argv(self, tool: str, gateway: str) -> list[str]:
        """``ping -n -c 1 -W 1 GATEWAY``."""
        return [tool, "-n", "-c", "1", "-W", "1", gateway]


class BsdNetwork(PosixNetwork):
    """The BSDs: as any Unix, but ``ping -W`` counts milliseconds."""

    def ping_argv(self, tool: str, gateway: str) -> list[str]:
        """``ping -n -c 1 -W 1000 GATEWAY``."""
        return [tool, "-n", "-c", "1", "-W", "1000", gateway]
