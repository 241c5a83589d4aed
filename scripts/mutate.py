"""Mutation testing: does each module's own test file notice when its code is changed?

One small change (a *mutant*) at a time is made to a copy of a module, and the
module's own tests run against it: a failing test *kills* the mutant, a passing
run lets it *survive*. A survivor is a change no test notices: either a missing
test, or an *equivalent* mutant that behaves exactly like the original (name
those in ``scripts/mutate-equivalent.txt``, with the reason).

How it runs, so that the mutant is what the tests import and the sources are
never touched:

* A temporary tree ``<tmp>/deskside/<part>/...`` mirrors the folders mapped in
  pyproject.toml's ``[tool.setuptools.package-dir]``: real directories, every file
  a symbolic link to the repository's, except the module under test, which is a
  real file holding the mutant. ``PYTHONPATH=<tmp>`` puts it before the editable
  install's link tree (build/__editable__*, added by a .pth file later in
  ``sys.path``); a check before each module proves the import resolves there.
* pytest runs in a new session with a time-out; on the time-out or on Ctrl-C its
  whole process group is killed and the temporary tree removed.
* Each run is deterministic: the mutants are drawn with a seed from every
  possible one, hypothesis gets ``--hypothesis-seed`` and an empty example
  database of its own for every mutant.

The mutations (one per mutant, on the module's AST; the mutant is the module
printed back with ``ast.unparse``, which the baseline run checks is harmless):

* compare operators: ``<`` -> ``<=``, ``<=`` -> ``<``, ``>`` -> ``>=``, ``>=`` -> ``>``,
  ``==`` <-> ``!=``, ``is`` <-> ``is not``, ``in`` <-> ``not in``;
* ``and`` <-> ``or``; ``not x`` -> ``x``; ``-x`` -> ``x``; ``~x`` -> ``x``;
* arithmetic (also in ``+=`` and the like): ``+`` <-> ``-``, ``*`` -> ``/``, ``/`` -> ``*``,
  ``//`` -> ``*``, ``%`` -> ``//``, ``**`` -> ``*``, ``<<`` <-> ``>>``, ``&`` <-> ``|``,
  ``^`` -> ``&``;
* numbers: ``n`` -> ``n + 1`` and ``n - 1``; ``True`` <-> ``False``;
* inside functions: a statement replaced by ``pass`` (an expression, an
  assignment, ``del``, ``raise``, ``if``, ``for``, ``while``, ``break``,
  ``continue``), and ``return x`` -> ``return None``.

Left alone: docstrings and other strings, annotations, ``assert`` (type narrowing
here), ``if TYPE_CHECKING:`` blocks, calls on a logger, and anything on a line
marked ``pragma: no cover``.

Usage (from the repository, one module after another, never in parallel)::

    .venv/bin/python scripts/mutate.py                 # every module of MODULES
    .venv/bin/python scripts/mutate.py agent/spool.py  # one module
    .venv/bin/python scripts/mutate.py --list agent/spool.py  # the sample, not run
    .venv/bin/python scripts/mutate.py --only "_last_received = now" protocol/connection.py
    options: --sample N (0: every mutant), --seed S, --timeout SECONDS, --fail-under PERCENT
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Module -> the pytest arguments that test it: its own test file(s), and options.
# Edit here when a module or its tests move.
MODULES: dict[str, list[str]] = {
    "protocol/connection.py": ["tests/protocol/test_connection.py"],
    "protocol/noise.py": ["tests/protocol/test_noise.py"],
    "protocol/codec.py": ["tests/protocol/test_codec.py"],
    "agent/policy.py": ["tests/agent/test_policy.py"],
    "agent/spool.py": ["tests/agent/test_spool.py"],
    "agent/backoff.py": ["tests/agent/test_backoff.py"],
    # SQLite only: the module does not depend on the database, and PostgreSQL would
    # start a server for every mutant.
    "console/commands/output.py": [
        "tests/console/commands/test_output.py",
        "-k",
        "not postgresql",
    ],
    # The console's capability rules.
    "console/tickets/lifecycle.py": ["tests/console/tickets/test_lifecycle.py"],
    "console/auth/access.py": ["tests/console/auth/test_access.py", "-k", "not postgresql"],
    "console/auth/links.py": ["tests/console/auth/test_links.py", "-k", "not postgresql"],
    "console/auth/guards.py": ["tests/console/auth/test_guards.py"],
    "console/events.py": ["tests/console/test_events.py", "-k", "not postgresql"],
    "channel/dispatch.py": ["tests/channel/test_dispatch.py"],
}

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "scripts" / "mutate-equivalent.txt"
DEFAULT_SAMPLE = 60
DEFAULT_SEED = 1

_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_ARITHMETIC: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.And: "and",
    ast.Or: "or",
}
# Statements that a mutant may replace with ``pass`` (inside functions only).
_DELETABLE = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Delete,
    ast.Raise,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.Break,
    ast.Continue,
)
_LOGGER = re.compile(r"^_?(log|logger|LOG|LOGGER)$")
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass(frozen=True)
class Mutant:
    """One change to a module: replace a child of the ``parent``-th node (walk order)."""

    module: str
    line: int
    col: int
    description: str
    parent: int
    attribute: str
    position: int | None
    change: Callable[[ast.AST], ast.AST] = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        """How the mutant is named in reports and in the file of equivalent mutants."""
        return f"{self.module}:{self.line}:{self.col}: {self.description}"


def _snippet(node: ast.AST, limit: int = 60) -> str:
    text = " ".join(ast.unparse(node).splitlines()[0].split())
    if isinstance(node, ast.If | ast.For | ast.AsyncFor | ast.While):
        text += " ..."
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _replaced_op(node: ast.AST, attribute: str, new: type[ast.AST]) -> ast.AST:
    changed = copy.copy(node)
    setattr(changed, attribute, new())
    return changed


def _replaced_compare(node: ast.AST, index: int, new: type[ast.cmpop]) -> ast.AST:
    assert isinstance(node, ast.Compare)
    ops = list(node.ops)
    ops[index] = new()
    return ast.Compare(left=node.left, ops=ops, comparators=node.comparators)


def _operand(node: ast.AST) -> ast.AST:
    assert isinstance(node, ast.UnaryOp)
    return node.operand


def _constant(value: float) -> Callable[[ast.AST], ast.AST]:
    return lambda _node: ast.Constant(value=value)


def _pass(_node: ast.AST) -> ast.AST:
    return ast.Pass()


def _return_none(_node: ast.AST) -> ast.AST:
    return ast.Return(value=ast.Constant(value=None))


class _Finder:
    """Collects the mutants of one module's tree."""

    def __init__(self, module: str, tree: ast.Module, source: str) -> None:
        self.module = module
        self.index = {id(node): i for i, node in enumerate(ast.walk(tree))}
        self.lines = source.splitlines()
        self.mutants: list[Mutant] = []

    def _no_cover(self, node: ast.AST) -> bool:
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.match_case):
            line = node.pattern.lineno
        return line is not None and "pragma: no cover" in self.lines[line - 1]

    def _skip(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Assert) or self._no_cover(node):
            return True
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return True  # a docstring
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return True
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Await | ast.Call):
            call = node.value
            func = call.func if isinstance(call, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and _LOGGER.match(func.value.id)
            ):
                return True
        return isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        )

    def _add(
        self,
        node: ast.AST,
        parent: ast.AST,
        name: str,
        position: int | None,
        description: str,
        change: Callable[[ast.AST], ast.AST],
    ) -> None:
        self.mutants.append(
            Mutant(
                module=self.module,
                line=getattr(node, "lineno", 0),
                col=getattr(node, "col_offset", 0),
                description=description,
                parent=self.index[id(parent)],
                attribute=name,
                position=position,
                change=change,
            )
        )

    def visit(self, node: ast.AST, in_function: bool = False) -> None:
        """Collect the mutants of ``node``'s children, then of their subtrees."""
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue  # annotations are never evaluated here (postponed)
            children = value if isinstance(value, list) else [value]
            for position, child in enumerate(children):
                if not isinstance(child, ast.AST) or self._skip(child):
                    continue
                where = position if isinstance(value, list) else None
                self._mutate(child, node, name, where, in_function)
                self.visit(child, in_function or isinstance(child, _FUNCTIONS))

    def _mutate(
        self, child: ast.AST, parent: ast.AST, name: str, where: int | None, in_function: bool
    ) -> None:
        add = self._add
        if isinstance(child, ast.Compare):
            for i, op in enumerate(child.ops):
                new_cmp = _COMPARE[type(op)]
                which = f" (operator {i + 1} of {len(child.ops)})" if len(child.ops) > 1 else ""
                description = (
                    f"`{_SYMBOLS[type(op)]}` -> `{_SYMBOLS[new_cmp]}`{which} in `{_snippet(child)}`"
                )
                add(child, parent, name, where, description, _change_compare(i, new_cmp))
        elif isinstance(child, ast.BinOp | ast.AugAssign) and type(child.op) in _ARITHMETIC:
            new_op = _ARITHMETIC[type(child.op)]
            description = (
                f"`{_SYMBOLS[type(child.op)]}` -> `{_SYMBOLS[new_op]}` in `{_snippet(child)}`"
            )
            add(child, parent, name, where, description, _change_op(new_op))
        elif isinstance(child, ast.BoolOp):
            new_bool: type[ast.boolop] = ast.Or if isinstance(child.op, ast.And) else ast.And
            description = (
                f"`{_SYMBOLS[type(child.op)]}` -> `{_SYMBOLS[new_bool]}` in `{_snippet(child)}`"
            )
            add(child, parent, name, where, description, _change_op(new_bool))
        elif isinstance(child, ast.UnaryOp) and isinstance(
            child.op, ast.Not | ast.USub | ast.Invert
        ):
            add(
                child,
                parent,
                name,
                where,
                f"`{_snippet(child)}` -> `{_snippet(child.operand)}`",
                _operand,
            )
        elif isinstance(child, ast.Constant):
            value = child.value
            if isinstance(value, bool):
                add(child, parent, name, where, f"`{value}` -> `{not value}`", _constant(not value))
            elif isinstance(value, int | float):
                for new_value in (value + 1, value - 1):
                    if isinstance(new_value, float):
                        new_value = round(new_value, 12)  # 0.8 - 1 is -0.2, not -0.19999...
                    add(
                        child,
                        parent,
                        name,
                        where,
                        f"`{value!r}` -> `{new_value!r}`",
                        _constant(new_value),
                    )
        if not in_function or not isinstance(child, ast.stmt):
            return
        if isinstance(child, ast.Return):
            if child.value is not None and not (
                isinstance(child.value, ast.Constant) and child.value.value is None
            ):
                add(
                    child,
                    parent,
                    name,
                    where,
                    f"`{_snippet(child)}` -> `return None`",
                    _return_none,
                )
        elif isinstance(child, _DELETABLE) and not (
            isinstance(child, ast.AnnAssign) and child.value is None
        ):
            add(child, parent, name, where, f"delete `{_snippet(child)}`", _pass)


