"""macOS: the agent as a launchd job.

* System scope: a LaunchDaemon (``/Library/LaunchDaemons/org.deskside.agent.plist``),
  loaded at boot into the ``system`` domain, run as the hidden account
  ``_deskside`` made with ``dscl``. It has no access to anyone's screen.
* User scope: a LaunchAgent (``~/Library/LaunchAgents/org.deskside.agent.plist``),
  loaded into the user's ``gui/<uid>`` domain, limited to the graphical (Aqua)
  session, which screen sharing needs.

Both are started again by launchd when they exit with an error (``KeepAlive`` /
``SuccessfulExit = false``). The agent logs to the unified log (through
``syslog``, which macOS routes there: ``log show --predicate
'process == "deskside-agent"'``), to its file in the state directory, and its
stderr goes to ``agent.stderr.log`` beside it.

Not run for real on this project's test machines (Linux): tested through the
rendered plists and the recorded ``launchctl`` / ``dscl`` command sequences.
"""

from __future__ import annotations

import os
import plistlib
from pathlib import Path
from typing import Any, Final

from .base import (
    SERVICE_NAME,
    InstallerError,
    Scope,
    ServiceManager,
    ServiceSpec,
    write_text_file,
)

__all__ = ["LABEL", "MACOS_USER", "LaunchdManager", "macos_dirs", "render_plist"]

LABEL: Final = "org.deskside.agent"
# macOS names system accounts with a leading underscore.
MACOS_USER: Final = "_deskside"
_DAEMON_PLIST: Final = Path("/Library/LaunchDaemons") / f"{LABEL}.plist"
_AGENT_PLIST: Final = Path("Library/LaunchAgents") / f"{LABEL}.plist"
_SUPPORT: Final = "Library/Application Support"
# Where free ids for the account are looked for (below 500: hidden from the login window).
_ID_RANGE: Final = range(400, 500)


def macos_dirs(scope: Scope, home: Path) -> tuple[Path, Path, Path]:
    """(install root, config dir, state dir) on macOS."""
    if scope is Scope.SYSTEM:
        base = Path("/") / _SUPPORT / SERVICE_NAME
        return base, base / "config", base / "state"
    base = home / _SUPPORT / SERVICE_NAME
    return base, base, base


def render_plist(spec: ServiceSpec) -> str:
    """The LaunchDaemon (system scope) or LaunchAgent (user scope) property list."""
    job: dict[str, Any] = {
        "Label": LABEL,
        "ProgramArguments": list(spec.command),
        "RunAtLoad": True,
        # Started again after a crash or an error exit, not after a clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "Umask": 0o077,
        "WorkingDirectory": str(spec.state_dir),
        "StandardErrorPath": str(spec.state_dir / "agent.stderr.log"),
    }
    if spec.scope is Scope.SYSTEM:
        job["UserName"] = spec.user
        job["GroupName"] = spec.user
        job["ProcessType"] = "Background"
    else:
        job["LimitLoadToSessionType"] = "Aqua"
        job["ProcessType"] = "Interactive"
    return plistlib.dumps(job, sort_keys=True).decode("utf-8")


