"""The distribution's shape: one ``deskside`` namespace, console scripts, import rules."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("agent", "channel", "console", "installer", "protocol")
# The parts whose modules import no module that imports them back.
CYCLE_FREE = ("agent", "channel", "console", "installer", "protocol")


def module_name(path: Path, root: Path = ROOT) -> str:
    """The module of a source file: ``agent/screen/tiles.py`` is ``deskside.agent.screen.tiles``."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("deskside", *parts))


def imports_of(path: Path, modules: Collection[str] = (), root: Path = ROOT) -> set[str]:
    """The modules ``path`` imports anywhere in it: at module level, in functions, for typing.

    Relative imports are resolved against the file's own module. For ``from X import
    a`` that is ``X.a`` when ``X.a`` is one of ``modules`` (a submodule), else ``X``.
    """
    name = module_name(path, root) if path.is_relative_to(root) else ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{source}" if source else base
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                names.add(submodule if submodule in modules else source)
    return names


def import_graph(root: Path = ROOT, parts: Collection[str] = PARTS) -> dict[str, set[str]]:
    """Each ``deskside`` module of ``parts`` -> the ``deskside`` modules it imports."""
    files = {module_name(p, root): p for part in parts for p in (root / part).rglob("*.py")}
    return {
        module: {name for name in imports_of(path, files, root) if name in files} - {module}
        for module, path in files.items()
    }


def cycle_from(graph: Mapping[str, Collection[str]], start: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` back to ``start``, if there is one."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.get(module, ())):
            if imported == start:
                chain = [module]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    return None


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
        ("agent", "deskside.installer"),
        ("console", "deskside.agent"),
        ("protocol", "deskside.channel"),
        ("channel", "deskside.agent"),
        ("channel", "deskside.console"),
    ],
)
def test_import_direction(part: str, never: str) -> None:
    for path in (ROOT / part).rglob("*.py"):
        assert not any(name.startswith(never) for name in imports_of(path)), path


@pytest.mark.parametrize("part", CYCLE_FREE)
def test_no_import_cycle(part: str) -> None:
    graph = import_graph()
    for module in sorted(m for m in graph if m.startswith(f"deskside.{part}")):
        cycle = cycle_from(graph, module)
        assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycles_through_function_level_and_relative_imports_are_found(tmp_path: Path) -> None:
    (tmp_path / "agent" / "screen").mkdir(parents=True)
    (tmp_path / "installer").mkdir()
    files = {
        "agent/__init__.py": "",
        "agent/screen/__init__.py": "from . import a\n",
        "agent/screen/a.py": "from .b import f\n",
        "agent/screen/b.py": "def f():\n    from ...installer import tool\n",
        "installer/__init__.py": "",
        "installer/tool.py": "import deskside.agent.screen\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("agent", "installer"))
    assert graph["deskside.agent.screen.b"] == {"deskside.installer.tool"}
    assert cycle_from(graph, "deskside.agent.screen.a") == [
        "deskside.agent.screen.a",
        "deskside.agent.screen.b",
        "deskside.installer.tool",
        "deskside.agent.screen",
        "deskside.agent.screen.a",
    ]
    assert cycle_from(graph, "deskside.agent") is None
    # The direction test sees the import inside the function too.
    assert "deskside.installer" in imports_of(tmp_path / "agent/screen/b.py", root=tmp_path)


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
