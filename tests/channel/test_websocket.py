"""Agent-side and console-side channels over real WebSockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from deskside.channel import Channel, connect, serve
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.connection import ChannelConfig, CloseCode
from deskside.protocol.enrollment import certificate_fingerprint
from deskside.protocol.errors import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    TryAgainLater,
)

AGENT_KEY = crypto.generate_private_key()
CONSOLE_KEY = crypto.generate_private_key()
AGENT_PUB = crypto.public_key(AGENT_KEY)
CONSOLE_PUB = crypto.public_key(CONSOLE_KEY)
HELLO = m.Hello(agent_version="0.1", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian 12"))

Handler = Callable[[Channel], Awaitable[None]]


class Console:
    """A console-side listener whose handler is set per test."""

    def __init__(self) -> None:
        self.channels: asyncio.Queue[Channel] = asyncio.Queue()
        self.handler: Handler | None = None
        self.known = {AGENT_PUB}
        self.port = 0

    async def authorize(self, key: bytes, params: m.ClientParams) -> bool:
        await asyncio.sleep(0)  # as a database lookup would
        if params.enrollment_token == "spent-token-0123456789":
            raise HandshakeError("enrollment token already used", close_code=CloseCode.UNKNOWN_PEER)
        return key in self.known

    async def handle(self, channel: Channel) -> None:
        self.channels.put_nowait(channel)
        if self.handler is not None:
            await self.handler(channel)
        else:
            await channel.wait_closed()

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/agent"


@contextlib.asynccontextmanager
async def listening(config: ChannelConfig) -> AsyncIterator[Console]:
    """A console listening on 127.0.0.1 with this channel configuration."""
    state = Console()
    server = await serve(state.handle, "127.0.0.1", 0, CONSOLE_KEY, state.authorize, config=config)
    state.port = next(iter(server.sockets)).getsockname()[1]
    async with server:
        yield state


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    async with listening(ChannelConfig(keepalive_interval=0.2, idle_timeout=1.0)) as state:
        yield state


async def test_messages_flow_both_ways(console: Console) -> None:
    async def echo(channel: Channel) -> None:
        async for message in channel:
            if isinstance(message, m.Hello):
                await channel.send(m.SnapshotRequest(request_id="r1"))

    console.handler = echo
    channel = await connect(console.uri, AGENT_KEY, CONSOLE_PUB)
    assert channel.remote_static == CONSOLE_PUB
    server_side = await console.channels.get()
    assert server_side.remote_static == AGENT_PUB
    assert channel.handshake_hash == server_side.handshake_hash
    await channel.send(HELLO)
    assert await asyncio.wait_for(channel.recv(), 5) == m.SnapshotRequest(request_id="r1")
    await channel.close()
    await asyncio.wait_for(server_side.wait_closed(), 5)


async def test_large_messages_and_ping(console: Console) -> None:
    async def collect(channel: Channel) -> None:
        async for message in channel:
            await channel.send(message)

    console.handler = collect
    channel = await connect(console.uri, AGENT_KEY, CONSOLE_PUB)
    big = m.CommandOutput(command_id="c1", seq=0, stream=m.OutputStream.STDOUT, data=b"z" * 900_000)
    for _ in range(3):
        await channel.send(big)
    for _ in range(3):
        assert await asyncio.wait_for(channel.recv(), 5) == big
    rtt = await asyncio.wait_for(channel.ping(), 5)
    assert 0 < rtt < 5
    await channel.close()


async def test_wrong_console_key_fails_the_handshake(console: Console) -> None:
    impostor = crypto.public_key(crypto.generate_private_key())
    with pytest.raises(HandshakeError) as info:
        await asyncio.wait_for(connect(console.uri, AGENT_KEY, impostor), 5)
    assert info.value.close_code == CloseCode.HANDSHAKE_FAILED
    assert console.channels.empty()


async def test_unknown_agent_is_refused(console: Console) -> None:
    stranger = crypto.generate_private_key()
    with pytest.raises(HandshakeError) as info:
        await asyncio.wait_for(connect(console.uri, stranger, CONSOLE_PUB), 5)
    assert info.value.close_code == CloseCode.UNKNOWN_PEER
    assert console.channels.empty()


async def test_refusal_reason_reaches_the_agent(console: Console) -> None:
    stranger = crypto.generate_private_key()
    with pytest.raises(HandshakeError, match="enrollment token already used") as info:
        await asyncio.wait_for(
            connect(console.uri, stranger, CONSOLE_PUB, enrollment_token="spent-token-0123456789"),
            5,
        )
    assert info.value.close_code == CloseCode.UNKNOWN_PEER


async def test_console_closing_reaches_the_agent(console: Console) -> None:
    async def close_soon(channel: Channel) -> None:
        await channel.close(CloseCode.GOING_AWAY, "console restarting")

    console.handler = close_soon
    channel = await connect(console.uri, AGENT_KEY, CONSOLE_PUB)
    with pytest.raises(ConnectionClosedOK) as info:
        await asyncio.wait_for(channel.recv(), 5)
    assert (info.value.code, info.value.reason, info.value.by_peer) == (
        1001,
        "console restarting",
        True,
    )


async def test_keepalive_keeps_an_idle_channel_open(console: Console) -> None:
    config = ChannelConfig(keepalive_interval=0.2, idle_timeout=1.0)
    channel = await connect(console.uri, AGENT_KEY, CONSOLE_PUB, config=config)
    await asyncio.sleep(2.5)  # well past both idle time-outs: pings kept it alive
    assert not channel.closed
    await channel.send(HELLO)
    await channel.close()


async def test_silent_peer_is_closed_for_idleness(console: Console) -> None:
    """A raw WebSocket that completes no handshake is dropped after the time-out."""
    async with ws_connect(console.uri, compression=None) as raw:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(raw.recv(), 15)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == CloseCode.HANDSHAKE_TIMEOUT


async def test_garbage_and_text_frames_close_with_a_code(console: Console) -> None:
    async with ws_connect(console.uri, compression=None) as raw:
        await raw.send(b"not a noise handshake")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(raw.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == CloseCode.HANDSHAKE_FAILED
    async with ws_connect(console.uri, compression=None) as raw:
        await raw.send("text")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(raw.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == CloseCode.PROTOCOL_ERROR


@pytest.fixture
async def tls_console(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A console behind TLS with a self-signed certificate: (uri, fingerprint)."""
    cert_pem, key_pem, der = crypto.make_self_signed_certificate(["127.0.0.1", "localhost"])
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    state = Console()
    server = await serve(state.handle, "127.0.0.1", 0, CONSOLE_KEY, state.authorize, ssl=context)
    port = next(iter(server.sockets)).getsockname()[1]
    async with server:
        yield f"wss://127.0.0.1:{port}/agent", certificate_fingerprint(der)


