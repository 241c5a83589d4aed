"""The secure channel on asyncio: moves frames between a transport and a Connection.

``Channel`` owns three things: a ``FrameTransport`` (a WebSocket, seen as frames),
a sans-I/O ``deskside.protocol.connection.Connection``, and two tasks: a reader
that feeds received frames to the connection, and a timer that calls its
``handle_timer`` when ``get_timer`` says so. Frames the connection produces are
written by whoever holds the write lock, strictly in the order they were made,
since their nonces must arrive in sequence.

Incoming application messages wait in a bounded queue; while it is full the reader
stops reading, so a slow consumer slows the peer down instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeAlias

from deskside.protocol.connection import (
    AuthorizationRequested,
    CloseCode,
    Connection,
    ConnectionTerminated,
    HandshakeComplete,
    MessageReceived,
    PongReceived,
    ServerConnection,
    State,
    UnknownMessageReceived,
)
from deskside.protocol.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    HandshakeError,
    RemoteProtocolError,
)
from deskside.protocol.messages import ClientParams, Message

__all__ = ["Authorizer", "Channel", "FrameTransport"]

logger = logging.getLogger(__name__)

# Messages received and not yet read by the application.
_QUEUE_SIZE = 64


Authorizer: TypeAlias = Callable[[bytes, ClientParams], Awaitable[bool]]
"""Console side: may this agent key (with these parameters) connect?

