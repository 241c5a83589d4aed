"""Install, upgrade and uninstall the agent: enrollment, files, service.

``install_agent`` enrolls the agent with the enrollment string, unless it is
already enrolled with the same console (the same pinned Noise key): then the
identity is kept and the service is registered again and restarted, which is how
a new version is installed over an old one. Enrolled with another console, it
refuses unless told ``force``.

``uninstall_agent`` stops and removes the service; without ``keep_data`` it also
removes the agent's configuration (its identity), its state and, for the system
scope, its account and inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from deskside.agent.config import AgentPaths, load_config, save_config
from deskside.agent.files import ensure_private_dir
from deskside.agent.inbox import system_inbox
from deskside.protocol.enrollment import parse_enrollment
from deskside.protocol.errors import ConfigError

from .base import InstallerError, NoServiceManager, Scope, ServiceManager, ServiceSpec

__all__ = [
    "AGENT_HOME_ENV",
    "LOG_FILE",
    "Installed",
    "agent_command",
    "install_agent",
    "make_spec",
    "uninstall_agent",
]

LOG_FILE: Final = "agent.log"
# Where the install scripts put the agent's environment, when not in the default place.
AGENT_HOME_ENV: Final = "DESKSIDE_AGENT_HOME"
# What the agent keeps in its directories: removed by uninstall from a directory
# that is not the scope's default (which is removed whole).
_CONFIG_ENTRIES: Final = ("agent.toml", "identity.key")
_STATE_ENTRIES: Final = (
    "status.json",
    "tickets.json",
    "spool",
    "audit.log",
    "audit.head",
    "commands",
    "shells",
    "agent.log",
    "agent.log.1",
    "agent.log.2",
    "agent.log.3",
    "agent.stderr.log",
)


@dataclass(frozen=True)
class Installed:
    """What ``install_agent`` did."""

    device_id: str
    """The device's id (kept on an upgrade)."""

    upgraded: bool
    """True if the agent was already enrolled with this console and kept its identity."""

    spec: ServiceSpec
    """What was registered."""

    description: str
    """One line from the service manager: what and where."""


def agent_command() -> list[str]:
    """The agent's own executable: the ``deskside-agent`` script beside this Python."""
    bindir = Path(sys.executable).parent
    name = "deskside-agent.exe" if sys.platform == "win32" else "deskside-agent"
    if (bindir / name).exists():
        return [str(bindir / name)]
    found = shutil.which("deskside-agent")
    if found is None:
        raise InstallerError("cannot find the deskside-agent program to register")
    return [found]


def make_spec(
    scope: Scope, manager: ServiceManager, paths: AgentPaths, *, executable: list[str] | None = None
) -> ServiceSpec:
    """The service for an agent with ``paths``, in ``scope``."""
    log_file = paths.state_dir / LOG_FILE
    command = [
        *(executable or agent_command()),
        "--config-dir",
        str(paths.config_dir),
        "--state-dir",
        str(paths.state_dir),
        "run",
        "--log-file",
        str(log_file),
    ]
    if manager.name == "launchd":
        command.append("--syslog")
    inbox = system_inbox() if scope is Scope.SYSTEM and manager.name != "windows" else None
    if inbox is not None:
        command += ["--inbox", str(inbox)]
    return ServiceSpec(
        scope=scope,
        command=tuple(command),
        config_dir=paths.config_dir,
        state_dir=paths.state_dir,
        inbox_dir=inbox,
        user=manager.system_user,
        log_file=log_file,
        python=sys.executable,
    )


def default_paths(scope: Scope, manager: ServiceManager) -> AgentPaths:
    """The scope's default directories on this platform."""
    _, config_dir, state_dir = manager.default_dirs(scope, manager.home)
    return AgentPaths(config_dir=config_dir, state_dir=state_dir)


def _check_privileges(scope: Scope, manager: ServiceManager) -> None:
    if scope is not Scope.SYSTEM or isinstance(manager, NoServiceManager):
        return
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise InstallerError(
            "installing for the whole machine needs root: run it with sudo, "
            "or install for yourself with --user"
        )


