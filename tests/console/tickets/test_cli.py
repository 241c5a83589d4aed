"""``deskside-console tickets | ticket assign/status/note/change/bulk | view``: what a
technician does in the web console, from the server's shell, recorded as the API would."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deskside.console.cli import main
from deskside.console.clitools import Context
from tests.consoleproc import ConsoleProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = ConsoleProcess(tmp_path / "data").data_dir
    for args in (
        ("user", "add", "alice"),
        ("user", "add", "bob"),
        ("group", "add", "desk"),
        ("ticket", "new", "--title", "Printer jams", "--description", "floor 2"),
        ("ticket", "new", "--title", "VPN drops", "--description", "since Monday"),
    ):
        assert run(data_dir, *args)[0] == 0, args
    return data_dir


def run(data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], input=stdin)
    return result.exit_code, result.output


def show(data_dir: Path, number: int) -> str:
    code, output = run(data_dir, "ticket", "show", str(number))
    assert code == 0, output
    return output


def audit(data_dir: Path) -> list[dict[str, object]]:
    """The audit log's entries, newest first, read from the database."""
    entries = Context(data_dir).run(lambda store: store.audit.log(limit=100))
    return [{"actor": e.actor, "action": e.action, "data": e.data} for e in entries]


def test_assign_status_note_and_change_as_a_technician(data_dir: Path) -> None:
    code, output = run(data_dir, "ticket", "assign", "1", "--me", "--as", "alice")
    assert code == 0, output
    assert "assignee alice" in output
    assert "(version 2)" in output
    code, output = run(data_dir, "ticket", "status", "1", "in_progress", "--as", "bob")
    assert (code, "in_progress" in output) == (0, True)
    code, output = run(data_dir, "ticket", "note", "1", "Rebooted the printer", "--as", "alice")
    assert (code, output.strip()) == (0, "Note added to ticket #1")
    code, output = run(data_dir, "ticket", "note", "1", "-", "--as", "bob", stdin="From stdin\n")
    assert code == 0, output
    code, output = run(
        data_dir, "ticket", "change", "1", "--impact", "high", "--urgency", "high",
        "--group", "desk", "--as", "bob",
    )  # fmt: skip
    assert (code, "P1" in output, "group desk" in output) == (0, True, True), output
    shown = show(data_dir, 1)
    assert "user:alice  assignment" in shown
    assert "user:bob  status" in shown
    assert "Rebooted the printer" in shown
    assert "From stdin" in shown
    assert "group desk" in shown
    actions = [(e["actor"], e["action"]) for e in audit(data_dir)]
    assert ("user:alice", "ticket.changed") in actions
    assert ("user:alice", "ticket.noted") in actions
    assert ("user:bob", "ticket.changed") in actions
    code, output = run(data_dir, "ticket", "assign", "2", "--to", "bob", "--as", "alice")
    assert (code, "assignee bob" in output) == (0, True)
    code, output = run(data_dir, "ticket", "assign", "2", "--nobody", "--as", "alice")
    assert (code, "assignee -" in output) == (0, True)


def test_refusals_are_clear(data_dir: Path) -> None:
    code, output = run(data_dir, "ticket", "assign", "1", "--me", "--as", "mallory")
    assert (code, "no technician named 'mallory'" in output) == (2, True)
    code, output = run(data_dir, "ticket", "assign", "1", "--to", "zed", "--as", "alice")
    assert (code, "no technician named 'zed'" in output) == (1, True)
    code, output = run(data_dir, "ticket", "assign", "1", "--as", "alice")
    assert (code, "give one of --to USER, --me, --nobody" in output) == (2, True)
    code, output = run(data_dir, "ticket", "status", "1", "sideways", "--as", "alice")
    assert code == 2
    run(data_dir, "ticket", "status", "1", "closed", "--as", "alice")
    code, output = run(data_dir, "ticket", "status", "1", "in_progress", "--as", "alice")
    assert (code, "a closed ticket cannot become in_progress" in output) == (1, True)
    code, output = run(data_dir, "ticket", "change", "1", "--as", "alice")
    assert (code, "say what to change" in output) == (2, True)
    code, output = run(data_dir, "ticket", "change", "2", "--group", "nope", "--as", "alice")
    assert (code, "no group 'nope'" in output) == (1, True)
    code, output = run(data_dir, "ticket", "note", "2", "", "--as", "alice")
    assert code == 2
    code, output = run(data_dir, "ticket", "note", "9", "hello", "--as", "alice")
    assert (code, "no ticket 9" in output) == (1, True)