def _change_compare(index: int, new: type[ast.cmpop]) -> Callable[[ast.AST], ast.AST]:
    return lambda node: _replaced_compare(node, index, new)


def _change_op(new: type[ast.AST]) -> Callable[[ast.AST], ast.AST]:
    return lambda node: _replaced_op(node, "op", new)


def find_mutants(module: str, source: str) -> list[Mutant]:
    """Every mutant of ``module`` (a path relative to the repository), in source order."""
    tree = ast.parse(source)
    finder = _Finder(module, tree, source)
    finder.visit(tree)
    return finder.mutants


def mutated_source(source: str, mutant: Mutant) -> str:
    """The module's source with ``mutant`` applied (printed back from the AST)."""
    tree = ast.parse(source)
    parent = list(ast.walk(tree))[mutant.parent]
    value = getattr(parent, mutant.attribute)
    if mutant.position is None:
        setattr(parent, mutant.attribute, mutant.change(value))
    else:
        value[mutant.position] = mutant.change(value[mutant.position])
    return ast.unparse(ast.fix_missing_locations(tree))


def sample(mutants: list[Mutant], source: str, size: int, seed: int) -> list[Mutant]:
    """``size`` mutants that compile (all for 0), drawn with ``seed``, in source order."""
    order = list(mutants)
    name = mutants[0].module if mutants else ""
    rng = random.Random(f"{seed}:{name}")  # noqa: S311 - a reproducible sample, not a secret
    rng.shuffle(order)
    chosen: list[Mutant] = []
    for mutant in order:
        if size and len(chosen) == size:
            break
        try:
            compile(mutated_source(source, mutant), mutant.module, "exec")
        except (SyntaxError, ValueError):
            continue
        chosen.append(mutant)
    return sorted(chosen, key=lambda m: (m.line, m.col, m.description))


