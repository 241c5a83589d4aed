"""Habits of the code base that a linter does not check, checked on the source."""

from __future__ import annotations

import ast

import pytest

from tests.test_package import PARTS, ROOT

# Catching these swallows everything, bugs included.
BROAD: frozenset[str] = frozenset({"Exception", "BaseException"})


def _names(node: ast.expr | None) -> set[str]:
    """The exception names an ``except`` clause or a ``suppress()`` argument names."""
    if node is None:  # a bare ``except:`` is ``except BaseException:``
        return {"BaseException"}
    if isinstance(node, ast.Tuple):
        return {name for element in node.elts for name in _names(element)}
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):  # builtins.Exception
        return {node.attr}
    if isinstance(node, ast.Starred):
        return _names(node.value)
    return set()


def _does_nothing(body: list[ast.stmt]) -> bool:
    """Whether a handler's body is only ``pass`` (or ``...``): nothing said, nothing done."""
    return all(
        isinstance(stmt, ast.Pass)
        or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
        for stmt in body
    )


def silent_swallows(source: str, filename: str = "<source>") -> list[str]:
    """Where ``source`` swallows every exception without a word, as ``file:line: what``.

    That is ``suppress(Exception)`` or ``suppress(BaseException)`` (among other
    arguments too), and an ``except Exception:``, ``except BaseException:`` or bare
    ``except:`` whose body is only ``pass``. Narrow the exception to what can really
    happen, or catch broadly and log what was caught.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            function = node.func
            called = (
                function.id
                if isinstance(function, ast.Name)
                else function.attr
                if isinstance(function, ast.Attribute)
                else ""
            )
            broad = BROAD & set().union(*(_names(argument) for argument in node.args))
            if called == "suppress" and broad:
                found.append((node.lineno, f"suppress({', '.join(sorted(broad))})"))
        elif isinstance(node, ast.ExceptHandler):
            broad = BROAD & _names(node.type)
            if broad and _does_nothing(node.body):
                found.append((node.lineno, f"except {', '.join(sorted(broad))}: pass"))
    return [f"{filename}:{line}: {what}" for line, what in sorted(found)]


def test_the_check_finds_what_it_is_for() -> None:
    source = """
import contextlib
from contextlib import suppress

with contextlib.suppress(Exception):
    pass
with suppress(OSError, BaseException):
    pass
with suppress(*(Exception,)):
    pass
try:
    pass
except Exception:
    pass
try:
    pass
except (ValueError, BaseException):
    ...
try:
    pass
except:
    pass
"""
    assert silent_swallows(source, "made_up.py") == [
        "made_up.py:5: suppress(Exception)",
        "made_up.py:7: suppress(BaseException)",
        "made_up.py:9: suppress(Exception)",
        "made_up.py:13: except Exception: pass",
        "made_up.py:17: except BaseException: pass",
        "made_up.py:21: except BaseException: pass",
    ]


def test_the_check_leaves_narrow_or_logged_catches_alone() -> None:
    source = """
import contextlib
import logging

with contextlib.suppress(OSError, ProcessLookupError):
    pass
with contextlib.suppress(TimeoutError):
    pass
try:
    pass
except OSError:
    pass
try:
    pass
except Exception:
    logging.getLogger().debug("cleanup failed", exc_info=True)
try:
    pass
except BaseException:
    raise
suppress = print
suppress("Exception")
"""
    assert silent_swallows(source, "made_up.py") == []


@pytest.mark.parametrize("part", PARTS)
def test_no_exception_is_swallowed_without_a_word(part: str) -> None:
    found = [
        finding
        for path in sorted((ROOT / part).rglob("*.py"))
        for finding in silent_swallows(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []
