"""Windows: the agent as a service of the Service Control Manager.

Choice of tools: the service is *registered* with ``sc.exe`` (in every Windows,
nothing to install, a plain command sequence that tests record and check), and
*hosted* by ``deskside.installer.winservice``, which speaks the SCM's protocol
through pywin32's ``servicemanager`` (``StartServiceCtrlDispatcher`` from our own
``python.exe -m ...`` command line). That avoids pywin32's ``pythonservice.exe``,
which does not find its DLLs from inside a virtual environment, and avoids
bundling a service wrapper binary (WinSW, NSSM) that no package registry serves.
``deskside-agent run`` itself cannot be the service's program: the SCM kills a
program that does not report to it within 30 seconds.

* System scope: the service ``deskside-agent``, started at boot (delayed), run as
  its own virtual account ``NT SERVICE\\deskside-agent`` (no password, no
  privileges beyond its directories, which ``icacls`` gives it), restarted after
  a failure (``sc.exe failure``). Logs: the Application event log (source
  ``deskside-agent``) and the file in the state directory. Session 0 has no
  desktop, so this service cannot share a screen.
* User scope: an entry in the user's ``Run`` key, so the agent starts in the
  user's session at logon, where screen sharing works; no restart on failure.

Not run for real on this project's test machines (Linux): tested through the
recorded command sequences.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PureWindowsPath
from typing import Final

from .base import SERVICE_NAME, Scope, ServiceManager, ServiceSpec

__all__ = [
    "RUN_KEY",
    "VIRTUAL_ACCOUNT",
    "WindowsManager",
    "service_command",
    "windows_dirs",
]

VIRTUAL_ACCOUNT: Final = f"NT SERVICE\\{SERVICE_NAME}"
RUN_KEY: Final = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
_DISPLAY_NAME: Final = "Deskside Agent"
_DESCRIPTION: Final = "Deskside remote IT support: diagnostics, help requests, remote help."
_RUN_VALUE: Final = "DesksideAgent"


def windows_dirs(
    scope: Scope, home: Path, environ: dict[str, str] | None = None
) -> tuple[Path, Path, Path]:
    """(install root, config dir, state dir) on Windows."""
    env = dict(os.environ) if environ is None else environ
    if scope is Scope.SYSTEM:
        files = PureWindowsPath(env.get("ProgramFiles", "C:\\Program Files")) / _DISPLAY_NAME
        data = PureWindowsPath(env.get("ProgramData", "C:\\ProgramData")) / _DISPLAY_NAME
        return Path(str(files)), Path(str(data / "config")), Path(str(data / "state"))
    local = env.get("LOCALAPPDATA") or str(PureWindowsPath(str(home)) / "AppData" / "Local")
    base = PureWindowsPath(local) / SERVICE_NAME
    return Path(str(base)), Path(str(base)), Path(str(base))


def service_command(spec: ServiceSpec) -> str:
    """The service's command line: the SCM host module of the agent's own Python."""
    return subprocess.list2cmdline(
        [
            spec.python,
            "-m",
            "deskside.installer.winservice",
            "--config-dir",
            str(spec.config_dir),
            "--state-dir",
            str(spec.state_dir),
        ]
    )


class WindowsManager(ServiceManager):
    """Registers the agent with the SCM (``sc.exe``), or in the user's Run key."""

    name = "windows"
    system_user = VIRTUAL_ACCOUNT

    def default_dirs(self, scope: Scope, home: Path) -> tuple[Path, Path, Path]:
        """Program Files and ProgramData, or the user's local application data."""
        return windows_dirs(scope, home)

    def prepare(self, spec: ServiceSpec) -> None:
        """Nothing: the virtual account comes with the service."""

    def install(self, spec: ServiceSpec, *, upgrade: bool) -> None:
        """Create (or reconfigure) the service, restrict its directories, start it."""
        if spec.scope is Scope.USER:
            self._install_user(spec)
            return
        command = service_command(spec)
        if upgrade:
            self.runner(["sc.exe", "stop", SERVICE_NAME], check=False)
            self.runner(["sc.exe", "config", SERVICE_NAME, "binPath=", command])
        else:
            self.runner(
                [
                    "sc.exe",
                    "create",
                    SERVICE_NAME,
                    "binPath=",
                    command,
                    "start=",
                    "delayed-auto",
                    "obj=",
                    VIRTUAL_ACCOUNT,
                    "DisplayName=",
                    _DISPLAY_NAME,
                ]
            )
            self.runner(["sc.exe", "description", SERVICE_NAME, _DESCRIPTION])
            self.runner(
                [
                    "sc.exe",
                    "failure",
                    SERVICE_NAME,
                    "reset=",
                    "86400",
                    "actions=",
                    "restart/5000/restart/10000/restart/60000",
                ]
            )
            self.runner(["sc.exe", "failureflag", SERVICE_NAME, "1"])
        for directory in (spec.config_dir, spec.state_dir):
            self.runner(
                [
                    "icacls",
                    str(directory),
                    "/inheritance:r",
                    "/grant:r",
                    "SYSTEM:(OI)(CI)F",
                    "Administrators:(OI)(CI)F",
                    f"{VIRTUAL_ACCOUNT}:(OI)(CI)M",
                ]
            )
        self.runner(["sc.exe", "start", SERVICE_NAME])

    def _install_user(self, spec: ServiceSpec) -> None:
        line = subprocess.list2cmdline(list(spec.command))
        self.runner(["reg.exe", "add", RUN_KEY, "/v", _RUN_VALUE, "/t", "REG_SZ", "/d", line, "/f"])
        # Start it now as well, detached ("start" returns at once; its first quoted
        # argument is the window title, so the title goes first).
        self.runner(["cmd.exe", "/c", "start", _DISPLAY_NAME, "/min", *spec.command])

    def uninstall(self, spec: ServiceSpec) -> None:
        """Stop and delete the service, or remove the Run entry."""
        if spec.scope is Scope.USER:
            self.runner(["reg.exe", "delete", RUN_KEY, "/v", _RUN_VALUE, "/f"], check=False)
            return
        self.runner(["sc.exe", "stop", SERVICE_NAME], check=False)
        self.runner(["sc.exe", "delete", SERVICE_NAME], check=False)

    def describe(self, spec: ServiceSpec) -> str:
        """Where to look at the service and its log."""
        if spec.scope is Scope.USER:
            return f"starts at logon from {RUN_KEY}\\{_RUN_VALUE}"
        return (
            f"Windows service {SERVICE_NAME} created and started; its log: the Application "
            f"event log (source {SERVICE_NAME}) and {spec.log_file}"
        )
