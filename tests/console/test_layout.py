"""The console's layout, checked: capabilities keep to their own folders.

* A capability imports of another only what that one publishes (``PUBLIC``):
  its tables, views and events, and the few rule modules named below. Its
  repository, relay, routes and handlers are its own.
* No module of the console imports itself back through others (no cycles).
* No module is over about 600 lines, no class has more than 20 public methods.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "console"
CAPABILITIES = frozenset(
    {"audit", "auth", "commands", "devices", "screen", "terminal", "tickets", "timeline"}
)
# What any capability publishes to the others ("": its package's __init__).
SHARED = frozenset({"", "models", "schemas", "events"})
# What some publish besides: the rules others must follow or record through.
PUBLIC = {
    "auth": SHARED | {"identity", "guards", "access"},
    "audit": SHARED | {"chain"},
    "tickets": SHARED | {"lifecycle"},
    "timeline": SHARED | {"entries", "kinds", "describe"},  # typed entries, written and read
}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, file) of every console module."""
    for path in sorted(CONSOLE.rglob("*.py")):
        parts = path.relative_to(CONSOLE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(("deskside", "console", *parts)), path


def imported(name: str, path: Path) -> set[str]:
    """The deskside modules ``path`` imports, anywhere in it (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("deskside"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("deskside"):
                continue
            found.add(base)
            # "from package import module" imports the module.
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_capabilities_import_only_what_others_publish() -> None:
    known = {name for name, _ in modules()}
    wrong = []
    for name, path in modules():
        mine = name.split(".")[2] if len(name.split(".")) > 2 else ""
        if mine not in CAPABILITIES:
            continue  # the composition roots (app, gateway, store, cli) see everything
        for target in imported(name, path) & known:
            parts = target.split(".")[2:]
            if not parts or parts[0] not in CAPABILITIES or parts[0] == mine:
                continue
            module = parts[1] if len(parts) > 1 else ""
            if module not in PUBLIC.get(parts[0], SHARED):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_in_the_console() -> None:
    known = dict(modules())
    graph = {name: imported(name, path) & set(known) - {name} for name, path in known.items()}
    # A module importing its own package's __init__ is Python's doing, not a cycle.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_modules_and_classes_stay_small() -> None:
    too_big = []
    for name, path in modules():
        lines = len(path.read_text().splitlines())
        if lines > 620:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                public = [
                    f.name
                    for f in node.body
                    if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not f.name.startswith("_")
                ]
                if len(public) > 20:
                    too_big.append(f"{name}.{node.name}: {len(public)} public methods")
    assert not too_big, "\n".join(too_big)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    path = tmp_path / "relay.py"
    path.write_text("from deskside.console.commands.repository import X\nfrom . import routes\n")
    assert imported("deskside.console.screen.relay", path) == {
        "deskside.console.commands.repository",
        "deskside.console.commands.repository.X",
        "deskside.console.screen",
        "deskside.console.screen.routes",
    }
