"""The agents' door: the ``/agent`` WebSocket, the sessions of connected devices.

Each agent connection runs the secure channel (``deskside.channel.Channel``) over
Litestar's WebSocket. The authorizer enrolls a new key that brings a valid token
and admits only enrolled, unrevoked keys otherwise; refusals carry a reason the
agent shows its user.

Theory of operation::

    agent ──WSS──> handle() ──Noise handshake (authorize)──> Session
                     │   (until admitted: a place among limits.handshakes, per
                     │    address and in all, and a few KiB; no place: 503 with
                     │    Retry-After before the upgrade, and the agent comes back)
                     │
                     └── each message ──> handlers: message type -> its capability's
                                          handler (devices, tickets, commands,
                                          terminal, screen, chat), filled by ``register``
    channel closed ──> every capability's ``agent_gone(session)``

The gateway does sessions and authorization only. What a message means is its
capability's business: adding a message type is writing its handler in the
capability's folder and registering it there. A handler's ``ConsoleError`` goes
back to the agent as an ``Error``; a message nobody handles is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m
from deskside.protocol.connection import ChannelConfig, CloseCode, ServerConnection
from deskside.protocol.enrollment import device_id as device_id_for
from deskside.protocol.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    RemoteProtocolError,
)

from .agents import AgentSession, Capability
from .chat.relay import ChatRelay
from .commands.relay import CommandRelay
from .commands.runner import RunbookRunner
from .devices.presence import Claims, Presence
from .errors import Conflict, ConsoleError, EnrollmentRefused
from .limits import END, EXTENSION, HOLD, Admission, ConnectionLimits
from .metrics import NodeMetrics
from .screen.relay import ScreenHub
from .store import Store
from .terminal.relay import TerminalHub
from .tickets.intake import HelpRequests

__all__ = ["Gateway", "LitestarTransport", "Session"]

logger = logging.getLogger(__name__)


class LitestarTransport:
    """A ``FrameTransport`` over a Litestar (ASGI) WebSocket."""

    def __init__(self, socket: WebSocket, metrics: NodeMetrics | None = None) -> None:  # type: ignore[type-arg]
        self.socket = socket
        self._metrics = metrics
        # Bytes received so far (the gateway counts them per message type).
        self.received = 0

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary message."""
        try:
            await self.socket.send_bytes(frame)
            if self._metrics is not None:
                self._metrics.sent_bytes.inc(len(frame))
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            raise ConnectionClosedError(
                CloseCode.ABNORMAL, "agent went away", by_peer=True
            ) from exc

    async def recv_frame(self) -> bytes:
        """Receive one binary message."""
        try:
            event = await self.socket.receive()
        except WebSocketDisconnect as exc:
            raise ConnectionClosedError(
                CloseCode.ABNORMAL, "agent went away", by_peer=True
            ) from exc
        if event["type"] == "websocket.disconnect":
            code = int(event.get("code", CloseCode.ABNORMAL))
            cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
            raise cls(code, str(event.get("reason") or ""), by_peer=True)
        data = event.get("bytes")
        if not isinstance(data, bytes | bytearray):
            raise RemoteProtocolError("text frame on a binary channel")
        self.received += len(data)
        return bytes(data)

    async def close(self, code: int, reason: str) -> None:
        """Close the WebSocket, unless it is closed already."""
        if self.socket.connection_state != "disconnect":
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                await self.socket.close(code, reason)


async def _send(socket: WebSocket, message: dict[str, Any]) -> None:  # type: ignore[type-arg]
    """An ASGI message Litestar has no method for (an extension's, a denial response)."""
    await socket.send(cast(Any, message))


@dataclass(eq=False)
class Session:
    """One connected agent channel."""

    device_id: str
    channel: Channel
    # Set once the agent said Hello: a daemon, not a one-off CLI connection.
    hello: bool = False

    @property
    def is_daemon(self) -> bool:
        """Whether the agent said ``Hello``."""
        return self.hello

    def mark_daemon(self) -> None:
        """The agent said ``Hello``."""
        self.hello = True


