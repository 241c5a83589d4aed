"""deskside.installer: the agent as a service on Linux, macOS and Windows.

``deskside-agent install`` and ``uninstall`` call ``install_agent`` and
``uninstall_agent`` (``deskside.installer.installation``), which enroll the agent and
hand a ``ServiceSpec`` to the platform's ``ServiceManager``, chosen at run time by
``service_manager()`` and imported lazily, one module per platform (``systemd``,
``launchd``, ``windows``). ``package`` builds the agent's wheel and renders the
one-line install scripts that the console serves.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .base import (
    InstallerError,
    NoServiceManager,
    Runner,
    Scope,
    ServiceManager,
    ServiceSpec,
)

__all__ = [
    "MANAGERS",
    "InstallerError",
    "Scope",
    "ServiceManager",
    "ServiceSpec",
    "service_manager",
]

# What --service-manager accepts.
MANAGERS = ("auto", "systemd", "launchd", "windows", "none")


def service_manager(
    kind: str = "auto",
    *,
    runner: Runner | None = None,
    root: Path | None = None,
    home: Path | None = None,
    platform: str | None = None,
) -> ServiceManager:
    """The service manager named ``kind``, or this platform's for ``auto``.

    ``auto`` on Linux requires systemd to be the running init; elsewhere it raises
    ``InstallerError`` that suggests ``none`` (enroll and register nothing).
    """
    platform = platform or sys.platform
    if kind == "auto":
        if platform == "darwin":
            kind = "launchd"
        elif platform == "win32":
            kind = "windows"
        else:
            from .systemd import systemd_running

            if not systemd_running():
                raise InstallerError(
                    "systemd is not running on this machine, and Deskside knows no other "
                    "service manager here; use --service-manager none to enroll and set up "
                    "the agent without registering a service"
                )
            kind = "systemd"
    if kind == "systemd":
        from .systemd import SystemdManager

        return SystemdManager(runner, root=root, home=home)
    if kind == "launchd":
        from .launchd import LaunchdManager

        return LaunchdManager(runner, root=root, home=home)
    if kind == "windows":
        from .windows import WindowsManager

        return WindowsManager(runner, root=root, home=home)
    if kind == "none":
        return NoServiceManager(runner, root=root, home=home)
    raise InstallerError(f"unknown service manager {kind!r}; one of {', '.join(MANAGERS)}")
