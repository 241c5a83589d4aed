"""``deskside-agent run`` as a real process against a fake console on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import signal
import time
from pathlib import Path
from typing import Any, cast, get_args

import pytest

from deskside.agent.audit import AuditLog
from deskside.agent.chat.policy import ChatPolicy
from deskside.agent.chat.service import ChatService
from deskside.agent.commands import CommandService
from deskside.agent.config import AgentConfig, AgentPaths, Identity, load_enrolled
from deskside.agent.daemon import Daemon, DaemonSettings
from deskside.agent.enrollment import enroll
from deskside.agent.help_request import build_help_request
from deskside.agent.policy import CommandPolicy
from deskside.agent.screen.policy import ScreenPolicy
from deskside.agent.screen.service import ScreenService
from deskside.agent.spool import Spool
from deskside.agent.state import read_status, read_tickets
from deskside.agent.terminal import TerminalService
from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m
from deskside.protocol.enrollment import parse_enrollment
from tests.agent.conftest import Agent, eventually
from tests.agent.fake_console import FakeConsole


async def test_daemon_says_hello_beats_and_answers_snapshots(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    agent.set_heartbeat(0.2)
    await agent.start_daemon()

    await console.wait_for(lambda: len(console.received(device, m.Heartbeat)) >= 3)
    messages = console.messages[device]
    # The enrollment channel said Hello, then the daemon's channel said it again first.
    hellos = [i for i, message in enumerate(messages) if isinstance(message, m.Hello)]
    assert len(hellos) == 2
    assert not any(isinstance(message, m.Heartbeat) for message in messages[: hellos[1]])
    heartbeat = console.received(device, m.Heartbeat)[-1]
    assert isinstance(heartbeat, m.Heartbeat)
    assert heartbeat.metrics is not None
    assert abs(heartbeat.sent_at - time.time()) < 5

    await console.request_snapshot(device, "snap-1")
    await console.wait_for(lambda: bool(console.received(device, m.DiagnosticsSnapshot)), 30)
    (answer,) = console.received(device, m.DiagnosticsSnapshot)
    assert isinstance(answer, m.DiagnosticsSnapshot)
    assert answer.request_id == "snap-1"
    assert answer.snapshot.os.hostname

    status = read_status(agent.paths.status_file)
    assert status is not None
    assert status.connected
    assert status.running
    assert status.device_id == device
    assert status.console_url == console.url
    assert status.connected_since is not None
    assert status.last_contact is not None
    assert status.last_contact >= status.connected_since


async def test_daemon_comes_back_after_a_console_restart(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()
    await console.wait_for(lambda: len(console.received(device, m.Hello)) == 2)
    assert console.connections[device] == 2  # enrollment, then the daemon

    await console.stop()
    await agent.wait_log(lambda log: "connection to the console lost" in log)
    await agent.wait_log(lambda log: log.count("cannot connect") >= 2)  # still retrying
    status = read_status(agent.paths.status_file)
    assert status is not None
    assert not status.connected
    assert status.last_error

    await console.start()  # same port
    await console.wait_for(lambda: console.connected(device), 10)
    assert console.connections[device] == 3
    await console.wait_for(lambda: len(console.received(device, m.Hello)) == 3)
    log = agent.log()
    assert "WARNING" in log
    assert console.private_key.hex() not in log


async def test_help_while_the_console_is_down_is_delivered_once(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()
    await console.wait_for(lambda: len(console.received(device, m.Hello)) == 2)
    await console.stop()

    result = await agent.cli("help", "VPN drops every ten minutes", "--urgency", "high")
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout
    assert "agent daemon" in result.stdout
    spool = Spool(agent.paths.spool_dir)
    assert spool.count() == 1

    await console.start()
    await console.wait_for(lambda: len(console.tickets) == 1, 15)
    await agent.wait_log(lambda log: "filed as ticket #1" in log)
    assert spool.count() == 0
    requests = [r for r in console.received(device, m.HelpRequest) if isinstance(r, m.HelpRequest)]
    assert {r.request_id for r in requests} == set(console.tickets)
    request = requests[0]
    assert request.description == "VPN drops every ten minutes"
    assert request.urgency is m.Urgency.HIGH
    assert request.impact is m.Impact.LOW
    assert request.snapshot is not None
    (record,) = read_tickets(agent.paths.tickets_file)
    assert (record.request_id, record.ticket_id) == (request.request_id, 1)

    # A reconnect does not send it again: the spool is empty.
    hellos = len(console.received(device, m.Hello))
    await console.stop()
    await console.start()
    await console.wait_for(lambda: len(console.received(device, m.Hello)) > hellos, 10)
    await asyncio.sleep(1.0)  # two spool intervals
    assert len(console.tickets) == 1
    assert len(console.received(device, m.HelpRequest)) == len(requests)


async def test_spooled_request_sent_twice_files_one_ticket(
    console: FakeConsole, agent: Agent
) -> None:
    # A request sent, then the connection lost before the Ack: sent again after the
    # reconnect, the console de-duplicates it.
    device = await agent.enroll(console)
    request = build_help_request("screen flickers")
    Spool(agent.paths.spool_dir).add(request)
    console.tickets[request.request_id] = 7  # the console already filed it, Ack lost
    await agent.start_daemon()
    await console.wait_for(lambda: bool(console.received(device, m.HelpRequest)))
    await agent.wait_log(lambda log: "filed as ticket #7" in log)
    assert Spool(agent.paths.spool_dir).count() == 0
    assert console.tickets == {request.request_id: 7}


async def test_new_spool_files_are_noticed(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device))
    request = build_help_request("keyboard sticky")
    Spool(agent.paths.spool_dir).add(request)
    await console.wait_for(lambda: request.request_id in console.tickets, 10)
    await agent.wait_log(lambda log: "filed as ticket" in log)
    assert Spool(agent.paths.spool_dir).count() == 0


async def test_corrupt_spool_file_is_set_aside(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    spool = Spool(agent.paths.spool_dir)
    good = build_help_request("mouse gone")
    spool.add(good)
    (agent.paths.spool_dir / "0123abcd.msgpack").write_bytes(b"\xc1 not msgpack")
    await agent.start_daemon()
    await console.wait_for(lambda: good.request_id in console.tickets, 10)
    await agent.wait_log(lambda log: "filed as ticket" in log)
    log = await agent.wait_log(lambda log: "unreadable spool file 0123abcd.msgpack" in log)
    assert "WARNING" in log
    assert (agent.paths.spool_dir / "bad" / "0123abcd.msgpack").exists()
    assert spool.count() == 0
    assert console.connected(device)  # the daemon went on


async def test_sigterm_stops_the_daemon(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    process = await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device))
    await agent.wait_log(lambda log: "connected to" in log)

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 5) == 0
    assert time.monotonic() - started < 2.5
    await console.wait_for(lambda: not console.connected(device), 5)
    status = read_status(agent.paths.status_file)
    assert status is not None
    assert not status.connected
    assert not status.running
    assert "agent stopped" in agent.log()


async def test_sigint_while_disconnected(agent: Agent, console: FakeConsole) -> None:
    await agent.enroll(console)
    await console.stop()
    process = await agent.start_daemon()
    await agent.wait_log(lambda log: "cannot connect" in log)
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 5) == 0
    status = read_status(agent.paths.status_file)
    assert status is not None
    assert not status.running


async def test_revoked_device_is_an_error_and_retried(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device))

    await console.revoke(device)
    log = await agent.wait_log(lambda log: log.count("refused device") >= 2)
    assert "ERROR" in log
    assert "device revoked" in log  # the console's reason, on the open channel
    assert "unknown or revoked device" in log  # ... and in the handshake after

    console.readmit(device)
    await console.wait_for(lambda: console.connected(device), 10)


async def test_a_busy_console_is_asked_again_after_its_wait(
    console: FakeConsole, agent: Agent
) -> None:
    """Refused with 1013, the daemon waits the console's second on top of its backoff
    (at most 0.5 s here) and then connects."""
    device = await agent.enroll(console)
    console.busy = 1
    await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device), 10)
    log = agent.log()
    assert "busy" in log
    waits = [float(w) for w in re.findall(r"next connection attempt in ([0-9.]+) s", log)]
    assert waits
    assert 1.0 <= waits[0] <= 1.6


async def test_second_daemon_is_refused(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()
    await console.wait_for(lambda: console.connected(device))
    await agent.wait_log(lambda log: "connected to" in log)
    result = await agent.cli("run")
    assert result.returncode == 1
    assert "already running" in result.stderr


# -- The daemon in this process, with diagnostics replaced ------------------------------


@pytest.fixture
async def enrolled(console: FakeConsole, tmp_path: Path) -> tuple[AgentPaths, m.DeviceId]:
    paths = AgentPaths(config_dir=tmp_path / "config", state_dir=tmp_path / "state")
    enrollment = parse_enrollment(console.enrollment_string(console.new_token()))
    _, identity = await enroll(paths, enrollment)
    return paths, identity.device_id


@pytest.fixture
def fake_diagnostics(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Replace the diagnostics with small fakes; the console URLs snapshots were taken for."""
    from deskside.agent import diagnostics

    calls: list[str | None] = []

    async def collect_snapshot(*, console_url: str | None = None, timeout: float = 10.0) -> Any:
        calls.append(console_url)
        if console_url == "fail":
            raise RuntimeError("collector exploded")
        return m.Snapshot(taken_at=time.time(), os=m.OsInfo(family=m.OsFamily.OTHER, name="x"))

    def collect_metrics() -> m.Metrics:
        return m.Metrics(cpu_percent=1.0, memory_percent=2.0)

    monkeypatch.setattr(diagnostics, "collect_snapshot", collect_snapshot)
    monkeypatch.setattr(diagnostics, "collect_metrics", collect_metrics)
    return calls


