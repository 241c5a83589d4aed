"""The one interface every platform's service manager implements, and how it runs tools.

Theory of operation: ``deskside-agent install`` first enrolls the agent (or, when it
is already enrolled with the same console, keeps its identity: an upgrade), then
hands a ``ServiceSpec`` to the platform's ``ServiceManager``. The manager renders
its unit file, plist or service definition with plain functions, writes it and
drives the platform's own tools (``systemctl``, ``launchctl``, ``sc.exe``) through a
``Runner``. The real runner spawns processes; ``RecordingRunner`` records the
command lines and answers with canned results, which is how the code for the
platforms that do not exist on a test machine is tested::

    ServiceManager            base class: install(spec, upgrade) / uninstall(spec)
     +-- SystemdManager       Linux: a system unit, or a user unit for the desktop
     +-- LaunchdManager       macOS: a LaunchDaemon, or a LaunchAgent
     +-- WindowsManager       Windows: a service in the SCM, or a logon task
     +-- NoServiceManager     registers nothing (containers without an init, tests)
"""

from __future__ import annotations

import abc
import enum
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from deskside.protocol.errors import DesksideError

__all__ = [
    "SERVICE_NAME",
    "SYSTEM_USER",
    "CommandFailed",
    "CommandResult",
    "InstallerError",
    "NoServiceManager",
    "RecordingRunner",
    "Runner",
    "Scope",
    "ServiceManager",
    "ServiceSpec",
    "SubprocessRunner",
    "linux_dirs",
    "write_text_file",
]

# The service's name where the platform has one flat namespace (systemd, SCM).
SERVICE_NAME: Final = "deskside-agent"
# The dedicated account a system-wide daemon runs as (Linux, macOS).
SYSTEM_USER: Final = "deskside-agent"


class InstallerError(DesksideError):
    """Installing or removing the service failed; the message says what to do."""


class CommandFailed(InstallerError):
    """A platform tool exited with an error."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        tail = output.strip().splitlines()[-3:]
        detail = ("; ".join(tail)) if tail else "no output"
        super().__init__(f"'{' '.join(argv)}' failed with exit code {returncode}: {detail}")
        self.argv = list(argv)
        self.returncode = returncode


class Scope(enum.Enum):
    """Where the agent runs: for the whole machine, or in one user's session."""

    SYSTEM = "system"  # at boot, as a dedicated account, without screen access
    USER = "user"  # in the user's desktop session, which screen sharing needs


@dataclass(frozen=True)
class ServiceSpec:
    """What a service manager registers: one agent daemon."""

    scope: Scope
    """System-wide or per user."""

    command: tuple[str, ...]
    """The daemon's full command line (the agent's executable, options and ``run``)."""

    config_dir: Path
    """The agent's configuration and identity directory."""

    state_dir: Path
    """The agent's status, spool and log directory (read-write for the daemon)."""

    inbox_dir: Path | None = None
    """Where users hand help requests to a system daemon (system scope only)."""

    user: str = SYSTEM_USER
    """The account a system daemon runs as."""

    log_file: Path | None = None
    """The daemon's own log file, in the state directory."""

    extra_write_paths: tuple[Path, ...] = field(default=())
    """Other paths the daemon must be able to write."""

    python: str = ""
    """The agent's Python interpreter (Windows hosts the service with it)."""


@dataclass(frozen=True)
class CommandResult:
    """What a tool printed and how it exited."""

    returncode: int
    """The exit code."""

    output: str = ""
    """Standard output and error, together."""


