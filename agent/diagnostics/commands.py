"""Running a system tool for diagnostics: an argv (never a shell), a time-out, C locale.

The tools run are fixed by the collectors (``systemctl``, ``journalctl``, ``ping``,
``route``, ``sysctl``, ``scutil``); nothing here comes from the console. A tool that
does not answer in time is killed (``subprocess.run`` kills the child on time-out)
and ``subprocess.TimeoutExpired`` reaches the collector.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["CommandResult", "find_tool", "run_tool"]

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


def run_tool(argv: Sequence[str], *, timeout: float) -> CommandResult:
    """Run ``argv`` (``argv[0]`` a full path) and wait at most ``timeout`` seconds.

    Raises ``subprocess.TimeoutExpired`` after killing the tool, ``OSError`` if it
    cannot start. Output is decoded as UTF-8 with replacement and cut to 1 MiB.
    """
    # Untranslated, uncoloured, unpaged output: the collectors parse it.
    env = dict(os.environ, LC_ALL="C", LANG="C", SYSTEMD_COLORS="0", SYSTEMD_PAGER="")
    completed = subprocess.run(  # noqa: S603 (a fixed argv from the collectors, no shell)
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        env=env if sys.platform != "win32" else None,
        creationflags=_CREATION_FLAGS,
    )
    return CommandResult(
        returncode=completed.returncode,
        stdout=completed.stdout[:_MAX_OUTPUT].decode("utf-8", "replace"),
        stderr=completed.stderr[:_MAX_OUTPUT].decode("utf-8", "replace"),
    )
