"""The secure channel over the ``websockets`` library: ``connect`` and ``serve``.

Compression is off (permessage-deflate over ciphertext gains nothing and has hurt
encrypted protocols before) and so are websockets' own pings: the channel keeps
itself alive with encrypted pings, which a proxy cannot fake.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection as WsClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve

from deskside.protocol.connection import (
    ChannelConfig,
    ClientConnection,
    CloseCode,
    ServerConnection,
    max_frame_size,
)
from deskside.protocol.enrollment import certificate_fingerprint
from deskside.protocol.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    RemoteProtocolError,
    TryAgainLater,
)

from .channel import Authorizer, Channel

__all__ = ["WebSocketTransport", "accept", "connect", "serve"]

logger = logging.getLogger(__name__)

# A busy console that names no wait (or a strange one): this many seconds.
DEFAULT_RETRY_AFTER = 1.0
# A busy console's wait is believed up to this many seconds.
MAX_RETRY_AFTER = 300.0


def _closed(exc: websockets.ConnectionClosed) -> ConnectionClosed:
    """Our exception for a closed WebSocket, with the close code it received."""
    frame = exc.rcvd
    if frame is None:
        return ConnectionClosedError(CloseCode.ABNORMAL, "connection lost", by_peer=True)
    cls = ConnectionClosedOK if frame.code in (1000, 1001) else ConnectionClosedError
    return cls(frame.code, frame.reason, by_peer=True)


class WebSocketTransport:
    """A ``FrameTransport`` over a websockets connection (client or server)."""

    def __init__(self, websocket: WsClientConnection | WsServerConnection) -> None:
        self.websocket = websocket

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary WebSocket message."""
        try:
            await self.websocket.send(frame)
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def recv_frame(self) -> bytes:
        """Receive one WebSocket message, which must be binary."""
        try:
            data = await self.websocket.recv()
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from exc
        if isinstance(data, str):
            raise RemoteProtocolError("text frame on a binary channel")
        return data

    async def close(self, code: int, reason: str) -> None:
        """Close the WebSocket with ``code`` and wait for the peer's answer."""
        await self.websocket.close(code, reason)


async def connect(
    uri: str,
    static_private: bytes,
    server_public: bytes,
    *,
    config: ChannelConfig | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float = 10.0,
    enrollment_token: str | None = None,
    tls_fingerprint: str | None = None,
) -> Channel:
    """Open a channel to the console at ``uri`` (the agent's side).

    Raises ``ConnectionClosedError`` when the WebSocket cannot be opened
    (``TryAgainLater`` when the console is too busy to start a handshake now) and
    ``HandshakeError`` when the console is not the pinned one or refuses this agent.
    ``enrollment_token`` is given once, when the agent enrolls its new key.

    With ``tls_fingerprint`` (SHA-256 of the console's certificate, hex) a ``wss://``
    connection accepts exactly that certificate, self-signed or not, and nothing
    else; without it the system's trust store decides. Either way the Noise
    handshake, not TLS, is what authenticates the console.
    """
    config = config or ChannelConfig()
    if ssl is None and uri.startswith("wss://"):
        ssl = ssl_module.create_default_context()
        if tls_fingerprint is not None:
            ssl.check_hostname = False
            ssl.verify_mode = ssl_module.CERT_NONE  # the fingerprint is checked below
    try:
        websocket = await ws_connect(
            uri,
            compression=None,
            max_size=max_frame_size(config.max_message_size),
            ping_interval=None,
            ssl=ssl,
            open_timeout=open_timeout,
        )
    except websockets.InvalidStatus as exc:
        if exc.response.status_code == 503:
            raise TryAgainLater(
                CloseCode.TRY_AGAIN_LATER,
                f"the console at {uri} is busy",
                retry_after=_retry_after(exc.response.headers.get("Retry-After")),
            ) from exc
        raise ConnectionClosedError(
            CloseCode.ABNORMAL, f"cannot open a WebSocket to {uri}: {exc}", by_peer=True
        ) from exc
    except (OSError, TimeoutError, websockets.InvalidURI, websockets.InvalidHandshake) as exc:
        raise ConnectionClosedError(
            CloseCode.ABNORMAL, f"cannot open a WebSocket to {uri}: {exc}", by_peer=True
        ) from exc
    if tls_fingerprint is not None:
        ssl_object = websocket.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None or not hmac.compare_digest(
            certificate_fingerprint(der), tls_fingerprint.lower()
        ):
            await websocket.close(CloseCode.HANDSHAKE_FAILED, "TLS certificate not pinned")
            raise HandshakeError(
                "the console's TLS certificate is not the one pinned at enrollment",
                close_code=CloseCode.HANDSHAKE_FAILED,
            )
    loop = asyncio.get_running_loop()
    connection = ClientConnection(
        static_private, server_public, loop.time(), config, enrollment_token=enrollment_token
    )
    try:
        return await Channel.open(WebSocketTransport(websocket), connection)
    except HandshakeError as exc:
        if exc.close_code == CloseCode.TRY_AGAIN_LATER:
            raise TryAgainLater(
                CloseCode.TRY_AGAIN_LATER, str(exc), retry_after=DEFAULT_RETRY_AFTER
            ) from exc
        raise


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (seconds only), within reason."""
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER
    if not seconds >= 0:  # NaN too
        seconds = DEFAULT_RETRY_AFTER
    return min(seconds, MAX_RETRY_AFTER)


async def accept(
    websocket: WsServerConnection,
    static_private: bytes,
    authorize: Authorizer,
    *,
    config: ChannelConfig | None = None,
) -> Channel:
    """Run the console's side of the handshake on an accepted WebSocket."""
    loop = asyncio.get_running_loop()
    connection = ServerConnection(static_private, None, loop.time(), config)
    return await Channel.open(WebSocketTransport(websocket), connection, authorize)


async def serve(
    handler: Callable[[Channel], Awaitable[None]],
    host: str,
    port: int,
    static_private: bytes,
    authorize: Authorizer,
    *,
    config: ChannelConfig | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> Server:
    """Listen for agents; run ``handler`` with each channel whose handshake succeeds.

    The channel is closed when ``handler`` returns. Use the result as an async
    context manager, or call its ``close()``.
    """
    config = config or ChannelConfig()

    async def on_websocket(websocket: WsServerConnection) -> None:
        try:
            channel = await accept(websocket, static_private, authorize, config=config)
        except (HandshakeError, ConnectionClosed) as exc:
            logger.info("agent handshake from %s failed: %s", websocket.remote_address, exc)
            return
        try:
            await handler(channel)
        finally:
            await channel.close()

    return await ws_serve(
        on_websocket,
        host,
        port,
        compression=None,
        max_size=max_frame_size(config.max_message_size),
        ping_interval=None,
        ssl=ssl,
    )
