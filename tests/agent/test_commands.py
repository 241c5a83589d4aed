"""Remote commands: the real ``deskside-agent run`` against the fake console."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import msgspec
import psutil  # type: ignore[import-untyped]
import pytest

from deskside.agent.audit import verify_log
from deskside.agent.commands import CommandRecord
from deskside.agent.config import AgentPaths, load_enrolled
from deskside.agent.daemon import Daemon, DaemonSettings
from deskside.agent.enrollment import enroll
from deskside.agent.executor import CHUNK_SIZE
from deskside.agent.policy import CommandMode, ConsentMode, Unattended
from deskside.protocol import messages as m
from deskside.protocol.enrollment import parse_enrollment
from tests.agent.conftest import Agent, eventually
from tests.agent.fake_console import FakeConsole


async def connected(console: FakeConsole, agent: Agent, **env: str) -> m.DeviceId:
    """Start the daemon of the enrolled agent (policy written) and wait for its Hello."""
    (device,) = console.devices
    await agent.start_daemon(**env)
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 2)
    return device


async def reconnected(console: FakeConsole, device: m.DeviceId) -> None:
    """Restart the console (the daemon reads its configuration again) and wait for it."""
    hellos = len(console.received(device, m.Hello))
    await console.stop()
    await console.start()
    await console.wait_for(lambda: len(console.received(device, m.Hello)) > hellos)


async def finished(
    console: FakeConsole, device: m.DeviceId, command_id: str, timeout: float = 15.0
) -> m.CommandExit:
    """Wait for a command's exit."""
    await console.wait_for(lambda: console.exit(device, command_id) is not None, timeout)
    exit = console.exit(device, command_id)
    assert exit is not None
    return exit


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of a process group."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (psutil.Error, ProcessLookupError):
            pass
    return members


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


