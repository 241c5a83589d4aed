"""macOS: ``sysctl``, ``scutil --dns`` and BSD ``route``.

* OS name: ``macOS`` and the product version (``platform.mac_ver()``).
* CPU model: ``sysctl -n machdep.cpu.brand_string``.
* Mounts: the sealed system volumes under ``/System/Volumes/`` are left out; ``/``
  already shows their space.
* Default gateway: ``route -n get default``; DNS servers: resolv.conf, and where it
  lists none, the resolvers of ``scutil --dns``; ``ping6`` for an IPv6 gateway, and
  ``-W`` in milliseconds.

Not run on the test machines: tested by contract, against outputs in the formats of
its tools (tests/agent/diagnostics/platforms).
"""

from __future__ import annotations

import platform
from typing import ClassVar

from deskside.protocol.messages import OsFamily

from .base import Host
from .posix import BsdNetwork

__all__ = ["MacHost", "MacNetwork", "parse_scutil_dns"]


def parse_scutil_dns(text: str) -> list[str]:
    """The ``nameserver[n]`` addresses in the output of ``scutil --dns``, in order."""
    servers: list[str] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key.startswith("nameserver[") and value.strip() not in servers:
            servers.append(value.strip())
    return servers


class MacHost(Host):
    """macOS: sysctl for the CPU, and the system volumes left out."""

    family: ClassVar[OsFamily] = OsFamily.MACOS

    def os_name(self) -> str:
        """``macOS 15.1``."""
        return f"macOS {platform.mac_ver()[0]}".strip()

    def cpu_model(self) -> str:
        """``machdep.cpu.brand_string``, else Python's guess."""
        tool = self.tools.find("sysctl")
        if tool is not None:
            result = self.tools.run([tool, "-n", "machdep.cpu.brand_string"], timeout=2.0)
            if result.returncode == 0 and result.stdout.strip():
                return result.stdout.strip()
        return super().cpu_model()

    def hides_mount(self, mountpoint: str) -> bool:
        """The sealed system volumes (``/System/Volumes/...``)."""
        return mountpoint.startswith("/System/Volumes/")


class MacNetwork(BsdNetwork):
    """macOS: BSD route and ping, and scutil where resolv.conf names no server."""

    def dns_servers(self) -> list[str]:
        """resolv.conf's servers; if there are none, those of ``scutil --dns``."""
        servers = super().dns_servers()
        if not servers:
            tool = self.tools.find("scutil")
            if tool is not None:
                result = self.tools.run([tool, "--dns"], timeout=2.0)
                servers = parse_scutil_dns(result.stdout)
        return servers

    def ping_tool(self, gateway: str) -> str:
        """``ping6`` for an IPv6 gateway: macOS's ``ping`` speaks IPv4 only."""
        return "ping6" if ":" in gateway else "ping"
