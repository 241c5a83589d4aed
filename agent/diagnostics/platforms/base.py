"""The questions the diagnostics ask the OS, one small interface per concern.

Collectors that psutil answers the same way everywhere stay in ``collectors`` and
``network``; what differs per OS is asked of two interfaces, implemented once per
OS (``linux``, ``macos``, ``windows``; ``posix`` for the BSDs and other Unixes)::

    Host                 for collectors.py: the OS's name, the CPU model, which
     ├── LinuxHost       mounts and processes are noise
     ├── MacHost
     ├── WindowsHost
     └── PosixHost       (family "other")
    Network              for network.py: default gateway, DNS servers, ping
     ├── PosixNetwork    resolv.conf, BSD route
     │    ├── LinuxNetwork
     │    └── BsdNetwork
     │         └── MacNetwork
     └── WindowsNetwork

A backend runs tools only through its ``Tools`` (``deskside.agent.diagnostics.commands``)
and, on Windows, reads the registry only through its ``Registry``; tests give it
canned outputs instead, which is how the backends of the OSes a test machine is
not are tested (by contract: the outputs are in the formats those OSes print).
``deskside.agent.diagnostics.platforms.current()`` picks this machine's backend.
"""

from __future__ import annotations

import abc
import platform
from dataclasses import dataclass
from typing import ClassVar

from deskside.agent.diagnostics.commands import SystemTools, Tools
from deskside.protocol.messages import OsFamily

__all__ = ["Host", "Network", "Platform"]


class Host(abc.ABC):
    """What the OS says about itself: its name, its CPU, what is noise in its tables."""

    family: ClassVar[OsFamily]
    """The OS family reported in the snapshot."""

    def __init__(self, tools: Tools | None = None) -> None:
        # How tools run: for real, or answered from recordings in tests.
        self.tools: Tools = tools or SystemTools()

    @abc.abstractmethod
    def os_name(self) -> str:
        """The OS's name for people (``Ubuntu 24.04 LTS``, ``macOS 15.1``, ...)."""

    def cpu_model(self) -> str:
        """The processor's model name; Python's own guess unless the OS knows better."""
        return platform.processor()

    def hides_mount(self, mountpoint: str) -> bool:
        """Whether a mount point holds nothing worth a line of its own."""
        return False

    def hides_process(self, pid: int) -> bool:
        """Whether a process id is no real process (its CPU use would mislead)."""
        return False

    def pending_reboot(self) -> bool | None:
        """Whether installed updates wait for a restart; None where the OS cannot tell."""
        return None

    def battery_health(self) -> float | None:
        """The battery's full charge as a percentage of its design capacity, or None."""
        return None


class Network(abc.ABC):
    """Where this machine routes and resolves, and how its ``ping`` is called."""

    c_locale: ClassVar[bool] = True
    """Whether tools here read ``LC_ALL`` (so ``C`` makes their output parseable)."""

    def __init__(self, tools: Tools | None = None) -> None:
        # How tools run: for real, or answered from recordings in tests.
        self.tools: Tools = tools or SystemTools(c_locale=self.c_locale)

    @abc.abstractmethod
    def default_gateway(self) -> str | None:
        """The default gateway's address, or None without a default route."""

    @abc.abstractmethod
    def dns_servers(self) -> list[str]:
        """The DNS servers this machine asks, in order."""

    def ping_tool(self, gateway: str) -> str:
        """The name of the tool that pings ``gateway``."""
        return "ping"

    @abc.abstractmethod
    def ping_argv(self, tool: str, gateway: str) -> list[str]:
        """One echo request to ``gateway``, waiting a second for the reply."""


@dataclass(frozen=True)
class Platform:
    """One OS's backend: the answer to every per-OS question of the diagnostics."""

    host: Host
    """For ``collectors``."""

    network: Network
    """For ``network``."""