def install_agent(
    enrollment_string: str,
    scope: Scope,
    manager: ServiceManager,
    paths: AgentPaths | None = None,
    *,
    force: bool = False,
    executable: list[str] | None = None,
    retry_for: float | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Installed:
    """Enroll (or keep the identity of) the agent and register its service.

    Raises ``ConfigError`` for a bad enrollment string or configuration,
    ``InstallerError`` when the service cannot be registered, and the channel's
    errors when the console refuses or cannot be reached (nothing registered then);
    enrolling is tried again as ``deskside.agent.enrollment.enroll`` does.
    """
    from deskside.agent.enrollment import enroll

    enrollment = parse_enrollment(enrollment_string)
    _check_privileges(scope, manager)
    paths = paths or default_paths(scope, manager)
    spec = make_spec(scope, manager, paths, executable=executable)
    try:
        existing = load_config(paths)
    except ConfigError as exc:
        if not force:
            raise ConfigError(
                f"this agent's configuration is damaged ({exc}); "
                "use --force to enroll again, which replaces it"
            ) from exc
        existing = None
    upgrade = existing is not None and existing.console_key == enrollment.console_key and not force
    if existing is not None and not upgrade and not force:
        raise InstallerError(
            f"this agent is enrolled as device {existing.device_id} with another console "
            f"({existing.console_url}); use --force to enroll it with this one instead"
        )
    manager.prepare(spec)
    if upgrade and existing is not None:
        device_id = str(existing.device_id)
        changed = replace(
            existing, console_url=enrollment.url, tls_fingerprint=enrollment.tls_fingerprint
        )
        if changed != existing:
            save_config(paths, changed)
    else:
        config, _ = asyncio.run(
            enroll(paths, enrollment, force=force, retry_for=retry_for, on_retry=on_retry)
        )
        device_id = str(config.device_id)
    ensure_private_dir(paths.state_dir)
    manager.install(spec, upgrade=upgrade)
    return Installed(device_id, upgrade, spec, manager.describe(spec))


def uninstall_agent(
    scope: Scope,
    manager: ServiceManager,
    paths: AgentPaths | None = None,
    *,
    keep_data: bool = False,
) -> list[str]:
    """Stop and remove the service; without ``keep_data`` remove the agent's data too.

    Returns what was removed, one line each, for the user.
    """
    _check_privileges(scope, manager)
    defaults = default_paths(scope, manager)
    paths = paths or defaults
    spec = make_spec(scope, manager, paths, executable=["deskside-agent"])
    manager.uninstall(spec)
    done = [f"service removed ({manager.name})"]
    if keep_data:
        done.append(f"kept {paths.config_dir} and {paths.state_dir}")
        return done
    for directory, entries, default in (
        (paths.config_dir, _CONFIG_ENTRIES, defaults.config_dir),
        (paths.state_dir, _STATE_ENTRIES, defaults.state_dir),
    ):
        if _remove_dir(directory, entries, whole=directory == default):
            done.append(f"removed {directory}")
    if spec.inbox_dir is not None and spec.inbox_dir.is_dir():
        shutil.rmtree(spec.inbox_dir, ignore_errors=True)
        done.append(f"removed {spec.inbox_dir}")
    manager.remove_account(spec)
    home = os.environ.get(AGENT_HOME_ENV, "")
    root = Path(home) if home else manager.default_dirs(scope, manager.home)[0]
    venv = root / "venv"
    if _is_own_environment(venv) and sys.platform != "win32":
        # The install script's environment: this program's own, gone once it exits.
        for link in (
            Path("/usr/local/bin/deskside-agent"),
            manager.home / ".local/bin/deskside-agent",
        ):
            with contextlib.suppress(OSError):
                if link.is_symlink() and Path(os.readlink(link)).parent.parent == venv:
                    link.unlink()
                    done.append(f"removed {link}")
        shutil.rmtree(venv)
        done.append(f"removed {venv}")
        with contextlib.suppress(OSError):
            root.rmdir()
    return done


def _is_own_environment(venv: Path) -> bool:
    """True if this Python runs from ``venv``."""
    try:
        return venv.is_dir() and Path(sys.prefix).resolve() == venv.resolve()
    except OSError:
        return False


def _remove_dir(directory: Path, entries: tuple[str, ...], *, whole: bool) -> bool:
    """Remove the agent's ``entries`` from ``directory`` (or all of it when ``whole``)."""
    if not directory.is_dir():
        return False
    if whole:
        shutil.rmtree(directory)
        return True
    for name in entries:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()
    return True
