"""Findings: rules that read a diagnostics snapshot and name known problems.

Theory of operation::

    rules/*.toml (shipped) + DATA_DIR/rules/*.toml (the admin's)
        ──> load_rules: parsed, checked, ids unique ──> Rules (read at start)
    a snapshot (the agent's document, as the snapshots API gives it)
        + what the console knows of it ("console": delay_seconds)
        ──> Rules.evaluate ──> [Finding(id, rule, severity, title, evidence, ...)]

A rule is data, never code. It names a path into the snapshot, a comparison and a
value; ``each`` makes it read every item of a list (a disk, a reachability check,
a failed service) and give one finding per item that matches::

    [[rule]]
    id = "disk-nearly-full"
    severity = "warning"                   # info, warning, critical
    title = "Disk {mountpoint} is {percent}% full"
    each = "disks"                         # optional: one finding per matching item
    key = "mountpoint"                     # what tells the items' findings apart
    when = [{ path = "percent", op = ">=", value = 90 }]
    category = "hardware/storage"          # optional suggestions, which the
    urgency = 2                            # technician accepts or dismisses

Paths are keys and list indexes joined by dots (``cpu.load.0``); inside ``each``
they start at the item, and ``$.`` starts at the document again. Every condition
must hold. Operators: ``== != < <= > >=`` (numbers, or text for ``==`` and
``!=``), ``startswith``, ``contains``, ``present``, ``missing``, ``empty`` and
``not_empty`` (lists, texts, objects). A path the snapshot lacks (a section a
collector could not fill, an older agent) makes a condition false, except
``missing``: a rule never fails on a document, it just does not fire. A value of
the wrong type is false too.

The title is a template: ``{path}`` is replaced by the value at that path
(numbers rounded to one decimal), ``{path|gib}`` by bytes in GiB, ``{path|days}``
by seconds in days. Nothing else is interpreted: no attribute access, no format
specification, no expression. The evidence of a finding is the value of every
path its conditions read, under its full path (``disks.0.percent``).
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from deskside.console.tickets.categories import Categories
from deskside.protocol.errors import ConfigError

from .schemas import Finding, Severity

__all__ = [
    "MISSING",
    "RULES_DIR",
    "Condition",
    "Op",
    "Rule",
    "Rules",
    "load_rules",
    "parse_rules",
    "resolve",
]

# Where an admin puts rule files, in the data directory.
RULES_DIR: Final = "rules"
# A rule file's size and rule count: a list a person writes.
MAX_FILE: Final = 256 * 1024
MAX_RULES: Final = 512
# Findings one rule may give for one snapshot (one per item of its list at most).
MAX_PER_RULE: Final = 64

_ID: Final = r"^[a-z0-9][a-z0-9-]{0,63}$"
_PATH: Final = r"^(\$\.)?[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,7}$"
_PLACEHOLDER: Final = re.compile(r"\{([^{}|]{1,200})(?:\|([a-z]{1,8}))?\}")
_FILTERS: Final = frozenset({"gib", "days"})


class _Missing:
    """What a path the document lacks resolves to."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Op(enum.StrEnum):
    """A condition's comparison."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    STARTSWITH = "startswith"
    CONTAINS = "contains"
    PRESENT = "present"
    MISSING = "missing"
    EMPTY = "empty"
    NOT_EMPTY = "not_empty"


_NUMERIC: Final = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_TEXT: Final = frozenset({Op.STARTSWITH, Op.CONTAINS})
_UNARY: Final = frozenset({Op.PRESENT, Op.MISSING, Op.EMPTY, Op.NOT_EMPTY})

Path_ = Annotated[str, Meta(pattern=_PATH)]
Value = bool | int | float | Annotated[str, Meta(max_length=256)] | None


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One comparison of the value at ``path``."""

    path: Path_
    op: Op
    value: Value = None

    def holds(self, found: Any) -> bool:
        """Whether the condition holds for ``found`` (``MISSING`` if the path is absent)."""
        if self.op is Op.MISSING:
            return found is MISSING or found is None
        if found is MISSING:
            return False
        if self.op is Op.PRESENT:
            return found is not None
        if self.op in (Op.EMPTY, Op.NOT_EMPTY):
            empty = found is None or (isinstance(found, str | list | dict) and not found)
            return empty if self.op is Op.EMPTY else not empty
        if self.op in _TEXT:
            if not isinstance(found, str):
                return False
            assert isinstance(self.value, str)
            return found.startswith(self.value) if self.op is Op.STARTSWITH else self.value in found
        if self.op in (Op.EQ, Op.NE):
            same = _same(found, self.value)
            return same if self.op is Op.EQ else not same
        if not _number(found):
            return False
        limit = float(self.value)  # type: ignore[arg-type] # numbers, checked on loading
        match self.op:
            case Op.LT:
                return bool(found < limit)
            case Op.LE:
                return bool(found <= limit)
            case Op.GT:
                return bool(found > limit)
            case _:
                return bool(found >= limit)


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A known problem and how to see it in a snapshot."""

    id: Annotated[str, Meta(pattern=_ID)]
    severity: Severity
    title: Annotated[str, Meta(min_length=1, max_length=256)]
    when: Annotated[list[Condition], Meta(min_length=1, max_length=16)]
    each: Path_ | None = None
    key: Path_ | None = None
    category: Annotated[str, Meta(max_length=64)] | None = None
    urgency: Annotated[int, Meta(ge=1, le=3)] | None = None
    description: Annotated[str, Meta(max_length=2048)] = ""


class _RuleFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule: Annotated[list[Rule], Meta(max_length=MAX_RULES)] = []


def resolve(document: Any, path: str) -> Any:
    """The value at ``path`` (keys and list indexes joined by dots), or ``MISSING``."""
    node = document
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            index = int(part)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(found: Any, value: Value) -> bool:
    if isinstance(value, bool) or isinstance(found, bool):
        return isinstance(found, bool) and found is value
    if _number(found) and _number(value):
        return float(found) == float(value)  # type: ignore[arg-type]
    return bool(found == value)


def _lookup(item: Any, root: Any, path: str) -> tuple[str | None, Any]:
    """The value at ``path`` from ``item`` (or from the root with ``$.``); and whether it
    came from the item (its path relative) or the root (None)."""
    if path.startswith("$."):
        return None, resolve(root, path[2:])
    return path, resolve(item, path)


def _shown(value: Any, how: str | None) -> str:
    if value is MISSING or value is None:
        return "?"
    if how == "gib" and _number(value):
        return f"{value / 2**30:.1f} GiB"
    if how == "days" and _number(value):
        return f"{value / 86400:.1f} days"
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    if isinstance(value, list | dict):
        return f"{len(value)} items"
    return str(value)[:200]


def _check(rule: Rule, categories: Categories | None) -> str | None:
    """Why ``rule`` cannot be used, or None."""
    for condition in rule.when:
        if condition.op in _NUMERIC and not _number(condition.value):
            return f"{condition.op} needs a number, not {condition.value!r}"
        if condition.op in _TEXT and not isinstance(condition.value, str):
            return f"{condition.op} needs a text, not {condition.value!r}"
        if condition.op in _UNARY and condition.value is not None:
            return f"{condition.op} takes no value"
    for name, how in _PLACEHOLDER.findall(rule.title):
        if not re.match(_PATH, name):
            return f"{{{name}}} in the title is not a path"
        if how and how not in _FILTERS:
            return f"unknown filter |{how} (known: {', '.join(sorted(_FILTERS))})"
    if rule.key is not None and rule.each is None:
        return "key is only for a rule with each"
    if rule.category is not None and categories is not None:
        problem = categories.check(rule.category)
        if problem is not None:
            return problem
    return None


class Rules:
    """The rules in force, in the order they were read."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        # Every rule, by the order of its file and its place there.
        self.rules = tuple(rules)

    def evaluate(self, document: Mapping[str, Any]) -> list[Finding]:
        """The findings of ``document``, most severe first; never raises on its content."""
        found: list[Finding] = []
        for rule in self.rules:
            found.extend(self._apply(rule, document))
        order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
        return sorted(found, key=lambda f: order[f.severity])

    def _apply(self, rule: Rule, document: Mapping[str, Any]) -> Iterable[Finding]:
        if rule.each is None:
            items: list[tuple[str, Any]] = [("", document)]
        else:
            listed = resolve(document, rule.each)
            if not isinstance(listed, list):
                return []
            items = [(f"{rule.each}.{i}.", item) for i, item in enumerate(listed)]
        findings: list[Finding] = []
        for prefix, item in items:
            evidence: dict[str, Any] = {}
            for condition in rule.when:
                relative, value = _lookup(item, document, condition.path)
                if not condition.holds(value):
                    break
                name = condition.path[2:] if relative is None else prefix + relative
                evidence[name] = None if value is MISSING else value
            else:
                findings.append(self._finding(rule, item, document, prefix, evidence))
                if len(findings) >= MAX_PER_RULE:
                    break
        return findings

    @staticmethod
    def _finding(
        rule: Rule, item: Any, document: Any, prefix: str, evidence: dict[str, Any]
    ) -> Finding:
        def fill(match: re.Match[str]) -> str:
            return _shown(_lookup(item, document, match[1])[1], match[2])

        finding_id = rule.id
        if rule.each is not None:
            key = resolve(item, rule.key) if rule.key is not None else MISSING
            finding_id += ":" + (_shown(key, None) if key is not MISSING else prefix.split(".")[-2])
        return Finding(
            id=finding_id[:256],
            rule=rule.id,
            severity=rule.severity,
            title=_PLACEHOLDER.sub(fill, rule.title)[:512],
            evidence=evidence,
            category=rule.category,
            urgency=rule.urgency,
        )


