"""Linux: the agent as a systemd unit.

* System scope: ``/etc/systemd/system/deskside-agent.service``, started at boot, run
  as the dedicated account ``deskside-agent`` in a sandbox (``ProtectSystem=strict``,
  the state directory and the help-request inbox its only writable paths, no new
  privileges, no capabilities). It cannot see anyone's screen: that is what the
  user scope is for.
* User scope: ``~/.config/systemd/user/deskside-agent.service``, started with the
  user's session by the user's own systemd, with the session's display.

Both restart on failure; stdout and stderr go to the journal
(``journalctl -u deskside-agent`` or ``journalctl --user -u deskside-agent``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from .base import (
    SERVICE_NAME,
    InstallerError,
    Scope,
    ServiceManager,
    ServiceSpec,
    linux_dirs,
    write_text_file,
)

__all__ = [
    "SYSTEM_UNIT_PATH",
    "SystemdManager",
    "quote_exec",
    "render_system_unit",
    "render_user_unit",
    "systemd_running",
]

SYSTEM_UNIT_PATH: Final = Path("/etc/systemd/system") / f"{SERVICE_NAME}.service"
_USER_UNIT_DIR: Final = Path(".config/systemd/user")
_UNIT: Final = f"{SERVICE_NAME}.service"


def quote_exec(argv: tuple[str, ...] | list[str]) -> str:
    """A command line in systemd's ``ExecStart=`` syntax.

    Every word is double-quoted when it holds a space, quote or backslash; ``%``
    (specifiers) and ``$`` (variables) are doubled so they stay literal.
    """
    words = []
    for arg in argv:
        if not arg:
            words.append('""')
            continue
        if any(c in arg for c in "\n\r\0"):
            raise InstallerError(f"a command-line word holds a line break: {arg!r}")
        word = arg.replace("%", "%%").replace("$", "$$")
        if any(c in word for c in " \t\"'\\;"):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)


def _path_setting(path: Path) -> str:
    text = str(path)
    if any(c.isspace() for c in text) or "%" in text:
        raise InstallerError(f"the path {text!r} cannot be used in a unit: no spaces or '%'")
    return text


def render_system_unit(spec: ServiceSpec) -> str:
    """The hardened system unit for ``spec`` (system scope)."""
    writable = [spec.state_dir, *([spec.inbox_dir] if spec.inbox_dir else [])]
    writable += list(spec.extra_write_paths)
    lines = [
        "[Unit]",
        "Description=Deskside agent (remote IT support)",
        "Documentation=man:systemd.exec(5)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={quote_exec(spec.command)}",
        f"User={spec.user}",
        f"Group={spec.user}",
        "Restart=on-failure",
        "RestartSec=5s",
        "TimeoutStopSec=30s",
        "SyslogIdentifier=deskside-agent",
        "UMask=0077",
        "# The state directory and the inbox are the only places it writes.",
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join("-" + _path_setting(p) for p in writable),
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictSUIDSGID=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_user_unit(spec: ServiceSpec) -> str:
    """The user unit for ``spec`` (user scope): in the desktop session, with its display.

    Sandboxing that needs privileges (``ProtectSystem``, ``PrivateTmp``) is not
    available to a user's systemd without user namespaces, so this unit keeps to
    what works everywhere: no new privileges and seccomp-based restrictions.
    """
    lines = [
        "[Unit]",
        "Description=Deskside agent (remote IT support, in your session)",
        "After=graphical-session.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={quote_exec(spec.command)}",
        "Restart=on-failure",
        "RestartSec=5s",
        "TimeoutStopSec=30s",
        "SyslogIdentifier=deskside-agent",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


class SystemdManager(ServiceManager):
    """Registers the agent with systemd (``systemctl``), system-wide or for the user."""

    name = "systemd"

    def default_dirs(self, scope: Scope, home: Path) -> tuple[Path, Path, Path]:
        """XDG places for the user, FHS places for the system."""
        return linux_dirs(scope, home)

    def unit_path(self, scope: Scope) -> Path:
        """Where the unit file is written."""
        if scope is Scope.SYSTEM:
            return self.path(SYSTEM_UNIT_PATH)
        return self.home / _USER_UNIT_DIR / _UNIT

    def _systemctl(self, scope: Scope, *args: str, check: bool = True) -> None:
        prefix = ["systemctl"] if scope is Scope.SYSTEM else ["systemctl", "--user"]
        self.runner([*prefix, *args], check=check)

    def prepare(self, spec: ServiceSpec) -> None:
        """System scope: the ``deskside-agent`` system account, unless it exists."""
        if spec.scope is not Scope.SYSTEM:
            return
        exists = self.runner(["getent", "passwd", spec.user], check=False).returncode == 0
        if not exists:
            self.runner(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    str(spec.state_dir),
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "Deskside agent",
                    spec.user,
                ]
            )

    def install(self, spec: ServiceSpec, *, upgrade: bool) -> None:
        """Write the unit, reload systemd, enable it and (re)start it."""
        if spec.scope is Scope.SYSTEM:
            text = render_system_unit(spec)
            self._own_dirs(spec)
        else:
            text = render_user_unit(spec)
        path = self.unit_path(spec.scope)
        write_text_file(path, text)
        self._systemctl(spec.scope, "daemon-reload")
        self._systemctl(spec.scope, "enable", _UNIT)
        self._systemctl(spec.scope, "restart" if upgrade else "start", _UNIT)

    def _own_dirs(self, spec: ServiceSpec) -> None:
        """Hand the agent's directories to its account; the inbox to everyone (3733)."""
        for directory in (spec.config_dir, spec.state_dir):
            self.runner(["chown", "-R", f"{spec.user}:{spec.user}", str(directory)])
        if spec.inbox_dir is not None:
            self.runner(["install", "-d", "-m", "3733", "-o", spec.user, "-g", spec.user,
                         str(spec.inbox_dir)])  # fmt: skip

    def uninstall(self, spec: ServiceSpec) -> None:
        """Stop and disable the unit, remove it, reload systemd."""
        self._systemctl(spec.scope, "disable", "--now", _UNIT, check=False)
        path = self.unit_path(spec.scope)
        if path.exists():
            path.unlink()
        self._systemctl(spec.scope, "daemon-reload", check=False)
        self._systemctl(spec.scope, "reset-failed", _UNIT, check=False)

    def remove_account(self, spec: ServiceSpec) -> None:
        """Remove the system account (system scope)."""
        if spec.scope is Scope.SYSTEM:
            self.runner(["userdel", spec.user], check=False)

    def describe(self, spec: ServiceSpec) -> str:
        """Where the unit is and how to read its log."""
        user = "" if spec.scope is Scope.SYSTEM else " --user"
        return (
            f"systemd unit {self.unit_path(spec.scope)} enabled and started; "
            f"its log: journalctl{user} -u {SERVICE_NAME}"
        )


def systemd_running() -> bool:
    """True if systemd is this machine's init (``/run/systemd/system`` exists)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