# -- Running the tests ------------------------------------------------------------------


def _package_dirs() -> dict[str, str]:
    """``{"deskside.agent": "agent", ...}`` from pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        dirs: dict[str, str] = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    return dirs


def _mirror(tree: Path) -> None:
    """Link every file of the mapped folders into ``tree``, as the package would be."""
    for package, folder in _package_dirs().items():
        source_root = ROOT / folder
        target_root = tree.joinpath(*package.split("."))
        for directory, subdirs, files in os.walk(source_root):
            subdirs[:] = [d for d in subdirs if d != "__pycache__"]
            relative = Path(directory).relative_to(source_root)
            (target_root / relative).mkdir(parents=True, exist_ok=True)
            for name in files:
                (target_root / relative / name).symlink_to(Path(directory) / name)


def _import_name(module: str) -> str:
    folder, _, rest = module.partition("/")
    for package, mapped in _package_dirs().items():
        if mapped == folder:
            return ".".join([package, *Path(rest).with_suffix("").parts])
    raise SystemExit(f"{module}: its folder is not in [tool.setuptools.package-dir]")


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class Outcome:
    """How the tests took one mutant."""

    status: str  # "killed", "survived" or "timeout"
    seconds: float


class Runner:
    """Runs one module's tests against its mutants in a temporary tree."""

    def __init__(self, module: str, pytest_args: list[str], tree: Path, seed: int) -> None:
        self.module = module
        self.pytest_args = pytest_args
        self.tree = tree
        self.seed = seed
        folder, _, rest = module.partition("/")
        package = next(p for p, f in _package_dirs().items() if f == folder)
        self.target = tree.joinpath(*package.split("."), rest)
        self.runs = 0

    def _write(self, source: str) -> None:
        self.target.unlink()
        self.target.write_text(source, encoding="utf-8")
        # A stale compiled file of the same size and second could be used instead.
        for cached in self.target.parent.glob(f"__pycache__/{self.target.stem}.*.pyc"):
            cached.unlink()

    def check_import(self) -> None:
        """Prove that the module the tests import is the file in the temporary tree."""
        name = _import_name(self.module)
        found = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [_python(), "-c", f"import {name} as m; print(m.__file__)"],
            env=self._env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if Path(found) != self.target:
            raise SystemExit(f"{name} is imported from {found}, not from {self.target}")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.tree), env.get("PYTHONPATH")]))
        self.runs += 1
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(self.tree.parent / f"hypothesis-{self.runs}")
        return env

    def run(self, source: str, timeout: float | None) -> tuple[Outcome, str]:
        """Run the tests against ``source``; the outcome and pytest's output."""
        self._write(source)
        command = [
            _python(),
            "-m",
            "pytest",
            "-x",
            "-q",
            "--no-header",
            "-p",
            "no:cacheprovider",
            f"--hypothesis-seed={self.seed}",
            *self.pytest_args,
        ]
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            command,
            cwd=ROOT,
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome("timeout", time.monotonic() - started), ""
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        seconds = time.monotonic() - started
        if process.returncode == 0:
            return Outcome("survived", seconds), output
        if process.returncode in (4, 5):  # usage error, no tests collected
            raise SystemExit(f"pytest {' '.join(self.pytest_args)} failed to run:\n{output}")
        return Outcome("killed", seconds), output


