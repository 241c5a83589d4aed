"""The real agent against the real console, as processes on 127.0.0.1.

``deskside-console serve`` runs with TLS on a free port; ``deskside-agent`` is
enrolled and run through its command line, as a user would.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent.conftest import Agent, eventually
from tests.consoleproc import ConsoleProcess
from tests.helpers import script


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    the_agent = Agent(tmp_path / "agent")
    try:
        yield the_agent
    finally:
        await the_agent.stop_all()


def status(agent: Agent) -> dict[str, object]:
    path = agent.paths.state_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def device_state(console: ConsoleProcess) -> str:
    lines = console.cli("devices").stdout.splitlines()[1:]
    found = re.search(r"  (online|offline|revoked)  ", lines[0]) if lines else None
    return found.group(1) if found else "none"


async def enroll(agent: Agent, console: ConsoleProcess) -> str:
    result = await agent.cli("enroll", console.enrollment())
    assert result.returncode == 0, result.stderr
    match = re.search(r"\bd[0-9a-f]{19}\b", result.stdout)
    assert match, result.stdout
    return match.group(0)


async def test_help_request_reaches_ticket_show_with_its_snapshot(
    console: ConsoleProcess, agent: Agent
) -> None:
    device = await enroll(agent, console)
    assert device in console.cli("devices").stdout
    result = await agent.cli(
        "help", "Outlook crashes when I open the calendar", "--urgency", "high"
    )
    assert result.returncode == 0, result.stderr
    number = re.search(r"Ticket #(\d+) filed\.", result.stdout)
    assert number, result.stdout
    shown = console.cli("ticket", "show", number.group(1)).stdout
    assert "Outlook crashes when I open the calendar" in shown
    assert f"agent:{device}" in shown
    assert "diagnostics: snapshot taken" in shown
    assert re.search(r"memory \d+% used of [\d.]+ GiB", shown), shown  # a real snapshot
    assert "P3" in shown  # impact low x urgency high


async def test_spent_token_and_revoked_device_are_refused(
    console: ConsoleProcess, agent: Agent, tmp_path: Path
) -> None:
    enrollment = console.enrollment()
    first = await agent.cli("enroll", enrollment)
    assert first.returncode == 0, first.stderr
    other = Agent(tmp_path / "other")
    second = await other.cli("enroll", enrollment)
    assert second.returncode == 1
    assert "already used" in second.stderr
    assert not other.paths.config_dir.exists() or not any(other.paths.config_dir.iterdir())
    device = re.search(r"\bd[0-9a-f]{19}\b", first.stdout)
    assert device
    await agent.start_daemon()
    await eventually(lambda: device_state(console) == "online", 20)
    console.cli("device", "revoke", device.group(0))
    await agent.wait_log(lambda text: "refused" in text, 30)
    assert device_state(console) == "revoked"
    refused = await agent.cli("help", "still there?")
    assert "refused" in (refused.stdout + refused.stderr)


async def test_console_restart_and_help_while_down(console: ConsoleProcess, agent: Agent) -> None:
    await enroll(agent, console)
    daemon = await agent.start_daemon()
    await eventually(lambda: status(agent).get("connected") is True, 20)

    console.stop(signal.SIGKILL)  # a crash: no goodbye to the agents
    await eventually(lambda: status(agent).get("connected") is False, 20)
    offline = await agent.cli("help", "The Wi-Fi keeps dropping")
    assert offline.returncode == 0
    assert "saved" in offline.stdout
    assert len(list((agent.paths.state_dir / "spool").glob("*.msgpack"))) == 1

    console.start()
    await eventually(lambda: status(agent).get("connected") is True, 30)
    await eventually(lambda: not list((agent.paths.state_dir / "spool").glob("*.msgpack")), 30)
    listed = console.cli("tickets").stdout
    assert listed.count("The Wi-Fi keeps dropping") == 1
    # The daemon is still the same process: it came back by itself.
    assert daemon.returncode is None
    await asyncio.sleep(1.0)  # nothing is delivered twice after a while either
    assert console.cli("tickets").stdout.count("The Wi-Fi keeps dropping") == 1


def set_policy(agent: Agent, table: str) -> None:
    """Replace the agent's [commands] table (the machine owner's policy)."""
    config = agent.paths.config_dir / "agent.toml"
    text = config.read_text()
    head = text.split("[commands]")[0]
    config.write_text(head.rstrip() + "\n\n[commands]\n" + table)


async def console_cli(
    console: ConsoleProcess, *args: str, stdin: bytes = b""
) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir), *args,
        stdin=PIPE, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_commands_and_a_terminal_from_the_console_to_the_agent(
    console: ConsoleProcess, agent: Agent
) -> None:
    device = await enroll(agent, console)
    set_policy(agent, 'mode = "any"\nconsent = "none"\nshell = true\n')
    await agent.start_daemon()
    await eventually(lambda: device_state(console) == "online", 20)
    number = (
        console.cli(
            "ticket", "new", "--title", "Disk full", "--description", "d", "--device", device
        )
        .stdout.split("#")[1]
        .split()[0]
    )

    # Output streams while the command runs; the exit code comes through.
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir),
        "run", "--ticket", number, "--as", "admin", "--",
        "sh", "-c", "echo one; sleep 2; echo two; exit 7",
        stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 20)
    assert first == b"one\n"
    assert process.returncode is None  # still running: "one" came before the end
    rest = await asyncio.wait_for(process.stdout.read(), 20)
    assert rest == b"two\n"
    assert await process.wait() == 7

    # An interactive terminal: typed input is echoed by a real shell on a PTY.
    code, stdout, _ = await console_cli(
        console, "terminal", "--ticket", number, "--as", "admin",
        stdin=b"echo hello-from-the-pty; exit 3\n",
    )  # fmt: skip
    assert code == 3
    assert b"hello-from-the-pty" in stdout

    # The owner's policy has the last word: what it does not allow is refused; its
    # named scripts run, with the technician's arguments appended.
    set_policy(
        agent,
        'mode = "allowlist"\nallow = [["uptime"]]\nconsent = "none"\n\n'
        '[commands.scripts]\ngreet = ["echo", "hello"]\n',
    )
    await agent.stop_all()
    await agent.start_daemon()  # the policy is read on each connect
    await eventually(lambda: device_state(console) == "online", 20)
    await asyncio.sleep(0.5)
    code, _, stderr = await console_cli(
        console, "run", "--ticket", number, "--as", "admin", "--", "rm", "-rf", "/tmp/x"
    )
    assert code == 126
    assert b"refused" in stderr
    code, stdout, _ = await console_cli(
        console, "run", "--ticket", number, "--as", "admin", "--script", "greet", "--", "world"
    )
    assert (code, stdout) == (0, b"hello world\n")
    shown = console.cli("ticket", "show", number).stdout
    assert "script greet world" in shown
    assert "terminal started, allowed by policy" in shown
    assert "sh -c echo one; sleep 2; echo two; exit 7" in shown
    assert "finished, exit 7" in shown
    assert "terminal closed, exit 3" in shown
    assert "refused, exit None" in shown
    verified = await agent.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout
    assert console.cli("audit", "verify").returncode == 0
