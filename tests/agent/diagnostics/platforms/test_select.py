"""Picking the backend: by ``sys.platform``, in one place, importing only its module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deskside.agent import diagnostics
from deskside.agent.diagnostics import platforms
from deskside.agent.diagnostics.platforms import linux, macos, posix, windows
from deskside.protocol.messages import OsFamily


@pytest.mark.parametrize(
    ("name", "host", "network", "family"),
    [
        ("linux", linux.LinuxHost, linux.LinuxNetwork, OsFamily.LINUX),
        ("darwin", macos.MacHost, macos.MacNetwork, OsFamily.MACOS),
        ("win32", windows.WindowsHost, windows.WindowsNetwork, OsFamily.WINDOWS),
        ("freebsd14", posix.PosixHost, posix.BsdNetwork, OsFamily.OTHER),
        ("openbsd7", posix.PosixHost, posix.BsdNetwork, OsFamily.OTHER),
        ("sunos5", posix.PosixHost, posix.PosixNetwork, OsFamily.OTHER),
    ],
)
def test_select_by_sys_platform(
    name: str, host: type[object], network: type[object], family: OsFamily
) -> None:
    chosen = platforms.select(name)
    assert type(chosen.host) is host
    assert type(chosen.network) is network
    assert chosen.host.family is family


def test_current_is_this_machine_and_made_once() -> None:
    assert isinstance(platforms.current().host, linux.LinuxHost)
    assert platforms.current() is platforms.current()


def test_only_this_machine_s_module_is_imported() -> None:
    code = (
        "import sys\n"
        "from deskside.agent.diagnostics import collect_metrics, collectors, network\n"
        "collectors.collect_os(); network.collect_network(); collect_metrics()\n"
        "prefix = 'deskside.agent.diagnostics.platforms.'\n"
        "print(' '.join(sorted(m[len(prefix):] for m in sys.modules if m.startswith(prefix))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["base", "linux", "posix"]


def test_sys_platform_is_read_in_one_place() -> None:
    root = Path(diagnostics.__file__).parent
    readers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "sys.platform" in path.read_text(encoding="utf-8")
    )
    assert readers == ["platforms/__init__.py"]