# -- Reporting ----------------------------------------------------------------------------


def load_equivalent(path: Path) -> dict[str, str]:
    """Mutant key -> why it is equivalent, from ``path`` (``<key> -- <reason>`` a line)."""
    equivalent: dict[str, str] = {}
    if not path.exists():
        return equivalent
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, reason = line.partition(" -- ")
        if not separator or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected '<mutant> -- <reason>'")
        equivalent[key.strip()] = reason.strip()
    return equivalent


@dataclass
class ModuleResult:
    """The counts of one module's run."""

    module: str
    total: int
    sampled: int = 0
    killed: int = 0
    timeouts: int = 0
    survivors: list[Mutant] = field(default_factory=list)
    equivalent: int = 0  # survivors named in the file of equivalent mutants

    @property
    def detected(self) -> int:
        """Mutants the tests noticed (a time-out counts)."""
        return self.killed + self.timeouts

    def score(self) -> float:
        """Share of sampled mutants detected, in percent."""
        return 100.0 * self.detected / self.sampled if self.sampled else 100.0

    def score_without_equivalent(self) -> float:
        """The same, leaving out the survivors known to be equivalent."""
        relevant = self.sampled - self.equivalent
        return 100.0 * self.detected / relevant if relevant else 100.0


def print_table(results: list[ModuleResult]) -> None:
    """The summary: one line per module."""
    header = (
        f"{'module':<24} {'mutants':>7} {'sampled':>7} {'killed':>6} {'survived':>8} "
        f"{'timeout':>7} {'equiv':>5} {'score':>6} {'w/o eq':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.module:<24} {r.total:>7} {r.sampled:>7} {r.killed:>6} {len(r.survivors):>8} "
            f"{r.timeouts:>7} {r.equivalent:>5} {r.score():>5.1f}% "
            f"{r.score_without_equivalent():>5.1f}%"
        )