class Gateway:
    """The connected agents, and the capabilities their messages go to."""

    def __init__(
        self,
        store: Store,
        static_private: bytes,
        *,
        software_version: str = "",
        limits: ConnectionLimits | None = None,
        claims: Claims | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.store = store
        # This node's figures (/metrics); None counts nothing.
        self.metrics = metrics
        self._static_private = static_private
        self.limits = limits or ConnectionLimits()
        # Agent WebSockets not yet admitted by the handshake, per address and in all.
        self.handshakes = Admission(self.limits.handshakes, self.limits.handshakes_per_address)
        self.channel_config = ChannelConfig(
            software_version=software_version,
            handshake_timeout=self.limits.handshake_timeout,
            # Per agent. Agents pace themselves below it (it is announced in the
            # handshake); at 80 % of it, 64 KiB chunks of command output pass at 75
            # MB/s, and a screen at 30 frames a second has room to spare. Each
            # message costs a decryption and a dispatch: a misbehaving agent costs at
            # most this much.
            max_receive_rate=1500.0,
            receive_burst=3000,
            # Agents send a heartbeat every 30 s; pinging them more often than that
            # cost a fifth of the console's CPU with 5,000 agents (benchmarks/fleet.py).
            keepalive_interval=45.0,
            idle_timeout=100.0,
        )
        # Sessions per device, newest last.
        self.sessions: dict[str, list[Session]] = {}
        # The capabilities agents talk to, each with the messages it owns.
        self.presence = Presence(store.devices, store.snapshots, self, claims)
        self.help_requests = HelpRequests(store.tickets)
        self.commands = CommandRelay(store.commands, store.bus, self)
        self.terminals = TerminalHub(store.terminals, self)
        self.screens = ScreenHub(store.screens, store.bus)
        self.chat = ChatRelay(store.chat, store.bus, self)
        self.runbooks = RunbookRunner(
            store.commands, store.tickets, store.devices, self.commands, self
        )
        # Channels end in this order: what depends on presence goes first.
        self.capabilities: tuple[Capability, ...] = (
            self.commands,
            self.terminals,
            self.screens,
            self.chat,
            self.help_requests,
            self.presence,
        )
        # Message type -> the handler of the capability that owns it.
        self.handlers: HandlerTable[AgentSession] = HandlerTable()
        for capability in self.capabilities:
            capability.register(self.handlers)

    # -- Life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every capability (presence forgets what an earlier run left)."""
        for capability in reversed(self.capabilities):
            await capability.start()

    async def stop(self) -> None:
        """Close every agent channel (agents reconnect to the next console) and flush."""
        self.runbooks.stop()
        sessions = [s for group in self.sessions.values() for s in group]
        await asyncio.gather(
            *(s.channel.close(CloseCode.GOING_AWAY, "console stopping") for s in sessions),
            return_exceptions=True,
        )
        for capability in self.capabilities:
            await capability.stop()

    def online(self, device_id: str) -> bool:
        """Whether the device has a channel open now."""
        return bool(self.sessions.get(device_id))

    def daemon_devices(self) -> list[str]:
        """The devices whose daemon channel is open on this console now."""
        return [d for d, group in self.sessions.items() if any(s.hello for s in group)]

    # -- Handshake -----------------------------------------------------------------------

    async def authorize(self, public_key: bytes, params: m.ClientParams) -> bool:
        """Enroll a key that brings a valid token; otherwise admit only enrolled keys."""
        if params.enrollment_token is not None:
            try:
                device = await self.store.devices.enroll(public_key, params.enrollment_token)
            except EnrollmentRefused as exc:
                logger.info("enrollment refused: %s", exc)
                raise HandshakeError(str(exc), close_code=CloseCode.UNKNOWN_PEER) from exc
            logger.info("device %s enrolled", device.id)
            return True
        return await self.store.devices.device_for_key(public_key) is not None

    # -- The /agent endpoint -------------------------------------------------------------

    async def handle(self, socket: WebSocket) -> None:  # type: ignore[type-arg]
        """Serve one agent connection until it closes.

        Until the handshake admits its key, the agent holds one of a few places
        (``limits.handshakes``, per address and in all) and may send only a few KiB
        (the listener's ``deskside.preauth`` extension); with no place free it is
        refused at once with 503 and ``Retry-After``.
        """
        address = socket.client.host if socket.client else ""
        slot = self.handshakes.enter(address)
        if slot is None:
            logger.info("agent from %s refused: too many handshakes at once", address)
            await self._refuse_busy(socket)
            return
        transport = LitestarTransport(socket, self.metrics)
        try:
            channel = await self._open(socket, slot.release, transport)
        finally:
            slot.release()
        if channel is None:
            return
        device_id = device_id_for(channel.remote_static)
        session = Session(device_id, channel)
        self.sessions.setdefault(device_id, []).append(session)
        counted = transport.received
        try:
            async for message in channel:
                if self.metrics is not None:
                    self._count(session, message, transport.received - counted)
                    counted = transport.received
                await self.dispatch(session, message)
        except ConnectionClosed as exc:
            logger.info("device %s disconnected: %s", device_id, exc)
        finally:
            group = self.sessions.get(device_id, [])
            if session in group:
                group.remove(session)
            if not group:
                self.sessions.pop(device_id, None)
                if self.metrics is not None:
                    self.metrics.agent_gone(device_id)
            for capability in self.capabilities:
                try:
                    await capability.agent_gone(session)
                except Exception:
                    logger.exception("device %s: ending its %s failed", device_id, capability)
            await channel.close()

    async def _open(
        self,
        socket: WebSocket,  # type: ignore[type-arg]
        admitted: Callable[[], None],
        transport: LitestarTransport,
    ) -> Channel | None:
        """Accept the WebSocket and run the handshake; the channel, or None if it failed."""
        preauth = EXTENSION in (socket.scope.get("extensions") or {})
        if preauth:
            await _send(socket, {"type": HOLD})
        await socket.accept()

        async def authorize(public_key: bytes, params: m.ClientParams) -> bool:
            if not await self.authorize(public_key, params):
                return False
            admitted()
            if preauth:
                with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                    await _send(socket, {"type": END})  # gone: the channel sees it too
            return True

        loop = asyncio.get_running_loop()
        connection = ServerConnection(self._static_private, None, loop.time(), self.channel_config)
        try:
            return await Channel.open(transport, connection, authorize)
        except (HandshakeError, ConnectionClosed) as exc:
            logger.info("agent handshake failed: %s", exc)
            return None

    async def _refuse_busy(self, socket: WebSocket) -> None:  # type: ignore[type-arg]
        """503 with ``Retry-After`` before the upgrade; else a 1013 close after it."""
        retry = str(self.limits.retry_after)
        if "websocket.http.response" in (socket.scope.get("extensions") or {}):
            await _send(
                socket,
                {
                    "type": "websocket.http.response.start",
                    "status": 503,
                    "headers": [(b"retry-after", retry.encode()), (b"content-type", b"text/plain")],
                },
            )
            await _send(
                socket, {"type": "websocket.http.response.body", "body": b"the console is busy\n"}
            )
            return
        await socket.accept()
        await socket.close(CloseCode.TRY_AGAIN_LATER, f"console busy; retry after {retry} s")

    def _count(self, session: Session, message: m.Message, size: int) -> None:
        """An agent's message in this node's metrics (``size``: frame bytes since the
        message before: the frames that carried this one)."""
        assert self.metrics is not None
        self.metrics.message_received(session.device_id, type(message).__name__, size)
        if isinstance(message, m.CommandStarted):
            self.metrics.command_started(session.device_id, message.command_id)
        elif isinstance(message, m.CommandExit):
            self.metrics.command_ended(message.command_id)

    async def dispatch(self, session: AgentSession, message: m.Message) -> None:
        """Hand one message to its capability; a refusal goes back as an ``Error``."""
        try:
            if not await self.handlers.dispatch(session, message):
                logger.info(
                    "device %s sent an unexpected %s", session.device_id, type(message).__name__
                )
        except ConsoleError as exc:
            logger.warning(
                "device %s: %s refused: %s", session.device_id, type(message).__name__, exc
            )
            request_id = getattr(message, "request_id", None)
            await session.channel.send(
                m.Error(
                    code=m.ErrorCode.BAD_REQUEST, message=str(exc)[:4096], request_id=request_id
                )
            )

    async def disconnect(self, device_id: str, reason: str) -> None:
        """Close every channel of the device (after revoking it, say)."""
        sessions = list(self.sessions.get(device_id, []))
        await asyncio.gather(
            *(s.channel.close(CloseCode.UNKNOWN_PEER, reason) for s in sessions),
            return_exceptions=True,
        )

    def daemon_session(self, device_id: str) -> Session:
        """The device's daemon connection (the newest); ``Conflict`` if it has none."""
        sessions = [s for s in self.sessions.get(device_id, []) if s.hello]
        if not sessions:
            raise Conflict(f"device {device_id} is not connected")
        return sessions[-1]
