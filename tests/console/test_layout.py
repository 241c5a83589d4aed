"""The console's layout, checked: capabilities keep to their own folders.

* A capability imports of another only what that one publishes (``PUBLIC``):
  its tables, views and events, and the few rule modules named below. Its
  repository, relay, routes and handlers are its own.
* No import cycles: ``tests/test_package.py`` checks the console with the rest.
* No module is over about 600 lines, no class has more than 20 public methods.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_package import imports_of, module_name

CONSOLE = Path(__file__).resolve().parents[2] / "console"
CAPABILITIES = frozenset(
    {
        "audit",
        "auth",
        "chat",
        "commands",
        "devices",
        "findings",
        "knowledge",
        "screen",
        "terminal",
        "tickets",
        "timeline",
        "webhooks",
    }
)
# What any capability publishes to the others ("": its package's __init__).
SHARED = frozenset({"", "models", "schemas", "events"})
# What some publish besides: the rules others must follow or record through.
PUBLIC = {
    "auth": SHARED | {"identity", "guards", "access", "roles"},
    "audit": SHARED | {"chain"},
    "tickets": SHARED | {"lifecycle", "categories"},
    "findings": SHARED | {"describe"},  # findings in words, for ticket show
    "timeline": SHARED | {"entries", "kinds", "describe"},  # typed entries, written and read
}


def modules() -> dict[str, Path]:
    """Every console module by its dotted name."""
    return {module_name(path): path for path in sorted(CONSOLE.rglob("*.py"))}


def crossings(capability: str, imported: set[str]) -> list[str]:
    """What of ``imported`` belongs to another capability and is not published."""
    wrong = []
    for target in sorted(imported):
        parts = target.split(".")[2:] if target.startswith("deskside.console.") else []
        if not parts or parts[0] not in CAPABILITIES or parts[0] == capability:
            continue
        module = parts[1] if len(parts) > 1 else ""
        if module not in PUBLIC.get(parts[0], SHARED):
            wrong.append(target)
    return wrong


def test_capabilities_import_only_what_others_publish() -> None:
    known = modules()
    wrong = []
    for name, path in known.items():
        mine = name.split(".")[2] if name.count(".") >= 2 else ""
        if mine not in CAPABILITIES:
            continue  # the composition roots (app, gateway, store, cli) see everything
        wrong += [f"{name} imports {target}" for target in crossings(mine, imports_of(path, known))]
    assert not wrong, "\n".join(wrong)


def test_modules_and_classes_stay_small() -> None:
    too_big = []
    for name, path in modules().items():
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


def test_the_boundary_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "screen").mkdir()
    (tmp_path / "screen" / "relay.py").write_text(
        "from deskside.console.commands.repository import X\n"
        "from deskside.console.tickets import lifecycle\n"
    )
    known = {"deskside.console.tickets.lifecycle"}
    imported = imports_of(tmp_path / "screen" / "relay.py", known, tmp_path)
    assert crossings("screen", imported) == ["deskside.console.commands.repository"]
