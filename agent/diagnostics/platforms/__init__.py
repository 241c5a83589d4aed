"""The diagnostics' backend for this OS: the one place that looks at ``sys.platform``.

``current()`` is what the collectors use; ``select(name)`` is the same choice for any
value of ``sys.platform``, so that the choice is tested on one machine. The module
of the chosen OS is imported on first use, as platformdirs and mss do: the others
are never loaded. The interfaces are drawn in ``base``.
"""

from __future__ import annotations

import functools
import sys

from .base import Host, Network, Platform

__all__ = ["Host", "Network", "Platform", "current", "select"]


def select(platform_name: str) -> Platform:
    """A new backend for the OS that ``sys.platform`` calls ``platform_name``."""
    if platform_name.startswith("linux"):
        from .linux import LinuxHost, LinuxNetwork

        return Platform(LinuxHost(), LinuxNetwork())
    if platform_name == "darwin":
        from .macos import MacHost, MacNetwork

        return Platform(MacHost(), MacNetwork())
    if platform_name == "win32":
        from .windows import WindowsHost, WindowsNetwork

        return Platform(WindowsHost(), WindowsNetwork())
    from .posix import BsdNetwork, PosixHost, PosixNetwork

    network = BsdNetwork() if "bsd" in platform_name else PosixNetwork()
    return Platform(PosixHost(platform_name), network)


@functools.cache
def current() -> Platform:
    """This machine's backend (made once)."""
    return select(sys.platform)
