"""The ``deskside-agent`` command line: exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskside.agent.cli import main
from deskside.agent.config import AgentPaths
from deskside.agent.help_request import build_help_request
from deskside.agent.spool import Spool
from deskside.protocol import messages as m
from tests.agent.conftest import Agent, eventually
from tests.agent.fake_console import FakeConsole
from tests.helpers import script


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"deskside-agent, version {version('deskside')}\n"
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Deskside agent" in result.output
    for command in ("enroll", "run", "help", "status", "diagnose"):
        assert command in result.output
    result = runner.invoke(main, ["status", "--help"])
    assert "3 when not enrolled" in result.output
    result = runner.invoke(main, ["run", "--help"])
    assert "DESKSIDE_AGENT_BACKOFF_MAX" in result.output


def test_console_script_is_installed() -> None:
    path = script("deskside-agent")
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("deskside-agent, version ")


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def invoke(paths: AgentPaths, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process with ``paths``; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(
        main,
        ["--config-dir", str(paths.config_dir), "--state-dir", str(paths.state_dir), *args],
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths(config_dir=tmp_path / "config", state_dir=tmp_path / "state")


def test_status_when_not_enrolled(paths: AgentPaths) -> None:
    code, out, _ = invoke(paths, "status")
    assert code == 3
    assert "Enrolled: no" in out
    assert not paths.config_dir.exists()


def test_directories_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKSIDE_AGENT_CONFIG_DIR", str(tmp_path / "env-config"))
    monkeypatch.setenv("DESKSIDE_AGENT_STATE_DIR", str(tmp_path / "env-state"))
    (tmp_path / "env-config").mkdir()
    (tmp_path / "env-config" / "agent.toml").write_text("[console\n")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert "env-config" in result.stderr
    # The option wins over the variable.
    result = CliRunner().invoke(main, ["--config-dir", str(tmp_path / "elsewhere"), "status"])
    assert result.exit_code == 3


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[console\n", "not valid TOML"),
        ("[agent]\ndevice_id = 'd1'\n", "the [console] table is missing"),
        (
            "[console]\nurl = 'ftp://x'\npublic_key = 'AAAA'\n[agent]\ndevice_id = 'd1'\n",
            "[console] url",
        ),
        (
            "[console]\nurl = 'ws://h/agent'\npublic_key = 'not base64!'\n"
            "[agent]\ndevice_id = 'd1'\n",
            "public_key is not base64",
        ),
        (
            "[console]\nurl = 'ws://h/agent'\npublic_key = 'AAAA'\n[agent]\ndevice_id = 'd1'\n",
            "public_key is 3 bytes",
        ),
        (
            f"[console]\nurl = 'ws://h/agent'\npublic_key = '{'A' * 43}='\n"
            "[agent]\ndevice_id = 'd1'\nheartbeat = 5\n",
            "unknown keys: heartbeat",
        ),
        (
            f"[console]\nurl = 'ws://h/agent'\npublic_key = '{'A' * 43}='\n"
            "[agent]\ndevice_id = 'd1'\nheartbeat_interval = 'often'\n",
            "heartbeat_interval must be a number",
        ),
    ],
)
def test_corrupt_config_is_a_clear_error(paths: AgentPaths, text: str, complaint: str) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text(text)
    for command in (["status"], ["run"], ["help", "x"]):
        code, _, err = invoke(paths, *command)
        assert code == 1
        assert complaint in err
        assert str(paths.config_file) in err
        assert "Traceback" not in err


def test_run_and_help_need_enrollment(paths: AgentPaths) -> None:
    for command in (["run"], ["help", "broken"]):
        code, _, err = invoke(paths, *command)
        assert code == 1
        assert "not enrolled" in err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([""], "cannot be empty"),
        (["   \n"], "cannot be empty"),
        (["x" * 65537], "at most 65536"),
        (["x", "--impact", "huge"], "'huge' is not one of"),
        (["x", "--requester", "r" * 257], "at most 256"),
        ([], "Missing argument"),
    ],
)
def test_help_checks_its_arguments(paths: AgentPaths, args: list[str], complaint: str) -> None:
    code, _, err = invoke(paths, "help", *args)
    assert code == 2
    assert complaint in err


async def test_status_after_enrollment(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    Spool(agent.paths.spool_dir).add(build_help_request("queued"))
    result = await agent.cli("status")
    assert result.returncode == 0
    assert "Enrolled: yes" in result.stdout
    assert f"Device id: {device}" in result.stdout
    assert f"Console: {console.url}" in result.stdout
    assert "Daemon: not running" in result.stdout
    assert "Spooled help requests: 1" in result.stdout

    await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device))
    await agent.wait_log(lambda log: "filed as ticket #1" in log)
    await eventually(lambda: not Spool(agent.paths.spool_dir).count())
    result = await agent.cli("status")
    assert result.returncode == 0
    assert "Daemon: running (pid" in result.stdout
    assert "Connected: yes, since" in result.stdout
    assert "Last contact:" in result.stdout
    assert "Spooled help requests: 0" in result.stdout
    assert "Last ticket: #1" in result.stdout


async def test_help_while_the_console_is_up(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    console.tickets["earlier"] = 1
    result = await agent.cli(
        "help", "Outlook will not start", "--impact", "high", "--requester", "Ada"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Ticket #2 filed.\n"
    assert Spool(agent.paths.spool_dir).count() == 0
    (request,) = console.received(device, m.HelpRequest)
    assert isinstance(request, m.HelpRequest)
    assert request.impact is m.Impact.HIGH
    assert request.urgency is m.Urgency.MEDIUM
    assert request.requester == "Ada"
    assert request.snapshot is not None
    assert len(request.request_id) == 32
    assert abs(request.created_at - time.time()) < 60


async def test_diagnose(agent: Agent, console: FakeConsole) -> None:
    result = await agent.cli("diagnose", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["os"]["hostname"]
    await agent.enroll(console)
    result = await agent.cli("diagnose")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


async def test_help_without_console_or_daemon(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    await console.stop()
    result = await agent.cli("help", "nothing works")
    assert result.returncode == 0
    assert "saved" in result.stdout
    assert "daemon is not running" in result.stderr
    assert Spool(agent.paths.spool_dir).count() == 1
    result = await agent.cli("status")
    assert "Spooled help requests: 1" in result.stdout
