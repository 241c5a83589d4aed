from __future__ import annotations

import subprocess
from importlib.metadata import version

from click.testing import CliRunner

from deskside.console.cli import main
from tests.helpers import script


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"deskside-console, version {version('deskside')}\n"
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_demo_runs_a_real_channel_in_a_subprocess() -> None:
    path = script("deskside-console")
    result = subprocess.run(
        [path, "demo", "--messages", "50"], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("console listening on ws://127.0.0.1:")
    assert "Noise IK handshake" in lines[1]
    assert "received 50 heartbeats" in result.stdout
    assert lines[-1] == "channel closed"


def test_demo_checks_its_argument() -> None:
    result = CliRunner().invoke(main, ["demo", "--messages", "0"])
    assert result.exit_code == 2
    assert "between 1 and 1000000" in result.output
