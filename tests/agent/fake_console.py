"""A small console for the agent's tests, on ``deskside.channel.serve``.

It runs in the test's event loop on 127.0.0.1 and does what the agent needs from a
console: one-time enrollment tokens (spent once used, or expired), registered and
revoked agent keys, a record of every message per device, an ``Ack`` with a
ticket number for each ``HelpRequest`` (one ticket per request id, however often
it arrives), ``SnapshotRequest`` on demand, and for remote commands an ``Ack`` of
every ``CommandExit`` (as the real console does once it has recorded the result),
with views that de-duplicate output by ``(command_id, seq)``. It can be stopped and
started again on the same port, as a console restart looks to an agent.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server

from deskside.channel import Channel, serve
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.connection import ChannelConfig, CloseCode
from deskside.protocol.enrollment import Enrollment, certificate_fingerprint, device_id
from deskside.protocol.errors import ConnectionClosed, HandshakeError


class FakeConsole:
    """An in-process console: tokens, keys, tickets, and what each device said."""

    def __init__(self, *, heartbeat_interval: float = 30.0) -> None:
        # The console's Noise static key pair.
        self.private_key = crypto.generate_private_key()
        self.public_key = crypto.public_key(self.private_key)
        # Enrollment tokens: token -> "valid", "used" or "expired".
        self.tokens: dict[str, str] = {}
        # Agent keys admitted, by device id.
        self.devices: dict[m.DeviceId, bytes] = {}
        # Devices refused although registered.
        self.revoked: set[m.DeviceId] = set()
        # Every message received, per device, in order.
        self.messages: defaultdict[m.DeviceId, list[m.Message]] = defaultdict(list)
        # Tickets filed: request id -> ticket number.
        self.tickets: dict[str, int] = {}
        # Errors to answer the next help requests with, instead of an Ack, in order.
        self.help_errors: list[m.ErrorCode] = []
        # Handshakes still to refuse as a busy console does (close code 1013).
        self.busy = 0
        # Whether a CommandExit is acknowledged (so the agent may forget the result).
        self.ack_commands = True
        # Open channels, per device.
        self.channels: defaultdict[m.DeviceId, list[Channel]] = defaultdict(list)
        # How many channels each device opened (enrollment included).
        self.connections: defaultdict[m.DeviceId, int] = defaultdict(int)
        # The port, fixed by the first start so restarts reuse it.
        self.port = 0
        # TLS: the server context and the certificate's fingerprint, if any.
        self.ssl: ssl.SSLContext | None = None
        self.tls_fingerprint: str | None = None
        self._server: Server | None = None
        self._config = ChannelConfig(
            heartbeat_interval=heartbeat_interval, keepalive_interval=2.0, idle_timeout=10.0
        )
        # Wakes waiters of wait_for() when anything changes.
        self._changed = asyncio.Condition()

    # -- Life cycle ---------------------------------------------------------------------

    def use_tls(self, directory: Path) -> None:
        """Serve wss:// with a fresh self-signed certificate for 127.0.0.1."""
        cert_pem, key_pem, der = crypto.make_self_signed_certificate(["127.0.0.1"])
        (directory / "console-cert.pem").write_bytes(cert_pem)
        (directory / "console-key.pem").write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "console-cert.pem", directory / "console-key.pem")
        self.ssl = context
        self.tls_fingerprint = certificate_fingerprint(der)

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port after)."""
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            self.private_key,
            self._authorize,
            config=self._config,
            ssl=self.ssl,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every channel, as a console shutting down would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        """The agent URL of this console."""
        scheme = "wss" if self.ssl is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/agent"

    # -- Administration -----------------------------------------------------------------

    def new_token(self, state: str = "valid") -> str:
        """A new enrollment token ("valid", "used" or "expired")."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = state
        return token

    def enrollment_string(self, token: str, expires: int | None = None) -> str:
        """The string a user pastes into ``deskside-agent enroll``."""
        return Enrollment(
            url=self.url,
            token=token,
            console_key=self.public_key,
            tls_fingerprint=self.tls_fingerprint,
            expires=expires,
        ).encode()

    async def revoke(self, device: m.DeviceId) -> None:
        """Refuse a device from now on, and close its open channels with 4003."""
        self.revoked.add(device)
        for channel in list(self.channels[device]):
            await channel.close(CloseCode.UNKNOWN_PEER, "device revoked")

    def readmit(self, device: m.DeviceId) -> None:
        """Admit a revoked device again."""
        self.revoked.discard(device)

    async def request_snapshot(self, device: m.DeviceId, request_id: str) -> None:
        """Ask a connected device for a diagnostics snapshot."""
        channel = self.channels[device][-1]
        await channel.send(m.SnapshotRequest(request_id=request_id))

    async def send(self, device: m.DeviceId, message: m.Message) -> None:
        """Send a message to a connected device (on its newest channel)."""
        await self.channels[device][-1].send(message)

    async def run(self, device: m.DeviceId, *argv: str, **fields: Any) -> str:
        """Send a ``CommandRequest`` (ticket 1, from "tech"); its command id."""
        values: dict[str, Any] = {
            "command_id": secrets.token_hex(8),
            "ticket_id": 1,
            "requested_by": "tech",
            "argv": list(argv),
            **fields,
        }
        await self.send(device, m.CommandRequest(**values))
        return str(values["command_id"])

    # -- Observation --------------------------------------------------------------------

    def received(self, device: m.DeviceId, kind: type[m.Message]) -> list[m.Message]:
        """The messages of one type a device sent, in order."""
        return [message for message in self.messages[device] if isinstance(message, kind)]

    def command_messages(self, device: m.DeviceId, command_id: str) -> list[m.Message]:
        """Every message about one command, as received (duplicates included)."""
        return [
            message
            for message in self.messages[device]
            if getattr(message, "command_id", None) == command_id
        ]

    def exits(self, device: m.DeviceId, command_id: str) -> list[m.CommandExit]:
        """The ``CommandExit`` messages of a command, as received."""
        return [
            message
            for message in self.command_messages(device, command_id)
            if isinstance(message, m.CommandExit)
        ]

    def exit(self, device: m.DeviceId, command_id: str) -> m.CommandExit | None:
        """The (first) ``CommandExit`` of a command, or None while it runs."""
        exits = self.exits(device, command_id)
        return exits[0] if exits else None

    def started(self, device: m.DeviceId, command_id: str) -> m.CommandStarted | None:
        """The (first) ``CommandStarted`` of a command, if any."""
        for message in self.command_messages(device, command_id):
            if isinstance(message, m.CommandStarted):
                return message
        return None

    def chunks(self, device: m.DeviceId, command_id: str) -> dict[int, m.CommandOutput]:
        """A command's output chunks, de-duplicated by seq (as the console records them)."""
        chunks: dict[int, m.CommandOutput] = {}
        for message in self.command_messages(device, command_id):
            if isinstance(message, m.CommandOutput):
                previous = chunks.setdefault(message.seq, message)
                assert previous == message, f"chunk {message.seq} changed when sent again"
        return chunks

    def output(self, device: m.DeviceId, command_id: str, stream: str | None = None) -> bytes:
        """A command's output so far, in seq order (one stream, or both interleaved)."""
        chunks = self.chunks(device, command_id)
        return b"".join(
            chunk.data
            for _, chunk in sorted(chunks.items())
            if stream is None or chunk.stream == stream
        )

    def shell_output(self, device: m.DeviceId, session_id: str) -> bytes:
        """What a terminal printed so far, in order."""
        return b"".join(
            message.data
            for message in self.messages[device]
            if isinstance(message, m.ShellData) and message.session_id == session_id
        )

    def shell_closed(self, device: m.DeviceId, session_id: str) -> m.ShellClosed | None:
        """The ``ShellClosed`` of a terminal, once it came."""
        for message in self.messages[device]:
            if isinstance(message, m.ShellClosed) and message.session_id == session_id:
                return message
        return None

    def connected(self, device: m.DeviceId) -> bool:
        """True while the device has an open channel."""
        return any(not channel.closed for channel in self.channels[device])

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (checked after every change)."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(wait(), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- Console side of the channel ----------------------------------------------------

    async def _authorize(self, key: bytes, params: m.ClientParams) -> bool:
        await asyncio.sleep(0)  # as a database lookup would
        if self.busy > 0:
            self.busy -= 1
            raise HandshakeError("console busy", close_code=CloseCode.TRY_AGAIN_LATER)
        device = device_id(key)
        token = params.enrollment_token
        if token is not None:
            state = self.tokens.get(token)
            if state is None:
                raise HandshakeError("unknown token", close_code=CloseCode.UNKNOWN_PEER)
            if state == "used":
                raise HandshakeError(
                    "enrollment token already used", close_code=CloseCode.UNKNOWN_PEER
                )
            if state == "expired":
                raise HandshakeError("enrollment token expired", close_code=CloseCode.UNKNOWN_PEER)
            self.tokens[token] = "used"
            self.devices[device] = key
            return True
        if self.devices.get(device) != key or device in self.revoked:
            raise HandshakeError("unknown or revoked device", close_code=CloseCode.UNKNOWN_PEER)
        return True

    async def _handle(self, channel: Channel) -> None:
        device = device_id(channel.remote_static)
        self.channels[device].append(channel)
        self.connections[device] += 1
        await self._notify()
        try:
            while True:
                message = await channel.recv()
                self.messages[device].append(message)
                if isinstance(message, m.HelpRequest) and self.help_errors:
                    code = self.help_errors.pop(0)
                    error = m.Error(code=code, message="cannot file", request_id=message.request_id)
                    await channel.send(error)
                elif isinstance(message, m.HelpRequest):
                    ticket = self.tickets.setdefault(message.request_id, len(self.tickets) + 1)
                    await channel.send(m.Ack(request_id=message.request_id, ticket_id=ticket))
                elif isinstance(message, m.CommandExit) and self.ack_commands:
                    await channel.send(m.Ack(request_id=message.command_id))
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            self.channels[device].remove(channel)
            await self._notify()