async def test_tls_with_the_pinned_certificate(tls_console: tuple[str, str]) -> None:
    uri, fingerprint = tls_console
    channel = await connect(uri, AGENT_KEY, CONSOLE_PUB, tls_fingerprint=fingerprint)
    await channel.send(HELLO)
    await channel.close()


async def test_tls_with_another_certificate_is_refused(tls_console: tuple[str, str]) -> None:
    uri, _ = tls_console
    with pytest.raises(HandshakeError, match="not the one pinned"):
        await connect(uri, AGENT_KEY, CONSOLE_PUB, tls_fingerprint="0" * 64)
    # And without a pin, a self-signed certificate fails the system trust store.
    with pytest.raises(ConnectionClosedError, match="cannot open"):
        await connect(uri, AGENT_KEY, CONSOLE_PUB)


async def test_connection_refused_is_a_closed_error() -> None:
    with pytest.raises(ConnectionClosedError, match="cannot open a WebSocket"):
        await connect("ws://127.0.0.1:9/agent", AGENT_KEY, CONSOLE_PUB, open_timeout=2)


async def test_tampering_proxy_is_detected(console: Console) -> None:
    """A man in the middle who ends TLS and flips a byte gets the channel closed."""
    received: list[m.Message] = []

    async def record(channel: Channel) -> None:
        async for message in channel:
            received.append(message)

    console.handler = record
    frames_seen = 0

    async def proxy(client: WsServerConnection) -> None:
        nonlocal frames_seen
        async with ws_connect(console.uri, compression=None) as upstream:

            async def down() -> None:
                async for frame in upstream:
                    await client.send(frame)

            task = asyncio.create_task(down())
            try:
                async for frame in client:
                    assert isinstance(frame, bytes)
                    frames_seen += 1
                    if frames_seen == 3:  # handshake, hello, then tamper with the next
                        frame = frame[:-1] + bytes([frame[-1] ^ 0x01])
                    await upstream.send(frame)
            finally:
                task.cancel()

    async with ws_serve(proxy, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        channel = await connect(f"ws://127.0.0.1:{port}/", AGENT_KEY, CONSOLE_PUB)
        await channel.send(HELLO)
        await channel.send(m.Heartbeat(sent_at=1.0))
        server_side = await console.channels.get()
        await asyncio.wait_for(server_side.wait_closed(), 5)
        assert received == [HELLO]
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(channel.recv(), 5)


async def test_an_agent_keeps_below_the_rate_the_console_announces() -> None:
    """A burst far above the console's limit is paced, not cut off (4007)."""
    received: list[m.Heartbeat] = []

    async def collect(channel: Channel) -> None:
        async for message in channel:
            assert isinstance(message, m.Heartbeat)
            received.append(message)

    async with listening(ChannelConfig(max_receive_rate=100.0, receive_burst=10)) as state:
        state.handler = collect
        channel = await connect(state.uri, AGENT_KEY, CONSOLE_PUB)
        beats = [m.Heartbeat(sent_at=float(i)) for i in range(120)]
        await asyncio.gather(*(channel.send(beat) for beat in beats))  # all at once
        server_side = await state.channels.get()
        await channel.close()
        await asyncio.wait_for(server_side.wait_closed(), 5)
    # Every one arrived (paced senders may overtake each other while they wait).
    assert sorted(received, key=lambda b: b.sent_at) == beats


# -- A busy console ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def busy_server(
    status: int, headers: list[tuple[str, str]], close_code: int | None = None
) -> AsyncIterator[str]:
    """A server that answers every upgrade with ``status``, or accepts then closes."""

    def refuse(connection: WsServerConnection, request: Request) -> Response | None:
        if close_code is not None:
            return None
        response = connection.respond(status, "busy\n")
        for name, value in headers:
            response.headers[name] = value
        return response

    async def close_at_once(connection: WsServerConnection) -> None:
        assert close_code is not None
        await connection.close(close_code, "console busy")

    async with ws_serve(close_at_once, "127.0.0.1", 0, process_request=refuse) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/agent"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("Retry-After", "7")], 7.0),
        ([], 1.0),
        ([("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")], 1.0),
        ([("Retry-After", "nan")], 1.0),
        ([("Retry-After", "86400")], 300.0),
    ],
)
async def test_a_503_is_try_again_later_with_the_consoles_wait(
    headers: list[tuple[str, str]], expected: float
) -> None:
    async with busy_server(503, headers) as uri:
        with pytest.raises(TryAgainLater) as refused:
            await connect(uri, AGENT_KEY, CONSOLE_PUB, open_timeout=5)
    assert refused.value.retry_after == expected
    assert refused.value.code == CloseCode.TRY_AGAIN_LATER


async def test_another_refused_upgrade_is_not_try_again_later() -> None:
    async with busy_server(403, []) as uri:
        with pytest.raises(ConnectionClosedError) as refused:
            await connect(uri, AGENT_KEY, CONSOLE_PUB, open_timeout=5)
    assert not isinstance(refused.value, TryAgainLater)


async def test_a_close_with_1013_during_the_handshake_is_try_again_later() -> None:
    async with busy_server(101, [], close_code=CloseCode.TRY_AGAIN_LATER) as uri:
        with pytest.raises(TryAgainLater) as refused:
            await connect(uri, AGENT_KEY, CONSOLE_PUB, open_timeout=5)
    assert refused.value.retry_after == 1.0
