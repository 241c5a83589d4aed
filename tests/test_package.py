"""The distribution's shape: one ``deskside`` namespace, console scripts, import rules."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("agent", "channel", "console", "installer", "protocol")


def imports_of(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports (relative imports as 'deskside')."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("deskside" if node.level else node.module or "")
    return names


def test_protocol_does_no_io_and_only_crypto_imports_cryptography() -> None:
    forbidden = {"asyncio", "websockets", "psutil", "mss", "pynput", "socket", "subprocess"}
    for path in (ROOT / "protocol").glob("*.py"):
        imported = {name.split(".")[0] for name in imports_of(path)}
        assert not imported & forbidden, f"{path.name} imports {imported & forbidden}"
        if path.name != "crypto.py":
            assert "cryptography" not in imported, f"{path.name} imports cryptography"


@pytest.mark.parametrize(
    ("part", "never"),
    [
        ("agent", "deskside.console"),
        ("console", "deskside.agent"),
        ("protocol", "deskside.channel"),
        ("channel", "deskside.agent"),
        ("channel", "deskside.console"),
    ],
)
def test_import_direction(part: str, never: str) -> None:
    for path in (ROOT / part).rglob("*.py"):
        assert not any(name.startswith(never) for name in imports_of(path)), path


def test_wheel_installs_only_the_deskside_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("deskside-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"deskside", wheel.name.split("-py3")[0] + ".dist-info"}
    for part in PARTS:
        assert f"deskside/{part}/__init__.py" in names
        assert f"deskside/{part}/py.typed" in names
    assert "deskside/__init__.py" not in names  # a namespace, shared with nothing else
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"deskside-agent = deskside.installer.cli:main" in entry_points
    assert b"deskside-console = deskside.console.cli:main" in entry_points


def test_editable_install_puts_no_generic_names_on_the_path(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u, deskside.protocol as p;"
        f"print([n for n in {PARTS!r} if u.find_spec(n)]);"
        "print(p.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["[]", "deskside.protocol"]
