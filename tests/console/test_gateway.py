"""The gateway on its own: sessions, the handler table, refusals, a channel's end.

A real store (SQLite in a temporary directory) and the real capabilities; the
agents' channels are recording fakes.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from deskside.console.db import migrate
from deskside.console.devices.events import DeviceOffline, DeviceOnline
from deskside.console.gateway import Gateway, Session
from deskside.console.limits import EXTENSION, HOLD
from deskside.console.store import Store
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.connection import CloseCode

HELLO = m.Hello(agent_version="1.0", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian 12"))

# Every message an agent sends that the console acts on, and the capability owning it.
AGENT_TO_CONSOLE = {
    m.Hello: "presence",
    m.Heartbeat: "presence",
    m.DiagnosticsSnapshot: "presence",
    m.Error: "presence",
    m.HelpRequest: "help_requests",
    m.CommandStarted: "commands",
    m.CommandOutput: "commands",
    m.CommandExit: "commands",
    m.ShellStarted: "terminals",
    m.ShellData: "terminals",
    m.ShellClosed: "terminals",
    m.ScreenFrame: "screens",
    m.ScreenStarted: "screens",
    m.ScreenRefused: "screens",
    m.ScreenEnded: "screens",
    m.ScreenGuideStatus: "screens",
    m.ScreenControlGranted: "screens",
    m.ScreenControlRefused: "screens",
    m.ScreenControlEnded: "screens",
    m.ScreenControlPaused: "screens",
    m.ChatDelivered: "chat",
    m.ChatReply: "chat",
}


@dataclass
class RecordingChannel:
    """What the gateway sent to one agent."""

    sent: list[m.Message] = field(default_factory=list)
    closed: list[tuple[int, str]] = field(default_factory=list)

    async def send(self, message: m.Message) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.append((code, reason))


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[Gateway]:
    migrate(database_url)
    store = Store.connect(database_url)
    gateway = Gateway(store, crypto.generate_private_key())
    try:
        yield gateway
    finally:
        await store.close()


async def connect(gateway: Gateway) -> tuple[Session, RecordingChannel]:
    """An enrolled device with a daemon channel open, as the gateway would hold it."""
    token = await gateway.store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="test"
    )
    device = await gateway.store.devices.enroll(os.urandom(32), token.token)
    channel = RecordingChannel()
    session = Session(device.id, channel)  # type: ignore[arg-type]
    gateway.sessions.setdefault(device.id, []).append(session)
    return session, channel


def test_every_agent_message_has_one_owner(gateway: Gateway) -> None:
    assert gateway.handlers.types() == set(AGENT_TO_CONSOLE)
    for capability in set(AGENT_TO_CONSOLE.values()):
        assert getattr(gateway, capability) in gateway.capabilities


async def test_hello_marks_a_daemon_and_its_device_online(gateway: Gateway) -> None:
    session, _ = await connect(gateway)
    seen = gateway.store.bus.subscribe(DeviceOnline, DeviceOffline, topic=session.device_id)
    with pytest.raises(Exception, match="not connected"):
        gateway.daemon_session(session.device_id)
    await gateway.dispatch(session, HELLO)
    assert session.is_daemon
    assert gateway.daemon_session(session.device_id) is session
    assert (await gateway.store.devices.get_device(session.device_id)).online
    assert isinstance(seen.get_nowait(), DeviceOnline)
    # Its channel closes: the device goes offline (the gateway's finally does this).
    gateway.sessions.pop(session.device_id)
    for capability in gateway.capabilities:
        await capability.agent_gone(session)
    assert not (await gateway.store.devices.get_device(session.device_id)).online
    assert isinstance(seen.get_nowait(), DeviceOffline)


async def test_a_help_request_becomes_one_ticket_and_is_acknowledged(gateway: Gateway) -> None:
    session, channel = await connect(gateway)
    request = m.HelpRequest(request_id="r-1", description="Printer jams\nagain", created_at=0.0)
    await gateway.dispatch(session, request)
    await gateway.dispatch(session, request)  # sent again after a reconnect
    tickets = await gateway.store.tickets.list_tickets()
    assert [(t.title, t.device_id) for t in tickets] == [("Printer jams", session.device_id)]
    assert channel.sent == [m.Ack(request_id="r-1", ticket_id=tickets[0].id)] * 2


async def test_a_refusal_goes_back_to_the_agent_as_an_error(gateway: Gateway) -> None:
    session, channel = await connect(gateway)
    await gateway.store.devices.revoke_device(session.device_id)
    # A help request from a device whose row is gone is refused, not a crash.
    other = Session("d" + "0" * 19, session.channel)
    request = m.HelpRequest(request_id="r-2", description="x", created_at=0.0)
    await gateway.dispatch(other, request)
    (error,) = channel.sent
    assert isinstance(error, m.Error)
    assert error.code == m.ErrorCode.BAD_REQUEST
    assert "no device" in error.message


async def test_a_message_nobody_handles_is_logged_not_fatal(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="deskside.console.gateway")
    session, channel = await connect(gateway)
    await gateway.dispatch(session, m.Ack(request_id="nothing"))
    assert channel.sent == []
    assert "sent an unexpected Ack" in caplog.text


# -- Agents before the handshake ------------------------------------------------------------


@dataclass
class FakeSocket:
    """What the gateway uses of a Litestar WebSocket; the peer leaves at once."""

    extensions: dict[str, object]
    host: str = "192.0.2.7"
    sent: list[dict[str, object]] = field(default_factory=list)
    connection_state: str = "init"

    @property
    def client(self) -> Address:
        return Address(self.host, 50000)

    @property
    def scope(self) -> dict[str, object]:
        return {"type": "websocket", "extensions": self.extensions}

    async def send(self, message: dict[str, object]) -> None:
        self.sent.append(message)

    async def accept(self) -> None:
        self.sent.append({"type": "websocket.accept"})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.sent.append({"type": "websocket.close", "code": code, "reason": reason})

    async def receive(self) -> dict[str, object]:
        self.connection_state = "disconnect"
        return {"type": "websocket.disconnect", "code": 1006}


@dataclass(frozen=True)
class Address:
    host: str
    port: int


BOTH: dict[str, object] = {"websocket.http.response": {}, EXTENSION: {"bytes": 4096}}


async def test_an_agent_beyond_the_handshake_cap_gets_503_and_retry_after(
    gateway: Gateway,
) -> None:
    held = [
        gateway.handshakes.enter("192.0.2.7") for _ in range(gateway.limits.handshakes_per_address)
    ]
    assert all(held)
    socket = FakeSocket(BOTH)
    await gateway.handle(socket)  # type: ignore[arg-type]
    assert [message["type"] for message in socket.sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert socket.sent[0]["status"] == 503
    assert (b"retry-after", str(gateway.limits.retry_after).encode()) in socket.sent[0]["headers"]  # type: ignore[operator]
    # Another address still has its places.
    other = FakeSocket(BOTH, host="198.51.100.1")
    await gateway.handle(other)  # type: ignore[arg-type]
    assert other.sent[:2] == [{"type": HOLD}, {"type": "websocket.accept"}]


async def test_without_the_denial_extension_a_busy_refusal_is_a_1013_close(
    gateway: Gateway,
) -> None:
    held = [gateway.handshakes.enter(str(i)) for i in range(gateway.limits.handshakes)]
    assert all(held)
    socket = FakeSocket({})
    await gateway.handle(socket)  # type: ignore[arg-type]
    assert socket.sent[0] == {"type": "websocket.accept"}
    assert socket.sent[1]["code"] == CloseCode.TRY_AGAIN_LATER


async def test_a_failed_handshake_gives_its_place_back(gateway: Gateway) -> None:
    socket = FakeSocket(BOTH)
    await gateway.handle(socket)  # type: ignore[arg-type]
    assert socket.sent[:2] == [{"type": HOLD}, {"type": "websocket.accept"}]
    assert gateway.handshakes.held == 0


async def test_many_agents_leaving_at_once_cost_a_few_writes(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # benchmarks/fleet.py: 5,000 agents leaving together each held a database
    # connection for its own write, and the pool ran dry for the API (500s).
    sessions = [(await connect(gateway))[0] for _ in range(200)]
    for session in sessions:
        await gateway.dispatch(session, HELLO)
    seen = gateway.store.bus.subscribe(DeviceOffline)
    writes: list[int] = []
    transaction = gateway.store.db.transaction

    def counted(*args: object, **kwargs: object) -> object:
        writes.append(1)
        return transaction(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gateway.store.db, "transaction", counted)
    for session in sessions:
        gateway.sessions.pop(session.device_id)
    await asyncio.gather(*(gateway.presence.agent_gone(s) for s in sessions))
    assert len(writes) <= 3
    devices = await gateway.store.devices.list_devices()
    assert len(devices) == 200
    assert not any(d.online for d in devices)
    gone = [seen.get_nowait() for _ in sessions]
    assert {e.device_id for e in gone if isinstance(e, DeviceOffline)} == {
        s.device_id for s in sessions
    }


async def test_an_agent_back_before_its_departure_is_written_stays_online(
    gateway: Gateway,
) -> None:
    first, _ = await connect(gateway)
    second, _ = await connect(gateway)
    for session in (first, second):
        await gateway.dispatch(session, HELLO)
        gateway.sessions.pop(session.device_id)
    leaving = [asyncio.create_task(gateway.presence.agent_gone(s)) for s in (first, second)]
    await asyncio.sleep(0)  # the first batch (first) is being written...
    # ...and both come back: second before its batch, first while its batch is written.
    for session in (first, second):
        again = Session(session.device_id, session.channel)
        gateway.sessions.setdefault(session.device_id, []).append(again)
        await gateway.dispatch(again, HELLO)
    await asyncio.gather(*leaving)
    for session in (first, second):
        assert (await gateway.store.devices.get_device(session.device_id)).online
