"""install / uninstall against a real console, with no service manager to register with."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from deskside.agent.cli import main
from tests.consoleproc import ConsoleProcess


def _agent(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["--config-dir", str(root / "config"), "--state-dir", str(root / "state"), *args],
    )
    return result.exit_code, result.output


def test_install_upgrade_refuse_other_console_uninstall(
    console: ConsoleProcess, tmp_path: Path
) -> None:
    root = tmp_path / "agent"
    code, out = _agent(root, "install", console.enrollment(), "--user", "--service-manager", "none")
    assert code == 0, out
    assert "Enrolled and installed" in out
    assert "no service registered; run the daemon with:" in out
    assert "run --log-file" in out
    key = (root / "config" / "identity.key").read_bytes()

    code, out = _agent(root, "install", console.enrollment(), "--user", "--service-manager", "none")
    assert code == 0, out
    assert "Upgraded in place (identity kept)" in out
    assert (root / "config" / "identity.key").read_bytes() == key

    other = ConsoleProcess(tmp_path / "other")
    code, out = _agent(root, "install", other.enrollment(), "--user", "--service-manager", "none")
    assert code == 1
    assert "with another console" in out
    assert (root / "config" / "identity.key").read_bytes() == key

    code, out = _agent(root, "uninstall", "--user", "--service-manager", "none", "--keep-data")
    assert code == 0, out
    assert (root / "config" / "identity.key").is_file()
    (root / "state" / "agent.log").write_text("log\n")
    (root / "state" / "mine.txt").write_text("not the agent's\n")
    code, out = _agent(root, "uninstall", "--user", "--service-manager", "none")
    assert code == 0, out
    assert not (root / "config").exists()
    # Not the scope's default directory: only the agent's own files are removed.
    assert sorted(p.name for p in (root / "state").iterdir()) == ["mine.txt"]


def test_system_scope_needs_root_and_a_bad_string_is_refused(tmp_path: Path) -> None:
    code, out = _agent(tmp_path, "install", "not-a-string", "--service-manager", "none")
    assert code == 1
    assert "enrollment string starts with" in out
    code, out = _agent(tmp_path, "install", "x", "--service-manager", "bogus")
    assert code == 2
