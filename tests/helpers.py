"""Small helpers shared by the tests."""

from __future__ import annotations

import sys
from pathlib import Path


def script(name: str) -> str:
    """Path of an installed console script of this environment (e.g. deskside-agent)."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed in {path.parent}"
    return str(path)
