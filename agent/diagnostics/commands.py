"""Running a system tool for diagnostics: an argv (never a shell), a time-out, C locale.

The tools run are fixed by the collectors and the platform backends (``systemctl``,
``journalctl``, ``ping``, ``route``, ``sysctl``, ``scutil``); nothing here comes from
the console. A tool that does not answer in time is killed (``subprocess.run`` kills
the child on time-out) and ``subprocess.TimeoutExpired`` reaches the collector.

The platform backends (``deskside.agent.diagnostics.platforms``) run their tools
through a ``Tools`` object: ``SystemTools`` for real, ``RecordingTools`` in tests of
the platforms that are not the test machine's, which records the command lines and
answers with recorded output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "CommandResult",
    "RecordingTools",
    "SystemTools",
    "Tools",
    "find_tool",
    "run_tool",
]

# Output kept from one tool; the collectors ask for a few kilobytes at most.
_MAX_OUTPUT: Final = 1 << 20

# Keeps a console window from flashing up on Windows; 0 elsewhere.
_CREATION_FLAGS: Final = getattr(subprocess, "CREATE_NO_WINDOW", 0)


@dataclass(frozen=True)
class CommandResult:
    """What a tool printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def find_tool(name: str) -> str | None:
    """The full path of the tool ``name`` on ``PATH``, or None if it is not installed."""
    return shutil.which(name)


def run_tool(argv: Sequence[str], *, timeout: float, c_locale: bool = True) -> CommandResult:
    """Run ``argv`` (``argv[0]`` a full path) and wait at most ``timeout`` seconds.

    With ``c_locale`` the tool runs with ``LC_ALL=C`` and without systemd's colours and
    pager; without it, in this process's environment as it is (Windows' tools read no
    POSIX locale variables). Raises ``subprocess.TimeoutExpired`` after killing the
    tool, ``OSError`` if it cannot start. Output is decoded as UTF-8 with replacement
    and cut to 1 MiB.
    """
    # Untranslated, uncoloured, unpaged output: the collectors parse it.
    env = dict(os.environ, LC_ALL="C", LANG="C", SYSTEMD_COLORS="0", SYSTEMD_PAGER="")
    completed = subprocess.run(  # noqa: S603 (a fixed argv from the collectors, no shell)
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        env=env if c_locale else None,
        creationflags=_CREATION_FLAGS,
    )
    return CommandResult(
        returncode=completed.returncode,
        stdout=completed.stdout[:_MAX_OUTPUT].decode("utf-8", "replace"),
        stderr=completed.stderr[:_MAX_OUTPUT].decode("utf-8", "replace"),
    )


class Tools(Protocol):
    """Finds and runs system tools: the only way a platform backend runs one."""

    def find(self, name: str) -> str | None:
        """The full path of the tool ``name``, or None if it is not installed."""
        ...

    def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        """Run ``argv`` within ``timeout`` seconds (as ``run_tool``)."""
        ...


@dataclass(frozen=True)
class SystemTools:
    """The tools on this machine's ``PATH``, run for real by ``run_tool``."""

    c_locale: bool = True
    """Whether tools run with ``LC_ALL=C`` (see ``run_tool``)."""

    def find(self, name: str) -> str | None:
        """``find_tool(name)``."""
        return find_tool(name)

    def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        """``run_tool(argv)``."""
        return run_tool(argv, timeout=timeout, c_locale=self.c_locale)


def _no_output(argv: tuple[str, ...]) -> CommandResult:
    return CommandResult(0, "", "")


@dataclass
class RecordingTools:
    """Tools that are never run: command lines are recorded, answered by ``answer``.

    For tests of the backends of platforms that are not the test machine's: the
    answers are outputs recorded on those platforms.
    """

    answer: Callable[[tuple[str, ...]], CommandResult] = _no_output
    """The result of a command line (exit 0 and no output by default)."""

    installed: frozenset[str] | None = None
    """The tools ``find`` knows (it returns their bare names); None: every one."""

    commands: list[tuple[str, ...]] = field(default_factory=list)
    """Every command line run, in order."""

    def find(self, name: str) -> str | None:
        """``name`` itself if it counts as installed, else None."""
        return name if self.installed is None or name in self.installed else None

    def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        """Record ``argv`` and answer it."""
        key = tuple(argv)
        self.commands.append(key)
        return self.answer(key)