def mutate_module(
    module: str,
    args: argparse.Namespace,
    equivalent: dict[str, str],
    seen: set[str],
    results: list[ModuleResult],
) -> None:
    """Run the sampled mutants of one module; print progress and survivors.

    Appends the module's result to ``results`` first, so an interrupted run still
    reports the mutants done; adds the name of every mutant the module has (sampled or
    not) to ``seen``."""
    source = (ROOT / module).read_text(encoding="utf-8")
    mutants = find_mutants(module, source)
    seen.update(m.key for m in mutants)
    if args.only:
        # Every mutant whose name holds the text, instead of the sample (for checking one).
        mutants = [m for m in mutants if args.only in m.key]
        chosen = sample(mutants, source, 0, args.seed)
    else:
        chosen = sample(mutants, source, args.sample, args.seed)
    result = ModuleResult(module, total=len(mutants))
    results.append(result)
    print(f"\n{module}: {len(mutants)} mutants, {len(chosen)} sampled (seed {args.seed})")
    if args.list:
        for mutant in chosen:
            print(f"  {mutant.key}")
        return
    with tempfile.TemporaryDirectory(prefix="deskside-mutate-") as scratch:
        tree = Path(scratch) / "tree"
        _mirror(tree)
        runner = Runner(module, MODULES[module], tree, args.seed)
        # The module printed back from its AST, unchanged: must pass, and sets the time-out.
        baseline, output = runner.run(ast.unparse(ast.parse(source)), timeout=None)
        if baseline.status != "survived":
            raise SystemExit(f"{module}: the tests fail without any mutation:\n{output}")
        runner.check_import()
        timeout = args.timeout or max(30.0, 3 * baseline.seconds + 10)
        print(
            f"  baseline {baseline.seconds:.1f} s, time-out {timeout:.0f} s: ", end="", flush=True
        )
        try:
            for mutant in chosen:
                outcome, _ = runner.run(mutated_source(source, mutant), timeout)
                result.sampled += 1
                if outcome.status == "killed":
                    result.killed += 1
                    if mutant.key in equivalent:
                        print(f"\n  killed, yet named equivalent: {mutant.key}", end="")
                elif outcome.status == "timeout":
                    result.timeouts += 1
                else:
                    result.survivors.append(mutant)
                    result.equivalent += mutant.key in equivalent
                mark = {"killed": ".", "timeout": "T", "survived": "S"}[outcome.status]
                print(mark, end="", flush=True)
        finally:
            print()
            for mutant in result.survivors:
                reason = equivalent.get(mutant.key)
                print(f"  survived: {mutant.key}" + (f"  [equivalent: {reason}]" if reason else ""))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="modules of the table (default: all of them)")
    parser.add_argument(
        "--sample", type=int, default=DEFAULT_SAMPLE, help="mutants per module; 0: all"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mutant")
    parser.add_argument(
        "--fail-under", type=float, default=None, help="least score w/o equivalents"
    )
    parser.add_argument("--list", action="store_true", help="show the sampled mutants, run nothing")
    parser.add_argument("--only", help="run every mutant whose name contains this text, no sample")
    args = parser.parse_args(argv)
    for module in args.modules:
        if module not in MODULES:
            parser.error(f"{module} is not in the table; known: {', '.join(MODULES)}")
    return args


def iter_modules(args: argparse.Namespace) -> Iterator[str]:
    """The modules to mutate, in the table's order unless named."""
    yield from args.modules or MODULES


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Mutate each module in turn and report; 1 if a score is under ``--fail-under``."""
    args = _parse(argv)
    # Ctrl-C, or a kill, stops the run the same way: the running pytest's process group
    # is killed and the temporary tree removed (also when started in the background,
    # where SIGINT is ignored unless a handler is set).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    equivalent = load_equivalent(EQUIVALENT_FILE)
    results: list[ModuleResult] = []
    seen: set[str] = set()
    started = time.monotonic()
    try:
        for module in iter_modules(args):
            mutate_module(module, args, equivalent, seen, results)
    except KeyboardInterrupt:
        print("\ninterrupted: the results so far")
    if args.list:
        return 0
    print()
    print_table(results)
    print(f"{time.monotonic() - started:.0f} s in all")
    done = {r.module for r in results}
    stale = [key for key in equivalent if key.split(":", 1)[0] in done and key not in seen]
    for key in stale:
        print(f"stale entry of {EQUIVALENT_FILE.name} (no such mutant any more): {key}")
    if args.fail_under is not None and any(
        r.score_without_equivalent() < args.fail_under for r in results
    ):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
