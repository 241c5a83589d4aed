"""``deskside-agent install`` / ``uninstall``: on the agent's CLI, and against a real console.

The console tests register with no service manager ("none").
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from deskside.agent import cli as agent_cli
from deskside.installer.cli import main
from tests.consoleproc import ConsoleProcess
from tests.helpers import script


def _agent(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["--config-dir", str(root / "config"), "--state-dir", str(root / "state"), *args],
    )
    return result.exit_code, result.output


def test_the_script_is_the_agent_s_cli_with_install_and_uninstall() -> None:
    assert set(main.commands) == {*agent_cli.main.commands, "install", "uninstall"}
    # The agent's own group is left without them: the agent knows no installer.
    assert not {"install", "uninstall"} & set(agent_cli.main.commands)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("enroll", "run", "status", "install", "uninstall"):
        assert f"\n  {command} " in result.output
    help_text = subprocess.run(
        [script("deskside-agent"), "install", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Usage: deskside-agent install [OPTIONS] ENROLLMENT-STRING" in help_text
    assert "--service-manager [auto|systemd|launchd|windows|none]" in help_text


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
