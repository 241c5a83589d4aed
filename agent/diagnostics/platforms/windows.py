"""Windows: the registry, ``route print`` and Windows' ``ping``.

* OS name: ``Windows`` with its release and edition; Windows 11 still calls itself
  release "10", so a build from 22000 on is named 11.
* CPU model: ``ProcessorNameString`` of the first processor in the registry.
* Processes: pid 0, the "System Idle Process", is left out (it reports idle time as
  CPU use).
* Default gateway: ``route print -4 0.0.0.0``, lowest metric first; DNS servers:
  ``NameServer`` and ``DhcpNameServer`` of each interface under the Tcpip and Tcpip6
  parameters in the registry; ``ping -n 1 -w 1000``.
* Tools run in the environment as it is: they read no POSIX locale variables.

Not run on the test machines: tested by contract, against outputs in the formats of
its tools and a registry given as a dictionary (tests/agent/diagnostics/platforms).
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import platform
import re
from typing import Any, ClassVar, Final, Protocol

from deskside.agent.diagnostics.commands import Tools
from deskside.protocol.messages import OsFamily

from .base import Host, Network

__all__ = [
    "Registry",
    "WindowsHost",
    "WindowsNetwork",
    "WindowsRegistry",
    "parse_name_servers",
    "parse_route_print",
    "windows_name",
]

# The default route's destination and mask in Windows' route table.
_ANY_V4: Final = "0.0.0.0"  # noqa: S104 (a route destination, not an address to bind)

# Where the first processor is described.
_CPU_KEY: Final = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"

# The TCP/IP parameters of each interface, IPv4 and IPv6.
_INTERFACE_KEYS: Final = tuple(
    rf"SYSTEM\CurrentControlSet\Services\{service}\Parameters\Interfaces"
    for service in ("Tcpip", "Tcpip6")
)

# The first build of Windows 11, which still says release "10".
_WINDOWS_11_BUILD: Final = 22000


class Registry(Protocol):
    """Reads ``HKEY_LOCAL_MACHINE``: the only way the backend touches the registry."""

    def value(self, key: str, name: str) -> object:
        """The value ``name`` of ``key``; ``OSError`` if either is missing."""
        ...

    def subkeys(self, key: str) -> list[str]:
        """The names of the subkeys of ``key``; ``OSError`` if it is missing."""
        ...


def _winreg() -> Any:
    # Imported by name: mypy checks this module as the OS it runs on, and winreg's
    # stubs are empty outside Windows.
    return importlib.import_module("winreg")


class WindowsRegistry:
    """The registry of this machine, through ``winreg`` (imported on first read)."""

    def value(self, key: str, name: str) -> object:
        """``QueryValueEx`` of ``name`` under ``HKEY_LOCAL_MACHINE\\key``."""
        winreg = _winreg()
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:
            value: object = winreg.QueryValueEx(handle, name)[0]
        return value

    def subkeys(self, key: str) -> list[str]:
        """``EnumKey`` of every subkey of ``HKEY_LOCAL_MACHINE\\key``."""
        winreg = _winreg()
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:
            count = int(winreg.QueryInfoKey(handle)[0])
            return [str(winreg.EnumKey(handle, index)) for index in range(count)]


def windows_name(release: str, version: str, edition: str | None) -> str:
    """``Windows 11 Professional`` from ``platform.release()``, ``version()``, edition."""
    build = version.split(".")[2:3]
    if release == "10" and build and build[0].isdigit() and int(build[0]) >= _WINDOWS_11_BUILD:
        release = "11"
    return f"Windows {release} {edition or ''}".strip()


def parse_route_print(text: str) -> str | None:
    """The IPv4 default gateway in the output of ``route print -4``, lowest metric first."""
    # "0.0.0.0  0.0.0.0  192.168.1.1  192.168.1.23  25" (words around it are localized)
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == fields[1] == _ANY_V4:
            with contextlib.suppress(ValueError):
                gateway = str(ipaddress.IPv4Address(fields[2]))
                metric = int(fields[4])
                if best is None or metric < best[0]:
                    best = (metric, gateway)
    return None if best is None else best[1]


def parse_name_servers(value: object) -> list[str]:
    """The addresses in a ``NameServer`` value (separated by spaces or commas)."""
    return [server for server in re.split(r"[\s,]+", str(value)) if server]


class WindowsHost(Host):
    """Windows: release and edition, the registry's CPU name, no idle process."""

    family: ClassVar[OsFamily] = OsFamily.WINDOWS

    def __init__(self, tools: Tools | None = None, registry: Registry | None = None) -> None:
        super().__init__(tools)
        # This machine's registry, or one given by a test.
        self.registry: Registry = registry or WindowsRegistry()

    def os_name(self) -> str:
        """``Windows 11 Professional``."""
        return windows_name(platform.release(), platform.version(), platform.win32_edition())

    def cpu_model(self) -> str:
        """``ProcessorNameString`` of the registry, else Python's guess."""
        with contextlib.suppress(OSError):
            return str(self.registry.value(_CPU_KEY, "ProcessorNameString")).strip()
        return super().cpu_model()

    def hides_process(self, pid: int) -> bool:
        """The "System Idle Process" (pid 0)."""
        return pid == 0


class WindowsNetwork(Network):
    """Windows: route print, the interfaces' name servers in the registry, ping -n."""

    c_locale: ClassVar[bool] = False

    def __init__(self, tools: Tools | None = None, registry: Registry | None = None) -> None:
        super().__init__(tools)
        # This machine's registry, or one given by a test.
        self.registry: Registry = registry or WindowsRegistry()

    def default_gateway(self) -> str | None:
        """``route print -4 0.0.0.0``; None without the tool or a default route."""
        tool = self.tools.find("route")
        if tool is None:
            return None
        result = self.tools.run([tool, "print", "-4", _ANY_V4], timeout=2.0)
        return parse_route_print(result.stdout)

    def dns_servers(self) -> list[str]:
        """Each interface's static and DHCP name servers, IPv4 then IPv6, once each."""
        servers: list[str] = []
        for root in _INTERFACE_KEYS:
            with contextlib.suppress(OSError):
                for name in self.registry.subkeys(root):
                    for value_name in ("NameServer", "DhcpNameServer"):
                        with contextlib.suppress(OSError):
                            value = self.registry.value(rf"{root}\{name}", value_name)
                            for server in parse_name_servers(value):
                                if server not in servers:
                                    servers.append(server)
        return servers

    def ping_argv(self, tool: str, gateway: str) -> list[str]:
        """``ping -n 1 -w 1000 GATEWAY`` (one request, a second's wait)."""
        return [tool, "-n", "1", "-w", "1000", gateway]