FAST = DaemonSettings(backoff_max=0.2, spool_interval=0.1, stop_timeout=1.0)


async def start(paths: AgentPaths) -> tuple[Daemon, asyncio.Task[None]]:
    loaded = load_enrolled(paths)
    assert loaded is not None
    daemon = Daemon(paths, *loaded, FAST, rng=random.Random(0))
    return daemon, asyncio.create_task(daemon.run())


async def test_refused_and_failing_requests_get_answers(
    console: FakeConsole,
    enrolled: tuple[AgentPaths, m.DeviceId],
    fake_diagnostics: list[str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    paths, device = enrolled
    daemon, task = await start(paths)
    try:
        await console.wait_for(lambda: bool(console.received(device, m.Heartbeat)))
        heartbeat = console.received(device, m.Heartbeat)[0]
        assert isinstance(heartbeat, m.Heartbeat)
        assert heartbeat.metrics == m.Metrics(cpu_percent=1.0, memory_percent=2.0)
        channel = console.channels[device][-1]
        await channel.send(
            m.CommandRequest(command_id="c1", ticket_id=1, argv=["ls"], requested_by="tech")
        )
        # The default policy asks the user; with nobody to ask, it refuses.
        await console.wait_for(lambda: bool(console.received(device, m.CommandExit)))
        (refusal,) = console.received(device, m.CommandExit)
        assert isinstance(refusal, m.CommandExit)
        assert refusal.command_id == "c1"
        assert refusal.refused
        # It says which setting of which file would allow it, and that no restart is needed.
        assert refusal.error == (
            'no desktop session to ask; policy refuses (to allow it: consent = "notify" or '
            f'unattended = "allow" under [commands] in {paths.config_file}; read again at '
            "the next request, no restart needed)"
        )
        # The owner does so: the next command runs, the daemon still running.
        text = paths.config_file.read_text()
        assert 'unattended = "refuse"' in text
        paths.config_file.write_text(text.replace('unattended = "refuse"', 'unattended = "allow"'))
        await channel.send(
            m.CommandRequest(command_id="c2", ticket_id=1, argv=["true"], requested_by="tech")
        )
        await console.wait_for(lambda: len(console.received(device, m.CommandExit)) == 2)
        ran = console.received(device, m.CommandExit)[1]
        assert isinstance(ran, m.CommandExit)
        assert (ran.command_id, ran.refused, ran.exit_code) == ("c2", False, 0)

        await console.request_snapshot(device, "s1")
        await console.wait_for(lambda: bool(console.received(device, m.DiagnosticsSnapshot)))
        assert fake_diagnostics == [console.url]
        # A collector that raises is an Error for that request, and the agent goes on.
        daemon._config = dataclasses.replace(daemon._config, console_url="fail")
        await console.request_snapshot(device, "s2")
        await console.wait_for(lambda: len(console.received(device, m.Error)) == 1)
        error = console.received(device, m.Error)[0]
        assert isinstance(error, m.Error)
        assert (error.code, error.request_id) == (m.ErrorCode.INTERNAL, "s2")
        assert "collector exploded" in error.message
        assert console.connected(device)
        assert daemon.status.connected
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 3)
    assert not daemon.status.running
    assert not daemon.status.connected


async def test_console_errors_on_spooled_requests(
    console: FakeConsole,
    enrolled: tuple[AgentPaths, m.DeviceId],
    fake_diagnostics: list[str | None],
) -> None:
    paths, device = enrolled
    spool = Spool(paths.spool_dir)
    busy = build_help_request("retry me")
    spool.add(busy)
    console.help_errors = [m.ErrorCode.BUSY]
    daemon, task = await start(paths)
    try:
        # A transient error: sent again on the next look at the spool, then filed.
        await console.wait_for(lambda: busy.request_id in console.tickets)
        await eventually(lambda: spool.count() == 0 and not daemon._in_flight)
        assert len(console.received(device, m.HelpRequest)) == 2
        # A permanent error: set aside, never sent again.
        refused = build_help_request("refuse me")
        console.help_errors = [m.ErrorCode.BAD_REQUEST]
        spool.add(refused)
        await console.wait_for(lambda: len(console.received(device, m.HelpRequest)) == 3)
        await eventually((spool.bad_directory / f"{refused.request_id}.msgpack").exists)
        await asyncio.sleep(0.3)
        assert len(console.received(device, m.HelpRequest)) == 3
        assert refused.request_id not in console.tickets
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 3)