class LaunchdManager(ServiceManager):
    """Registers the agent with launchd (``launchctl bootstrap``)."""

    name = "launchd"
    system_user = MACOS_USER

    def __init__(
        self, *args: Any, uid: int | None = None, **kwargs: Any
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        # The user whose gui domain a LaunchAgent is loaded into.
        self.uid = uid if uid is not None else os.getuid() if hasattr(os, "getuid") else 0

    def default_dirs(self, scope: Scope, home: Path) -> tuple[Path, Path, Path]:
        """``/Library/Application Support`` or the user's own."""
        return macos_dirs(scope, home)

    def plist_path(self, scope: Scope) -> Path:
        """Where the property list is written."""
        if scope is Scope.SYSTEM:
            return self.path(_DAEMON_PLIST)
        return self.home / _AGENT_PLIST

    def _domain(self, scope: Scope) -> str:
        return "system" if scope is Scope.SYSTEM else f"gui/{self.uid}"

    def prepare(self, spec: ServiceSpec) -> None:
        """System scope: the hidden ``_deskside`` account and group, unless they exist."""
        if spec.scope is not Scope.SYSTEM:
            return
        record = f"/Users/{spec.user}"
        if self.runner(["dscl", ".", "-read", record], check=False).returncode == 0:
            return
        used = _ids(self.runner(["dscl", ".", "-list", "/Users", "UniqueID"]).output)
        used |= _ids(self.runner(["dscl", ".", "-list", "/Groups", "PrimaryGroupID"]).output)
        free = next((n for n in _ID_RANGE if n not in used), None)
        if free is None:
            raise InstallerError(
                f"no free account id in {_ID_RANGE.start}-{_ID_RANGE.stop - 1} for {spec.user}"
            )
        group = f"/Groups/{spec.user}"
        for argv in (
            ["dscl", ".", "-create", group],
            ["dscl", ".", "-create", group, "PrimaryGroupID", str(free)],
            ["dscl", ".", "-create", group, "RealName", "Deskside agent"],
            ["dscl", ".", "-create", record],
            ["dscl", ".", "-create", record, "UniqueID", str(free)],
            ["dscl", ".", "-create", record, "PrimaryGroupID", str(free)],
            ["dscl", ".", "-create", record, "UserShell", "/usr/bin/false"],
            ["dscl", ".", "-create", record, "NFSHomeDirectory", "/var/empty"],
            ["dscl", ".", "-create", record, "RealName", "Deskside agent"],
            ["dscl", ".", "-create", record, "IsHidden", "1"],
            ["dscl", ".", "-create", record, "Password", "*"],
        ):
            self.runner(argv)

    def install(self, spec: ServiceSpec, *, upgrade: bool) -> None:
        """Write the plist and (re)load it: bootout (if loaded), bootstrap, enable."""
        path = self.plist_path(spec.scope)
        if spec.scope is Scope.SYSTEM:
            for directory in (spec.config_dir, spec.state_dir):
                self.runner(["chown", "-R", f"{spec.user}:{spec.user}", str(directory)])
            if spec.inbox_dir is not None:
                self.runner(["mkdir", "-p", str(spec.inbox_dir)])
                self.runner(["chown", f"{spec.user}:{spec.user}", str(spec.inbox_dir)])
                self.runner(["chmod", "3733", str(spec.inbox_dir)])
        write_text_file(path, render_plist(spec))
        if spec.scope is Scope.SYSTEM:
            self.runner(["chown", "root:wheel", str(path)])
        domain = self._domain(spec.scope)
        target = f"{domain}/{LABEL}"
        if upgrade:
            self.runner(["launchctl", "bootout", target], check=False)
        self.runner(["launchctl", "enable", target])
        self.runner(["launchctl", "bootstrap", domain, str(path)])

    def uninstall(self, spec: ServiceSpec) -> None:
        """Unload the job and remove its plist."""
        self.runner(["launchctl", "bootout", f"{self._domain(spec.scope)}/{LABEL}"], check=False)
        path = self.plist_path(spec.scope)
        if path.exists():
            path.unlink()

    def remove_account(self, spec: ServiceSpec) -> None:
        """Remove the ``_deskside`` account and group (system scope)."""
        if spec.scope is Scope.SYSTEM:
            self.runner(["dscl", ".", "-delete", f"/Users/{spec.user}"], check=False)
            self.runner(["dscl", ".", "-delete", f"/Groups/{spec.user}"], check=False)

    def describe(self, spec: ServiceSpec) -> str:
        """Where the plist is and how to read the log."""
        return (
            f"launchd job {LABEL} loaded from {self.plist_path(spec.scope)}; its log: "
            "log show --last 1h --predicate 'process == \"deskside-agent\"'"
        )


def _ids(listing: str) -> set[int]:
    """The numbers in the second column of ``dscl . -list PATH KEY``."""
    found = set()
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].lstrip("-").isdigit():
            found.add(int(parts[-1]))
    return found