def test_a_stale_version_is_refused(data_dir: Path) -> None:
    assert "(version 1)" in show(data_dir, 2)
    code, _ = run(
        data_dir, "ticket", "change", "2", "--impact", "high", "--version", "1", "--as", "alice"
    )
    assert code == 0
    code, output = run(
        data_dir, "ticket", "change", "2", "--urgency", "high", "--version", "1", "--as", "bob"
    )
    assert (code, "changed since version 1 (it is at version 2)" in output) == (1, True), output


def test_the_queue_from_the_cli_with_saved_views(data_dir: Path) -> None:
    run(data_dir, "ticket", "assign", "1", "--me", "--as", "alice")
    run(data_dir, "ticket", "change", "2", "--group", "desk", "--as", "alice")
    code, output = run(data_dir, "tickets")
    assert code == 0
    assert output.index("VPN drops") < output.index("Printer jams")
    assert "(1-2 of 2)" in output
    code, output = run(data_dir, "tickets", "--asc")
    assert output.index("Printer jams") < output.index("VPN drops")
    code, output = run(data_dir, "tickets", "--mine", "--as", "alice")
    assert ("Printer jams" in output, "VPN drops" in output) == (True, False)
    code, output = run(data_dir, "tickets", "--unassigned")
    assert ("Printer jams" in output, "VPN drops" in output) == (False, True)
    code, output = run(data_dir, "tickets", "--search", "MONDAY")
    assert ("Printer jams" in output, "VPN drops" in output) == (False, True)
    code, output = run(data_dir, "tickets", "--limit", "1", "--offset", "1")
    assert ("Printer jams" in output, "(2-2 of 2)" in output) == (True, True)
    code, output = run(data_dir, "tickets", "--group", "desk", "--save-view", "Desk", "--as", "bob")
    assert (code, "Saved as view 'Desk' for bob" in output) == (0, True)
    code, output = run(data_dir, "tickets", "--view", "Desk", "--as", "bob")
    assert ("Printer jams" in output, "VPN drops" in output) == (False, True)
    code, output = run(data_dir, "view", "list", "--as", "bob")
    assert "group=desk" in output
    code, output = run(data_dir, "tickets", "--view", "Desk", "--as", "alice")
    assert (code, "no saved view named 'Desk'" in output) == (1, True)
    code, output = run(data_dir, "view", "delete", "Desk", "--as", "bob")
    assert code == 0
    code, output = run(data_dir, "view", "list", "--as", "bob")
    assert "Desk" not in output
    for bad in (["--limit", "0"], ["--sort", "colour"], ["--priority", "10"]):
        assert run(data_dir, "tickets", *bad)[0] == 2, bad
    code, output = run(data_dir, "tickets", "--unassigned", "--assignee", "alice")
    assert (code, "(none of 0)" in output) == (0, True)
    code, output = run(data_dir, "tickets", "--search", "x" * 300)
    assert code == 2


def test_bulk_from_the_cli_says_what_happened_to_each(data_dir: Path) -> None:
    run(data_dir, "ticket", "status", "2", "closed", "--as", "alice")
    code, output = run(
        data_dir, "ticket", "bulk", "1", "2", "7", "--status", "in_progress", "--as", "alice"
    )
    lines = output.strip().splitlines()
    assert code == 1
    assert lines[0] == "#1  changed"
    assert lines[1].startswith("#2  refused: a closed ticket cannot become in_progress")
    assert lines[2] == "#7  not_found"
    code, output = run(
        data_dir, "ticket", "bulk", "1", "--assign", "bob", "--group", "desk", "--as", "alice"
    )
    assert (code, output.strip()) == (0, "#1  changed")
    assert "assignee   bob    group desk" in show(data_dir, 1)