async def test_reenrollment_is_picked_up_on_reconnect(
    console: FakeConsole,
    enrolled: tuple[AgentPaths, m.DeviceId],
    fake_diagnostics: list[str | None],
) -> None:
    paths, first = enrolled
    daemon, task = await start(paths)
    try:
        await console.wait_for(lambda: console.connected(first))
        enrollment = parse_enrollment(console.enrollment_string(console.new_token()))
        _, identity = await enroll(paths, enrollment, force=True)
        await console.revoke(first)
        await console.wait_for(lambda: console.connected(identity.device_id), 5)
        assert daemon.status.device_id == identity.device_id
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 3)


# -- The receive loop's table ------------------------------------------------------------

# What each owner handles: the branches of the isinstance ladder the table replaced.
# Removing a registration (or moving a message to another owner) fails a test here.
DAEMON_MESSAGES: frozenset[type[Any]] = frozenset({m.SnapshotRequest, m.Ack, m.Error})
COMMAND_MESSAGES: frozenset[type[Any]] = frozenset({m.CommandRequest, m.CommandCancel})
TERMINAL_MESSAGES: frozenset[type[Any]] = frozenset(
    {m.ShellOpen, m.ShellData, m.ShellResize, m.ShellClosed}
)
SCREEN_MESSAGES: frozenset[type[Any]] = frozenset(
    {
        m.ScreenOpen,
        m.ScreenAck,
        m.ScreenKeyframeRequest,
        m.ScreenSettings,
        m.ScreenEnded,
        m.GuidePointer,
        m.GuideDraw,
        m.GuideClear,
        m.InputPointer,
        m.InputKey,
        m.ScreenControlRequest,
        m.ScreenControlEnded,
        m.ScreenSetMode,
    }
)
CHAT_MESSAGES: frozenset[type[Any]] = frozenset({m.ChatMessage, m.ChatAck})