Return True to accept, False to refuse as unknown; raise ``HandshakeError`` with a
``close_code`` to refuse with another reason (a spent enrollment token, ...).
"""


class FrameTransport(Protocol):
    """A message-oriented transport: a WebSocket carrying binary frames."""

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame; raises ``ConnectionClosed`` once the transport is closed."""

    async def recv_frame(self) -> bytes:
        """Receive one frame.

        Raises ``ConnectionClosedError`` (with the transport's close code) once the
        transport is closed, and ``RemoteProtocolError`` for a frame that is not
        binary.
        """
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the transport with a close code, if it is not closed already."""


class Channel:
    """An authenticated, encrypted channel to one peer.

    Made by ``deskside.channel.connect`` (agent) or ``accept`` / ``serve`` (console);
    the handshake is done by the time a ``Channel`` reaches its user.
    """

    def __init__(
        self,
        transport: FrameTransport,
        connection: Connection,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        # Console side: decides on agents the connection asks about.
        self._authorizer = authorizer
        self._loop = asyncio.get_running_loop()
        # Frames made by the connection and not yet written, oldest first.
        self._pending: deque[bytes] = deque()
        self._write_lock = asyncio.Lock()
        # Messages for recv(), then None at the end; the reader keeps it to _QUEUE_SIZE.
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue()
        # Set by recv() when it takes a message: the reader may go on.
        self._space = asyncio.Event()
        self._handshake: asyncio.Future[HandshakeComplete] = self._loop.create_future()
        # Waiters of ping(): ping nonce -> future of the round-trip time.
        self._pings: dict[int, asyncio.Future[float]] = {}
        # Wakes the timer task when the timer may have moved earlier.
        self._rearm = asyncio.Event()
        # Set once the channel and its transport are closed.
        self._closed = self._loop.create_future()
        self._shutting_down = False
        # True once the end marker is in the message queue.
        self._ended = False
        self._tasks = [
            asyncio.create_task(self._read_frames(), name="deskside-channel-reader"),
            asyncio.create_task(self._run_timer(), name="deskside-channel-timer"),
        ]

    # -- Public API ----------------------------------------------------------------------

    @property
    def remote_static(self) -> bytes:
        """The peer's static public key, proven by the handshake."""
        key = self._connection.remote_static
        assert key is not None, "a Channel is handed out only after its handshake"
        return key

    @property
    def version(self) -> int:
        """The protocol version both sides agreed on."""
        assert self._connection.version is not None
        return self._connection.version

    @property
    def handshake_hash(self) -> bytes:
        """A value unique to this session, known to both sides."""
        assert self._connection.handshake_hash is not None
        return self._connection.handshake_hash

    @property
    def heartbeat_interval(self) -> float:
        """How often the console wants a ``Heartbeat`` from the agent."""
        return self._handshake.result().heartbeat_interval

    @property
    def closed(self) -> bool:
        """True once the channel is closed, by either side."""
        return self._connection.state is State.CLOSED

    async def send(self, message: Message) -> None:
        """Send ``message``; raises ``ConnectionClosed`` if the channel is closed.

        Cancelling the caller does not cancel the write: a frame encrypted and then
        dropped would leave a gap in the nonces and break the channel.
        """
        # Within the peer's announced rate limit (agents toward the console); the
        # check and the send have no await between them, so concurrent senders
        # cannot overdraw it.
        while (delay := self._connection.send_delay(self._loop.time())) > 0:
            await asyncio.sleep(delay)
        self._connection.send(message, self._loop.time())
        await asyncio.shield(self._flush())

    async def recv(self) -> Message:
        """The next message from the peer; raises ``ConnectionClosed`` once closed."""
        message = await self._messages.get()
        self._space.set()
        if message is None:
            self._messages.put_nowait(None)  # later calls see the end too
            raise self._connection.close_exception()
        return message

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Messages until the channel closes normally; an error close raises."""
        try:
            while True:
                yield await self.recv()
        except ConnectionClosed as exc:
            if isinstance(exc, ConnectionClosedError):
                raise

    async def ping(self) -> float:
        """Measure the round-trip time through the channel, in seconds."""
        nonce = self._connection.ping(self._loop.time())
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings[nonce] = waiter
        await asyncio.shield(self._flush())
        try:
            return await waiter
        finally:
            self._pings.pop(nonce, None)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the channel and wait until the transport is closed."""
        if not self.closed:
            self._connection.close(code, reason, now=self._loop.time())
            await self._after_input()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the channel and its transport are closed."""
        await asyncio.shield(self._closed)

    @classmethod
    async def open(
        cls,
        transport: FrameTransport,
        connection: Connection,
        authorizer: Authorizer | None = None,
    ) -> Channel:
        """Run the handshake of ``connection`` over ``transport``; the open channel.

        Raises ``HandshakeError`` (with the close code) if the handshake fails or
        times out; the transport is closed then.
        """
        channel = cls(transport, connection, authorizer)
        await channel._flush()
        try:
            await channel._handshake
        except BaseException:
            await channel._shutdown()
            raise
        return channel

    # -- Internals -----------------------------------------------------------------------

    async def _flush(self) -> None:
        """Write every frame the connection made, in order."""
        self._pending.extend(self._connection.data_to_send())
        if not self._pending:
            return
        async with self._write_lock:
            while self._pending:
                frame = self._pending.popleft()
                try:
                    await self._transport.send_frame(frame)
                except ConnectionClosed as exc:
                    # The reader sees the transport closed too and reports the events.
                    self._pending.clear()
                    self._connection.connection_lost(self._loop.time(), exc.code, exc.reason)
                    break

    async def _read_frames(self) -> None:
        connection = self._connection
        try:
            while connection.state is not State.CLOSED:
                try:
                    frame = await self._transport.recv_frame()
                except ConnectionClosed as exc:
                    connection.connection_lost(self._loop.time(), exc.code, exc.reason)
                except RemoteProtocolError as exc:
                    connection.close(CloseCode.PROTOCOL_ERROR, str(exc), now=self._loop.time())
                else:
                    connection.receive_data(frame, self._loop.time())
                await self._after_input()
        finally:
            await self._shutdown()

    async def _after_input(self) -> None:
        """Act on what the connection did: deliver events, write frames, maybe close."""
        for message in self._handle_events():
            while self._messages.qsize() >= _QUEUE_SIZE:
                self._space.clear()
                await self._space.wait()
            self._messages.put_nowait(message)
        if self._connection.state is State.CLOSED:
            self._messages_end()
        await self._flush()
        if self._connection.close_transport:
            await self._shutdown()

    def _handle_events(self) -> list[Message]:
        """Resolve waiters for the connection's events; return the messages received."""
        messages: list[Message] = []
        for event in self._connection.events_received():
            if isinstance(event, MessageReceived):
                messages.append(event.message)
            elif isinstance(event, PongReceived):
                waiter = self._pings.get(event.nonce)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event.rtt)
            elif isinstance(event, HandshakeComplete):
                if not self._handshake.done():
                    self._handshake.set_result(event)
                self._rearm.set()
            elif isinstance(event, AuthorizationRequested):
                self._tasks.append(
                    asyncio.create_task(self._authorize(event), name="deskside-channel-authorize")
                )
            elif isinstance(event, UnknownMessageReceived):
                logger.warning("skipped a message of unknown type %r from the peer", event.type)
            elif isinstance(event, ConnectionTerminated):
                self._on_terminated(event)
        return messages

    async def _authorize(self, event: AuthorizationRequested) -> None:
        connection = self._connection
        assert isinstance(connection, ServerConnection)
        code: int = CloseCode.UNKNOWN_PEER
        reason = "agent key is unknown or revoked"
        try:
            accepted = self._authorizer is not None and await self._authorizer(
                event.remote_static, event.params
            )
        except HandshakeError as exc:
            accepted = False
            code, reason = exc.close_code or code, str(exc)
        except Exception:
            logger.exception("authorizing an agent failed")
            accepted = False
            code, reason = CloseCode.INTERNAL_ERROR, "console error while authorizing"
        if connection.state is not State.HANDSHAKE:
            return  # timed out or closed meanwhile
        if accepted:
            connection.accept_peer(self._loop.time())
        else:
            connection.refuse_peer(code, reason, self._loop.time())
        await self._after_input()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        # The peer's close (or refusal) is its business; an error we found is ours.
        ok = event.code in (CloseCode.NORMAL, CloseCode.GOING_AWAY)
        level = logging.INFO if ok or event.by_peer else logging.WARNING
        logger.log(
            level,
            "channel closed by %s: code %d %s",
            "peer" if event.by_peer else "us",
            event.code,
            event.reason,
        )
        if not self._handshake.done():
            code = event.code
            self._handshake.set_exception(
                HandshakeError(
                    event.reason or f"handshake failed with close code {code}", close_code=code
                )
            )
        exc = self._connection.close_exception()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self._rearm.set()

    def _messages_end(self) -> None:
        """Put the end marker in the queue, once, after the messages received."""
        if not self._ended:
            self._ended = True
            self._messages.put_nowait(None)

    async def _run_timer(self) -> None:
        connection = self._connection
        while True:
            deadline = connection.get_timer()
            if deadline is None:
                return
            self._rearm.clear()
            delay = deadline - self._loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rearm.wait(), delay)
                continue
            connection.handle_timer(self._loop.time())
            await self._after_input()

    async def _shutdown(self) -> None:
        """Close the transport once, stop the tasks and mark the channel closed."""
        if self._shutting_down:
            await asyncio.shield(self._closed)
            return
        self._shutting_down = True
        connection = self._connection
        try:
            if connection.state is not State.CLOSED:
                connection.close(CloseCode.GOING_AWAY, "channel shut down", now=self._loop.time())
                self._handle_events()
                await self._flush()
            self._messages_end()
            code = connection.close_code or CloseCode.GOING_AWAY
            if connection.closed_by_peer or code == CloseCode.ABNORMAL:
                await self._transport.close(CloseCode.NORMAL, "")
            else:
                await self._transport.close(code, connection.close_reason)
        finally:
            if not self._closed.done():
                self._closed.set_result(None)
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current:
                    task.cancel()