class Runner(Protocol):
    """Runs a platform tool; the only way a service manager touches the system."""

    def __call__(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        """Run ``argv``; with ``check``, a non-zero exit raises ``CommandFailed``."""
        ...


class SubprocessRunner:
    """Runs tools for real, each with a time-out, output captured."""

    def __init__(self, timeout: float = 120.0) -> None:
        # Seconds one tool may take before it is killed.
        self.timeout = timeout

    def __call__(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        """Run ``argv``; ``CommandFailed`` on a non-zero exit (with ``check``)."""
        try:
            done = subprocess.run(  # noqa: S603 (argv built by the installer, no shell)
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise InstallerError(f"{argv[0]} is not installed here") from exc
        except subprocess.TimeoutExpired as exc:
            raise InstallerError(f"'{' '.join(argv)}' took over {self.timeout:g} s") from exc
        result = CommandResult(done.returncode, done.stdout or "")
        if check and result.returncode != 0:
            raise CommandFailed(argv, result.returncode, result.output)
        return result


@dataclass
class RecordingRunner:
    """Records command lines instead of running them; answers from ``answer``.

    For tests of platforms that are not the test machine's: the manager's command
    sequence is compared with the expected one. ``answer`` maps a command line to
    its result (exit 0 and no output by default).
    """

    answer: Callable[[tuple[str, ...]], CommandResult] = field(
        default=lambda argv: CommandResult(0, "")
    )
    """The canned result of a command line."""

    commands: list[tuple[str, ...]] = field(default_factory=list)
    """Every command line asked for, in order."""

    def __call__(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        """Record ``argv``; raise ``CommandFailed`` if its canned exit is not 0 (``check``)."""
        key = tuple(argv)
        self.commands.append(key)
        result = self.answer(key)
        if check and result.returncode != 0:
            raise CommandFailed(key, result.returncode, result.output)
        return result


class ServiceManager(abc.ABC):
    """Registers, upgrades and removes the agent's service on one platform."""

    name: str = ""
    """A short name for messages (``systemd``, ``launchd``, ...)."""

    system_user: str = SYSTEM_USER
    """The account a system-wide daemon runs as."""

    def __init__(
        self, runner: Runner | None = None, *, root: Path | None = None, home: Path | None = None
    ) -> None:
        # How tools run: for real, or recorded in tests.
        self.runner: Runner = runner or SubprocessRunner()
        # Prefix of every system path written (unit files, plists); "/" for real.
        self.root = root or Path("/")
        # The user's home directory, where per-user definitions go.
        self.home = home or Path.home()

    def path(self, absolute: str | Path) -> Path:
        """``absolute`` below ``root`` (where files are written)."""
        return self.root / str(absolute).lstrip("/\\")

    @abc.abstractmethod
    def default_dirs(self, scope: Scope, home: Path) -> tuple[Path, Path, Path]:
        """The agent's (install root, config dir, state dir) for ``scope``.

        ``home`` is the user's home directory (user scope).
        """

    @abc.abstractmethod
    def prepare(self, spec: ServiceSpec) -> None:
        """Before enrollment writes anything: the system account, for the system scope."""

    @abc.abstractmethod
    def install(self, spec: ServiceSpec, *, upgrade: bool) -> None:
        """Write the service definition and start (``upgrade``: restart) the service."""

    @abc.abstractmethod
    def uninstall(self, spec: ServiceSpec) -> None:
        """Stop the service and remove its definition (leaving the agent's data)."""

    def remove_account(self, spec: ServiceSpec) -> None:  # noqa: B027 (optional hook)
        """Remove the system account made by ``prepare`` (with the data, not with --keep-data)."""

    def describe(self, spec: ServiceSpec) -> str:
        """One line for the user: what was registered and where to look at it."""
        return f"registered with {self.name}"


class NoServiceManager(ServiceManager):
    """Registers nothing: the agent is enrolled and its files set up, nothing more.

    For containers whose entry point runs ``deskside-agent run`` itself, and for tests
    on machines whose init is not systemd.
    """

    name = "none"

    def default_dirs(self, scope: Scope, home: Path) -> tuple[Path, Path, Path]:
        """The same places as on Linux."""
        return linux_dirs(scope, home)

    def prepare(self, spec: ServiceSpec) -> None:
        """Nothing to prepare."""

    def install(self, spec: ServiceSpec, *, upgrade: bool) -> None:
        """Nothing to register."""

    def uninstall(self, spec: ServiceSpec) -> None:
        """Nothing to remove."""

    def describe(self, spec: ServiceSpec) -> str:
        """Says how to run the daemon by hand."""
        return "no service registered; run the daemon with: " + " ".join(spec.command)


def linux_dirs(scope: Scope, home: Path) -> tuple[Path, Path, Path]:
    """(install root, config dir, state dir) on Linux and other XDG systems."""
    if scope is Scope.SYSTEM:
        return (
            Path("/opt") / SERVICE_NAME,
            Path("/etc") / SERVICE_NAME,
            Path("/var/lib") / SERVICE_NAME,
        )
    return (
        home / ".local/share" / SERVICE_NAME,
        home / ".config" / SERVICE_NAME,
        home / ".local/state" / SERVICE_NAME,
    )


def write_text_file(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` in one step (temporary file, rename), creating parents."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        raise InstallerError(f"cannot write {path}: {exc.strerror or exc}") from exc