@pytest.fixture
def offline_daemon(tmp_path: Path) -> Daemon:
    """A daemon that is never run: enough to look at its table and feed it messages."""
    identity = Identity.generate()
    config = AgentConfig(
        console_url="wss://127.0.0.1:9/agent",
        console_key=bytes(32),
        device_id=identity.device_id,
    )
    paths = AgentPaths(config_dir=tmp_path / "config", state_dir=tmp_path / "state")
    return Daemon(paths, config, identity, FAST)


def test_the_table_covers_every_message_the_agent_handles(offline_daemon: Daemon) -> None:
    handled = offline_daemon.handlers.types()
    expected = (
        DAEMON_MESSAGES | COMMAND_MESSAGES | TERMINAL_MESSAGES | SCREEN_MESSAGES | CHAT_MESSAGES
    )
    assert len(expected) == 24
    assert sorted(t.__name__ for t in expected - handled) == []
    assert sorted(t.__name__ for t in handled - expected) == []
    # Today that is everything the console may send.
    assert handled == set(get_args(m.ConsoleMessage))


def test_each_service_registers_the_messages_it_owns(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", tmp_path / "audit.head")
    lock = asyncio.Lock()
    services: list[
        tuple[CommandService | TerminalService | ScreenService | ChatService, frozenset[type[Any]]]
    ] = [
        (CommandService(tmp_path, audit, CommandPolicy, consent_lock=lock), COMMAND_MESSAGES),
        (TerminalService(tmp_path, audit, CommandPolicy, consent_lock=lock), TERMINAL_MESSAGES),
        (ScreenService(audit, ScreenPolicy, consent_lock=lock), SCREEN_MESSAGES),
        (ChatService(tmp_path / "chat.json", ChatPolicy), CHAT_MESSAGES),
    ]
    for service, owned in services:
        table: HandlerTable[Channel] = HandlerTable()
        service.register(table)
        names = sorted(t.__name__ for t in table.types())
        assert names == sorted(t.__name__ for t in owned), type(service).__name__


async def test_messages_reach_their_owner_and_the_rest_is_logged(
    offline_daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    # No handler touches the channel on these paths: nothing is open.
    channel = cast(Channel, object())
    caplog.set_level("DEBUG", logger="deskside.agent")
    await offline_daemon._handle(channel, m.ShellData(session_id="t1", seq=0, data=b"ls\n"))
    assert "ShellData for terminal t1, which is not open" in caplog.text
    await offline_daemon._handle(channel, m.CommandCancel(command_id="c1"))
    assert "cancel for command c1, which is not running here" in caplog.text
    # A message the agent does not act on: logged at debug, nothing else.
    await offline_daemon._handle(channel, m.Heartbeat(sent_at=0.0))
    ignored = "ignored a Heartbeat from the console"
    assert [r.levelname for r in caplog.records if r.getMessage() == ignored] == ["DEBUG"]
