"""The idle daemon stays small: the screen libraries load only with a screen session."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("av", "numpy", "pynput", "Xlib")


def loaded_after(statement: str) -> list[str]:
    """Which of the heavy modules a fresh interpreter has loaded after ``statement``."""
    code = f"{statement}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_the_daemon_imports_none_of_them() -> None:
    assert loaded_after("import deskside.agent.daemon, deskside.agent.cli") == []


def test_the_overlay_client_imports_none_of_them() -> None:
    # The session's side of the overlay only starts a process; Xlib loads in that one.
    assert loaded_after("import deskside.agent.screen.overlay") == []


def test_video_and_control_load_them_when_imported() -> None:
    assert loaded_after("import deskside.agent.screen.video") == ["av", "numpy"]
    # pynput itself loads when an injector is made, not at import.
    assert loaded_after("import deskside.agent.screen.control") == []
