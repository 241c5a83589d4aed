from __future__ import annotations

import subprocess
from importlib.metadata import version

from click.testing import CliRunner

from deskside.agent.cli import main
from tests.helpers import script


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"deskside-agent, version {version('deskside')}\n"
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Deskside agent" in result.output


def test_console_script_is_installed() -> None:
    path = script("deskside-agent")
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("deskside-agent, version ")


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output