async def test_output_streams_before_the_command_ends(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    device = await connected(console, agent)

    sent = time.monotonic()
    command = await console.run(
        device, "sh", "-c", "echo one; sleep 2; echo two >&2", reason="slow"
    )
    await console.wait_for(lambda: b"one" in console.output(device, command))
    assert time.monotonic() - sent < 1.5
    assert console.exit(device, command) is None  # still running
    started = console.started(device, command)
    assert started is not None
    assert started.consent == "policy"

    exit = await finished(console, device, command)
    assert (exit.exit_code, exit.refused, exit.timed_out, exit.cancelled) == (
        0,
        False,
        False,
        False,
    )
    assert exit.duration >= 2.0
    chunks = console.chunks(device, command)
    assert sorted(chunks) == list(range(len(chunks)))
    assert console.output(device, command, "stdout") == b"one\n"
    assert console.output(device, command, "stderr") == b"two\n"

    # Acknowledged by the console: the result spool goes, the record stays.
    (entry,) = await agent.wait_audit(lambda entries: len(entries) == 1)
    assert entry["event"] == "ran"
    assert entry["command_id"] == command
    assert entry["argv"] == ["sh", "-c", "echo one; sleep 2; echo two >&2"]
    assert (entry["exit_code"], entry["consent"], entry["requested_by"]) == (0, "policy", "tech")
    commands_dir = agent.paths.commands_dir
    await eventually(lambda: not (commands_dir / f"{command}.results").exists())
    record = msgspec.json.decode(
        (commands_dir / f"{command}.json").read_bytes(), type=CommandRecord
    )
    assert (record.state, record.exit_code) == ("delivered", 0)
    assert (agent.paths.audit_file.stat().st_mode & 0o777) == 0o600
    assert "one" not in agent.log()  # output never reaches the agent's log

    # A shell command, where the policy allows it.
    agent.set_policy(consent=ConsentMode.NONE, shell=True)
    await reconnected(console, device)
    command = await console.run(device, "echo $((6 * 7)) | tr 4 x", shell=True)
    exit = await finished(console, device, command)
    assert exit.exit_code == 0
    assert console.output(device, command) == b"x2\n"


async def test_timeout_and_cancel_end_the_whole_tree(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    device = await connected(console, agent)
    # A grandchild that ignores SIGTERM, so SIGKILL must follow.
    script = "(trap '' TERM; exec sleep 60) & echo $$ $!; wait"

    timed = await console.run(device, "sh", "-c", script, timeout=1.0)
    cancelled = await console.run(device, "sh", "-c", script, timeout=60.0)
    await console.wait_for(lambda: console.output(device, cancelled).count(b" ") == 1)
    await console.send(device, m.CommandCancel(command_id=cancelled))

    for command, flag in ((timed, "timed_out"), (cancelled, "cancelled")):
        exit = await finished(console, device, command)
        assert getattr(exit, flag)
        assert exit.exit_code == -signal.SIGTERM  # the shell obeyed SIGTERM
        assert exit.duration < 5
        pgid, grandchild = map(int, console.output(device, command).split())
        assert not alive(grandchild)
        assert group_members(pgid) == []
    entries = await agent.wait_audit(lambda entries: len(entries) == 2)
    flags = {entry["command_id"]: entry for entry in entries}
    assert flags[timed]["timed_out"] is True
    assert flags[cancelled]["cancelled"] is True


async def test_output_cap_ends_the_command(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE, output_cap=100_000)
    device = await connected(console, agent)
    command = await console.run(device, "yes", "deskside")
    exit = await finished(console, device, command)
    assert exit.output_truncated
    assert exit.exit_code is not None
    assert exit.exit_code < 0
    output = console.output(device, command)
    assert len(output) == 100_000
    assert output.startswith(b"deskside\ndeskside\n")
    assert all(len(chunk.data) <= CHUNK_SIZE for chunk in console.chunks(device, command).values())


async def test_policy_refuses_what_it_does_not_allow(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    agent.set_policy(
        mode=CommandMode.ALLOWLIST,
        consent=ConsentMode.NONE,
        allow=(("echo", "hello", "**"), ("printf", "%s-%s", "*", "*")),
        scripts={"greet": ("echo", "hi")},
        shell=True,
    )
    device = await connected(console, agent)

    allowed = await console.run(device, "echo", "hello", "big", "world")
    script = await console.run(device, "there", script="greet")
    pattern = await console.run(device, "printf", "%s-%s", "a", "b")
    refused = {
        await console.run(device, "ls", "/"): "matches no allow-list entry",
        await console.run(device, "printf", "%s-%s", "a"): "matches no allow-list entry",
        await console.run(device, "echo hello", shell=True): "shell commands cannot be checked",
        await console.run(device, "x", script="nope"): "no script named 'nope'",
        await console.run(device, "echo", "hello", cwd="relative"): "absolute path",
    }
    for command in (allowed, script, pattern):
        assert (await finished(console, device, command)).exit_code == 0
    assert console.output(device, allowed) == b"hello big world\n"
    assert console.output(device, script) == b"hi there\n"
    assert console.output(device, pattern) == b"a-b"
    for command, reason in refused.items():
        exit = await finished(console, device, command)
        assert exit.refused, command
        assert exit.exit_code is None
        assert reason in exit.error
        assert console.started(device, command) is None
    entries = await agent.wait_audit(lambda entries: len(entries) == 8)
    by_id = {entry["command_id"]: entry for entry in entries}
    for command, reason in refused.items():
        assert by_id[command]["event"] == "refused"
        assert reason in by_id[command]["reason"]
    assert by_id[script]["argv"] == ["echo", "hi", "there"]  # as it ran
    assert by_id[next(iter(refused))]["argv"] == ["ls", "/"]  # as it was asked for
    assert by_id[script]["script"] == "greet"

    # Commands off: nothing runs, and a terminal is refused too.
    agent.set_policy(mode=CommandMode.OFF, consent=ConsentMode.NONE)
    await reconnected(console, device)
    off = await console.run(device, "echo", "hello")
    exit = await finished(console, device, off)
    assert exit.refused
    assert exit.error == "not allowed by this device's policy: commands are off"
    await console.send(device, m.ShellOpen(session_id="s1", ticket_id=1, requested_by="tech"))
    await console.wait_for(lambda: console.shell_closed(device, "s1") is not None)
    closed = console.shell_closed(device, "s1")
    assert closed is not None
    assert closed.refused
    assert "commands are off" in closed.error
    result = await agent.cli("audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "10 entries, chain intact" in result.stdout


async def test_consent_without_a_desktop(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    device = await connected(console, agent)  # the defaults: prompt, unattended refuse
    command = await console.run(device, "echo", "hi")
    exit = await finished(console, device, command)
    assert exit.refused
    refusal = "no desktop session to ask; policy refuses"
    assert exit.error == (
        f'{refusal} (to allow it: consent = "notify" or unattended = "allow" under [commands] '
        f"in {agent.paths.config_file}; read again at the next request, no restart needed)"
    )

    agent.set_policy(unattended=Unattended.ALLOW)  # no restart, no reconnection
    command = await console.run(device, "echo", "hi")
    exit = await finished(console, device, command)
    assert exit.exit_code == 0
    started = console.started(device, command)
    assert started is not None
    assert started.consent == "policy"
    entries = await agent.wait_audit(lambda entries: len(entries) == 2)
    assert [e["event"] for e in entries] == ["refused", "ran"]
    assert entries[0]["reason"].startswith(refusal + " (to allow it:")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_run_as_switches_user(console: FakeConsole, agent: Agent) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE, run_as="nobody", cwd="/")
    device = await connected(console, agent)
    command = await console.run(device, "sh", "-c", 'id -un; echo "$HOME"; pwd')
    exit = await finished(console, device, command)
    assert exit.exit_code == 0, console.output(device, command)
    import pwd

    home = pwd.getpwnam("nobody").pw_dir
    assert console.output(device, command).decode().split("\n")[:3] == ["nobody", home, "/"]


async def test_a_dropped_connection_neither_repeats_nor_loses_a_command(
    console: FakeConsole, agent: Agent, tmp_path: Path
) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    device = await connected(console, agent)
    (daemon,) = agent.processes
    marker = tmp_path / "ran"
    argv = ["sh", "-c", f"echo start; echo x >> {marker}; sleep 2; echo done"]
    request = m.CommandRequest(command_id="c-drop", ticket_id=4, argv=argv, requested_by="tech")
    await console.send(device, request)
    await console.wait_for(lambda: b"start" in console.output(device, "c-drop"))

    await console.stop()  # the connection drops mid-command, which ends while it is down
    record_file = agent.paths.commands_dir / "c-drop.json"
    await eventually(lambda: b'"finished"' in record_file.read_bytes())
    await console.start()
    await console.wait_for(lambda: console.connected(device), 10)
    await console.send(device, request)  # the console asks again: not started again
    exit = await finished(console, device, "c-drop")
    assert exit.exit_code == 0
    assert console.output(device, "c-drop") == b"start\ndone\n"
    chunks = console.chunks(device, "c-drop")
    assert sorted(chunks) == list(range(len(chunks)))
    assert marker.read_text() == "x\n"

    # Its exit came once; acknowledged, the result is forgotten and the id stays known.
    await eventually(lambda: not (agent.paths.commands_dir / "c-drop.results").exists())
    assert len(console.exits(device, "c-drop")) == 1
    await console.send(device, request)
    await console.wait_for(lambda: bool(console.received(device, m.Error)))
    (error,) = console.received(device, m.Error)
    assert isinstance(error, m.Error)
    assert (error.code, error.request_id) == (m.ErrorCode.BAD_REQUEST, "c-drop")
    assert "it ran, exit code 0" in error.message
    assert "not run again" in error.message
    assert marker.read_text() == "x\n"
    assert [e["event"] for e in agent.audit()] == ["ran"]

    # A result never acknowledged is sent again after each reconnect, until it is.
    console.ack_commands = False
    quick = await console.run(device, "echo", "unacknowledged")
    await finished(console, device, quick)
    await reconnected(console, device)
    await console.wait_for(lambda: len(console.exits(device, quick)) == 2, 10)
    assert console.output(device, quick) == b"unacknowledged\n"
    console.ack_commands = True
    await reconnected(console, device)
    await console.wait_for(lambda: len(console.exits(device, quick)) == 3, 10)
    await eventually(lambda: not (agent.paths.commands_dir / f"{quick}.results").exists())

    # SIGTERM mid-command: the tree is ended, recorded, and the exit sent before leaving.
    long = await console.run(device, "sh", "-c", "echo $$; sleep 60")
    await console.wait_for(lambda: bool(console.output(device, long)))
    pgid = int(console.output(device, long))
    daemon.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(daemon.wait(), 10) == 0
    exit = await finished(console, device, long, 5)
    assert exit.error == "the agent stopped; the command was ended"
    assert group_members(pgid) == []
    assert agent.audit()[-1]["command_id"] == long


async def test_a_record_cut_short_by_a_crash_still_keeps_its_command_from_running(
    console: FakeConsole, agent: Agent, tmp_path: Path
) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    device = await connected(console, agent)
    # What a power cut between creating a command's record and syncing it leaves.
    agent.paths.commands_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (agent.paths.commands_dir / "c-torn.json").write_bytes(b"")
    marker = tmp_path / "ran"
    await console.send(
        device,
        m.CommandRequest(
            command_id="c-torn", ticket_id=4, argv=["touch", str(marker)], requested_by="tech"
        ),
    )
    await console.wait_for(lambda: bool(console.received(device, m.Error)))
    (error,) = console.received(device, m.Error)
    assert isinstance(error, m.Error)
    assert (error.code, error.request_id) == (m.ErrorCode.BAD_REQUEST, "c-torn")
    assert "not run again" in error.message
    assert not marker.exists()


async def test_a_killed_agent_reports_the_lost_command_after_restart(
    console: FakeConsole, agent: Agent
) -> None:
    await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    device = await connected(console, agent)
    (daemon,) = agent.processes
    command = await console.run(device, "sh", "-c", "echo $$; exec sleep 30")
    await console.wait_for(lambda: bool(console.output(device, command)))
    pgid = int(console.output(device, command))
    daemon.kill()
    await daemon.wait()
    try:
        await agent.start_daemon()
        exit = await finished(console, device, command)
        assert exit.exit_code is None
        assert "outcome is unknown" in exit.error
        (entry,) = agent.audit()
        assert entry["event"] == "interrupted"
    finally:
        os.killpg(pgid, signal.SIGKILL)


# -- In this process, where the real subprocess cannot do it ----------------------------


async def test_run_as_without_root_is_refused(
    console: FakeConsole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = AgentPaths(config_dir=tmp_path / "config", state_dir=tmp_path / "state")
    enrollment = parse_enrollment(console.enrollment_string(console.new_token()))
    config, identity = await enroll(paths, enrollment)
    import dataclasses

    from deskside.agent.config import save_config
    from deskside.agent.policy import CommandPolicy

    save_config(
        paths,
        dataclasses.replace(
            config, commands=CommandPolicy(consent=ConsentMode.NONE, run_as="nobody")
        ),
    )
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as an ordinary user
    loaded = load_enrolled(paths)
    assert loaded is not None
    daemon = Daemon(
        paths, *loaded, DaemonSettings(backoff_max=0.2, stop_timeout=1.0), rng=random.Random(0)
    )
    task = asyncio.create_task(daemon.run())
    try:
        device = identity.device_id
        await console.wait_for(lambda: console.connected(device))
        command = await console.run(device, "id")
        exit = await finished(console, device, command)
        assert exit.refused
        assert "run_as = 'nobody'" in exit.error
        assert "needs the agent to run as root" in exit.error
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 5)
    result = verify_log(paths.audit_file, paths.audit_head_file)
    assert str(result) == "1 entry, chain intact"
