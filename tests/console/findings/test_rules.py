"""The findings' rules against snapshots recorded on a real Linux machine.

``snapshots/linux-recorded.json`` is ``deskside-agent diagnose --json`` as this test
machine gave it (its gateway does not answer: a sandbox; its CPU was busy with other
tests); ``linux-healthy.json`` is the same with the gateway answering and the CPU at
23 %. Each problem is the healthy snapshot with the
values of that problem written in (``PROBLEMS``), in the shapes the agent sends.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from deskside.console.findings.rules import (
    MISSING,
    Condition,
    Rules,
    load_rules,
    parse_rules,
    resolve,
)
from deskside.console.findings.schemas import Severity
from deskside.console.tickets.categories import Categories
from deskside.protocol import messages as m
from deskside.protocol.errors import ConfigError

SNAPSHOTS = Path(__file__).parent / "snapshots"
CATEGORIES = Categories.load()
RULES = load_rules(None, CATEGORIES)

Edit = Callable[[dict[str, Any]], None]


def snapshot(name: str) -> dict[str, Any]:
    """A recorded snapshot as the console gives it to the rules (through the wire
    type, so the file is a snapshot the agent could send)."""
    raw = json.loads((SNAPSHOTS / f"{name}.json").read_text())
    document: dict[str, Any] = msgspec.to_builtins(msgspec.convert(raw, m.Snapshot))
    document["console"] = {"delay_seconds": 0.3}
    return document


def ids(document: dict[str, Any], rules: Rules = RULES) -> set[str]:
    return {finding.id for finding in rules.evaluate(document)}


def _disk(percent: float, free: int) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d["disks"][0].update(percent=percent, free=free)

    return edit


def _check(target: str, detail: str) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d["network"]["checks"].append({"target": target, "ok": False, "detail": detail})

    return edit


def _set(path: str, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = d
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


# Problem -> (the edit that shows it, the findings it must give and only those).
PROBLEMS: dict[str, tuple[Edit, set[str]]] = {
    "disk nearly full": (_disk(93.0, 18 * 2**30), {"disk-nearly-full:/"}),
    "disk full": (_disk(99.0, 2**28), {"disk-nearly-full:/", "disk-full:/"}),
    "memory pressure": (_set("memory.percent", 96.5), {"memory-pressure"}),
    "swapping": (
        lambda d: d["memory"].update(swap_total=8 * 2**30, swap_used=3 * 2**30),
        {"swap-heavy"},
    ),
    "cpu saturated": (_set("cpu.percent", 100.0), {"cpu-saturated"}),
    "no default route": (_set("network.default_gateway", None), {"no-default-route"}),
    "gateway unreachable": (
        lambda d: d["network"]["checks"][0].update(ok=False, detail="no reply to ping"),
        {"gateway-unreachable:gateway 192.0.2.1"},
    ),
    "dns failing": (
        _check("dns helpdesk.example.org", "does not resolve: Name or service not known"),
        {"dns-failing:dns helpdesk.example.org"},
    ),
    "no dns servers": (_set("network.dns_servers", []), {"no-dns-servers"}),
    "console unreachable": (
        _check("tcp helpdesk.example.org:8443", "10.0.0.5: connection refused"),
        {"console-unreachable:tcp helpdesk.example.org:8443"},
    ),
    "failed service": (
        _set("failed_services", [{"name": "cups.service", "state": "failed"}]),
        {"service-failed:cups.service"},
    ),
    "battery low": (
        _set("battery", {"percent": 6.0, "plugged": False, "seconds_left": 600}),
        {"battery-low"},
    ),
    "long uptime": (_set("uptime", 45 * 86400.0), {"long-uptime"}),
    "pending reboot": (_set("pending_reboot", True), {"pending-reboot"}),
    "battery worn": (
        _set("battery", {"percent": 80.0, "plugged": True, "health_percent": 48.5}),
        {"battery-worn"},
    ),
    "clock ahead": (_set("console.delay_seconds", -600.0), {"clock-ahead"}),
    "collector failed": (
        _set("errors", [{"collector": "services", "error": "timed out"}]),
        {"collector-failed:services"},
    ),
    "error logs": (
        _set("logs", [{"source": "kernel", "message": "I/O error, dev sda"}]),
        {"error-logs"},
    ),
}


def test_the_healthy_snapshot_has_no_finding() -> None:
    assert RULES.evaluate(snapshot("linux-healthy")) == []


def test_the_recorded_snapshot_shows_this_machines_gateway_and_load() -> None:
    finding, busy = RULES.evaluate(snapshot("linux-recorded"))
    assert (busy.id, busy.title) == ("cpu-saturated", "CPU 100% busy when the snapshot was taken")
    assert finding.id == "gateway-unreachable:gateway 192.0.2.1"
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence == {
        "network.checks.0.target": "gateway 192.0.2.1",
        "network.checks.0.ok": False,
    }
    assert finding.category == "network/routing"
    assert finding.urgency == 1


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_each_rule_fires_on_its_problem(problem: str) -> None:
    edit, expected = PROBLEMS[problem]
    document = snapshot("linux-healthy")
    edit(document)
    assert ids(document) == expected


def test_every_shipped_rule_has_its_problem() -> None:
    covered = {f.split(":")[0] for _, expected in PROBLEMS.values() for f in expected}
    assert covered == {rule.id for rule in RULES.rules}


def test_a_finding_names_its_evidence_and_fills_its_title() -> None:
    document = snapshot("linux-healthy")
    _disk(93.0, 18 * 2**30)(document)
    [finding] = RULES.evaluate(document)
    assert finding.title == "Disk / is 93% full (18.0 GiB free)"
    assert finding.evidence == {"disks.0.percent": 93.0}
    assert (finding.category, finding.urgency) == ("hardware/storage", 2)


def test_findings_come_most_severe_first() -> None:
    document = snapshot("linux-healthy")
    _set("uptime", 45 * 86400.0)(document)
    _disk(99.0, 2**28)(document)
    severities = [f.severity for f in RULES.evaluate(document)]
    assert severities == [Severity.CRITICAL, Severity.WARNING, Severity.INFO]


@pytest.mark.parametrize(
    "section",
    [
        "memory",
        "network",
        "disks",
        "cpu",
        "battery",
        "uptime",
        "console",
        "errors",
        "pending_reboot",
    ],
)
def test_a_snapshot_missing_a_section_does_not_crash_a_rule(section: str) -> None:
    document = snapshot("linux-healthy")
    del document[section]
    assert ids(document) == set()
    document = snapshot("linux-healthy")
    document[section] = None
    assert ids(document) == set()


def test_values_of_the_wrong_type_do_not_fire() -> None:
    document = snapshot("linux-healthy")
    document["disks"] = [{"mountpoint": "/", "percent": "99"}, "not a disk", None]
    document["memory"] = {"percent": True}
    document["network"] = {
        "default_gateway": "192.0.2.1",
        "checks": [{"target": 5, "ok": "no"}],
        "dns_servers": ["x"],
    }
    assert ids(document) == set()


def test_paths() -> None:
    document = {"a": {"b": [{"c": 1}]}}
    assert resolve(document, "a.b.0.c") == 1
    for missing in ("a.b.1.c", "a.x", "a.b.c", "a.b.0.c.d"):
        assert repr(resolve(document, missing)) == "MISSING"


def test_a_rule_reads_the_document_from_an_item() -> None:
    rules = Rules(
        parse_rules(
            """
            [[rule]]
            id = "big-disk-on-linux"
            severity = "info"
            title = "{mountpoint} on {$.os.family}"
            each = "disks"
            when = [
                { path = "$.os.family", op = "==", value = "linux" },
                { path = "total", op = ">", value = 0 },
            ]
            """,
            "test.toml",
        )
    )
    [finding] = rules.evaluate(snapshot("linux-healthy"))
    assert finding.id == "big-disk-on-linux:0"
    assert finding.title == "/ on linux"
    assert set(finding.evidence) == {"os.family", "disks.0.total"}


def test_a_template_interprets_nothing_but_paths() -> None:
    rules = Rules(
        parse_rules(
            """
            [[rule]]
            id = "t"
            severity = "info"
            title = "{os.__class__} {0} {os.name}"
            when = [{ path = "os", op = "present" }]
            """,
            "test.toml",
        )
    )
    [finding] = rules.evaluate(snapshot("linux-healthy"))
    assert finding.title == "? ? Debian GNU/Linux 12 (bookworm)"
    with pytest.raises(ConfigError, match="is not a path"):
        parse_rules(
            '[[rule]]\nid = "t"\nseverity = "info"\ntitle = "{os.name!r:>30}"\n'
            'when = [{ path = "os", op = "present" }]\n',
            "test.toml",
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\n", "not TOML"),
        ('[[rule]]\nid = "x"\n', "missing required field"),
        (
            '[[rule]]\nid = "Bad Id"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "a", op = "present" }]\n',
            "$.rule[0].id",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "dire"\ntitle = "t"\n'
            'when = [{ path = "a", op = "present" }]\n',
            "$.rule[0].severity",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "a", op = "~=", value = 1 }]\n',
            "$.rule[0].when[0].op",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "a", op = ">", value = "ten" }]\n',
            "rule 'x': > needs a number",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "a", op = "startswith", value = 1 }]\n',
            "rule 'x': startswith needs a text",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "a", op = "missing", value = 1 }]\n',
            "rule 'x': missing takes no value",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\n'
            'when = [{ path = "__import__(\'os\')", op = "present" }]\n',
            "$.rule[0].when[0].path",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "{a|upper}"\n'
            'when = [{ path = "a", op = "present" }]\n',
            "unknown filter |upper",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\ncategory = "printers"\n'
            'when = [{ path = "a", op = "present" }]\n',
            "no category 'printers'",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\nkey = "name"\n'
            'when = [{ path = "a", op = "present" }]\n',
            "key is only for a rule with each",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\nthreshold = 3\n'
            'when = [{ path = "a", op = "present" }]\n',
            "unknown field `threshold`",
        ),
        (
            '[[rule]]\nid = "x"\nseverity = "info"\ntitle = "t"\nwhen = []\n',
            "$.rule[0].when",
        ),
    ],
)
def test_a_malformed_rule_file_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "/srv/rules/local.toml", CATEGORIES)
    assert str(caught.value).startswith("/srv/rules/local.toml: ")
    assert message in str(caught.value)


def _rule(rule_id: str, threshold: int) -> str:
    return (
        f'[[rule]]\nid = "{rule_id}"\nseverity = "warning"\ntitle = "{{mountpoint}}"\n'
        f'each = "disks"\nkey = "mountpoint"\n'
        f'when = [{{ path = "percent", op = ">=", value = {threshold} }}]\n'
    )


def test_the_admin_adds_and_tunes_rules(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "10-tuned.toml").write_text(_rule("disk-nearly-full", 30))
    (tmp_path / "rules" / "20-mine.toml").write_text(_rule("disk-quarter-full", 25))
    (tmp_path / "rules" / "README").write_text("not a rule file")
    rules = load_rules(tmp_path, CATEGORIES)
    assert len(rules.rules) == len(RULES.rules) + 1
    assert ids(snapshot("linux-healthy"), rules) == {"disk-nearly-full:/", "disk-quarter-full:/"}


def test_the_admin_may_not_define_a_rule_twice(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.toml").write_text(_rule("mine", 30))
    (tmp_path / "rules" / "b.toml").write_text(_rule("mine", 40))
    with pytest.raises(ConfigError, match=r"b\.toml: rule 'mine' is defined twice"):
        load_rules(tmp_path, CATEGORIES)


def test_an_unreadable_rule_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"a\.toml: cannot be read"):
        load_rules(tmp_path, CATEGORIES)


def test_one_rule_gives_at_most_its_share_of_findings() -> None:
    document = snapshot("linux-healthy")
    disk = document["disks"][0]
    document["disks"] = [
        dict(copy.deepcopy(disk), mountpoint=f"/m{i}", percent=99.0) for i in range(200)
    ]
    assert len([f for f in RULES.evaluate(document) if f.rule == "disk-full"]) == 64


@pytest.mark.parametrize(
    ("op", "value", "found", "holds"),
    [
        (">=", 90, 90.0, True),
        (">=", 90, 89.9, False),
        (">", 90, 90.0, False),
        (">", 90, 90.1, True),
        ("<=", 10, 10, True),
        ("<=", 10, 10.5, False),
        ("<", 10, 10, False),
        ("<", 10, 9, True),
        ("==", 1, 1.0, True),
        ("==", 1, True, False),  # a boolean is no number
        ("==", False, 0, False),
        ("!=", "a", "b", True),
        ("!=", "a", "a", False),
        ("startswith", "dns ", "dns x", True),
        ("startswith", "dns ", "tcp x", False),
        ("contains", "refused", "connection refused", True),
        ("contains", "refused", "timed out", False),
        (">=", 90, float("nan"), False),
        (">=", 90, "95", False),
    ],
)
def test_comparisons_at_their_bounds(op: str, value: Any, found: Any, holds: bool) -> None:
    condition = msgspec.convert({"path": "x", "op": op, "value": value}, Condition)
    assert condition.holds(found) is holds


@pytest.mark.parametrize(
    ("op", "found", "holds"),
    [
        ("present", MISSING, False),
        ("present", None, False),
        ("present", 0, True),
        ("missing", MISSING, True),
        ("missing", None, True),
        ("missing", "", False),
        ("empty", [], True),
        ("empty", "", True),
        ("empty", {}, True),
        ("empty", None, True),
        ("empty", [0], False),
        ("empty", MISSING, False),
        ("not_empty", [0], True),
        ("not_empty", [], False),
        ("not_empty", 0, True),
    ],
)
def test_unary_conditions(op: str, found: Any, holds: bool) -> None:
    condition = msgspec.convert({"path": "x", "op": op}, Condition)
    assert condition.holds(found) is holds
