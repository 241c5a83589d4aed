"""A self-contained demonstration of the secure channel on loopback."""

from __future__ import annotations

import asyncio
import platform
import socket
import time

from deskside.channel import Channel, connect, serve
from deskside.protocol import crypto
from deskside.protocol import messages as m

__all__ = ["run_channel_demo"]


async def run_channel_demo(heartbeats: int) -> list[str]:
    """Run a console and an agent side in this process; lines describing what happened."""
    console_key = crypto.generate_private_key()
    agent_key = crypto.generate_private_key()
    agent_public = crypto.public_key(agent_key)
    received: list[m.Message] = []
    done = asyncio.Event()

    async def on_agent(channel: Channel) -> None:
        async for message in channel:
            received.append(message)
            if len(received) == heartbeats + 1:
                done.set()

    async def authorize(key: bytes, params: m.ClientParams) -> bool:
        return key == agent_public

    lines: list[str] = []
    server = await serve(on_agent, "127.0.0.1", 0, console_key, authorize)
    async with server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}/agent"
        lines.append(f"console listening on {url}")
        started = time.perf_counter()
        channel = await connect(url, agent_key, crypto.public_key(console_key))
        handshake_ms = (time.perf_counter() - started) * 1e3
        lines.append(
            f"agent connected: Noise IK handshake in {handshake_ms:.1f} ms, "
            f"protocol version {channel.version}"
        )
        hello = m.Hello(
            agent_version="demo",
            os=m.OsInfo(
                family=m.OsFamily.LINUX if platform.system() == "Linux" else m.OsFamily.OTHER,
                name=platform.platform(),
                hostname=socket.gethostname(),
            ),
        )
        started = time.perf_counter()
        await channel.send(hello)
        for _ in range(heartbeats):
            await channel.send(m.Heartbeat(sent_at=time.time()))
        await asyncio.wait_for(done.wait(), 30)
        elapsed = time.perf_counter() - started
        rtt = await channel.ping()
        await channel.close()
    first = received[0]
    if isinstance(first, m.Hello):
        lines.append(f"console received hello from {first.os.hostname} ({first.os.name})")
    lines.append(
        f"console received {len(received) - 1} heartbeats in {elapsed * 1e3:.1f} ms "
        f"({heartbeats / elapsed:,.0f} messages/s, encrypted)"
    )
    lines.append(f"round trip through the channel: {rtt * 1e3:.2f} ms")
    lines.append("channel closed")
    return lines