def parse_rules(text: str, source: str, categories: Categories | None = None) -> list[Rule]:
    """The rules of a TOML text; ``ConfigError`` naming ``source`` and the rule if invalid."""
    if len(text) > MAX_FILE:
        raise ConfigError(f"{source}: larger than {MAX_FILE} characters")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not TOML: {exc}") from exc
    try:
        parsed = msgspec.convert(data, _RuleFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    for rule in parsed.rule:
        problem = _check(rule, categories)
        if problem is not None:
            raise ConfigError(f"{source}: rule {rule.id!r}: {problem}")
    return parsed.rule


def load_rules(data_dir: Path | None = None, categories: Categories | None = None) -> Rules:
    """The shipped rules, then the admin's (``DATA_DIR/rules/*.toml``, by name).

    An admin's rule with a shipped rule's id replaces it (a threshold tuned); two of
    the admin's with one id are refused, as is any invalid file: the console does not
    start on rules it would only half apply.
    """
    rules: dict[str, Rule] = {}
    shipped = files("deskside.console.findings").joinpath(RULES_DIR)
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            _add(rules, parse_rules(entry.read_text("utf-8"), entry.name, categories), set())
    if data_dir is not None and (data_dir / RULES_DIR).is_dir():
        seen: set[str] = set()
        for path in sorted((data_dir / RULES_DIR).glob("*.toml")):
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot be read: {exc}") from exc
            _add(rules, parse_rules(text, str(path), categories), seen, str(path))
    return Rules(list(rules.values()))


def _add(rules: dict[str, Rule], new: list[Rule], seen: set[str], source: str = "") -> None:
    for rule in new:
        if rule.id in seen or (not source and rule.id in rules):
            raise ConfigError(f"{source or 'shipped rules'}: rule {rule.id!r} is defined twice")
        seen.add(rule.id)
        rules[rule.id] = rule
