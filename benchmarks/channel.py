"""Secure channel against bare WebSockets, on loopback, in one run.

    .venv/bin/python benchmarks/channel.py [--messages 2000] [--rounds 2000]

The receiving side runs in a second process (as a console would), the sending side
in this one. Each measurement is taken for the encrypted channel and for bare
``websockets`` (compression off, no encryption but what TLS would add: none here),
and the table gives their ratio, so a noisy machine shifts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve

from deskside.channel import Channel, connect, serve
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.connection import ClientConnection, ServerConnection

BIG = 100_000
SMALL = 16


def _output(size: int) -> m.CommandOutput:
    return m.CommandOutput(
        command_id="bench", seq=0, stream=m.OutputStream.STDOUT, data=b"x" * size
    )


# -- The receiving process -------------------------------------------------------------------


async def _channel_server(console_key: bytes, port_queue: mp.Queue[int]) -> None:
    reply = _output(SMALL)

    async def handler(channel: Channel) -> None:
        async for message in channel:
            if isinstance(message, m.CommandOutput) and len(message.data) <= SMALL:
                await channel.send(reply)

    async def accept_all(key: bytes, params: m.ClientParams) -> bool:
        return True

    server = await serve(handler, "127.0.0.1", 0, console_key, accept_all)
    port_queue.put(next(iter(server.sockets)).getsockname()[1])
    await server.serve_forever()


async def _bare_server(port_queue: mp.Queue[int]) -> None:
    reply = b"y" * SMALL

    async def handler(websocket: WsServerConnection) -> None:
        async for frame in websocket:
            if len(frame) <= SMALL:
                await websocket.send(reply)

    server = await ws_serve(
        handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
    )
    port_queue.put(next(iter(server.sockets)).getsockname()[1])
    await server.serve_forever()


def _serve(kind: str, console_key: bytes, port_queue: mp.Queue[int]) -> None:
    if kind == "channel":
        asyncio.run(_channel_server(console_key, port_queue))
    else:
        asyncio.run(_bare_server(port_queue))


# -- Measurements --------------------------------------------------------------------------


class Link:
    """Send big and small messages and wait for replies, over one kind of link."""

    def __init__(
        self,
        send_big: Callable[[], Awaitable[None]],
        send_small: Callable[[], Awaitable[None]],
        recv: Callable[[], Awaitable[object]],
    ) -> None:
        self.send_big, self.send_small, self.recv = send_big, send_small, recv

    async def rtts(self, rounds: int) -> list[float]:
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await self.send_small()
            await self.recv()
            samples.append(time.perf_counter() - started)
        return samples

    async def throughput(self, messages: int) -> float:
        """Bytes a second of BIG-byte messages, until the receiver has them all."""
        started = time.perf_counter()
        for _ in range(messages):
            await self.send_big()
        await self.send_small()  # answered only after everything before it was read
        await self.recv()
        return messages * BIG / (time.perf_counter() - started)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, ports: dict[str, int], console_key: bytes) -> None:
    console_pub = crypto.public_key(console_key)
    agent_key = crypto.generate_private_key()
    channel_uri = f"ws://127.0.0.1:{ports['channel']}/"
    bare_uri = f"ws://127.0.0.1:{ports['bare']}/"

    # Handshakes: a full connect + Noise IK + close, one after the other.
    started = time.perf_counter()
    for _ in range(args.handshakes):
        channel = await connect(channel_uri, agent_key, console_pub)
        await channel.close()
    channel_hs = args.handshakes / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(args.handshakes):
        websocket = await ws_connect(bare_uri, compression=None, ping_interval=None)
        await websocket.close()
    bare_hs = args.handshakes / (time.perf_counter() - started)
    # And the Noise handshake alone, both sides in memory.
    server_key = crypto.generate_private_key()
    server_pub = crypto.public_key(server_key)
    started = time.perf_counter()
    for _ in range(args.handshakes):
        client = ClientConnection(agent_key, server_pub, 0.0)
        server = ServerConnection(server_key, lambda key, _: True, 0.0)
        for frame in client.data_to_send():
            server.receive_data(frame, 0.0)
        for frame in server.data_to_send():
            client.receive_data(frame, 0.0)
    noise_hs = args.handshakes / (time.perf_counter() - started)

    channel = await connect(channel_uri, agent_key, console_pub)
    big, small = _output(BIG), _output(SMALL)
    encrypted = Link(lambda: channel.send(big), lambda: channel.send(small), channel.recv)
    websocket = await ws_connect(bare_uri, compression=None, max_size=None, ping_interval=None)
    big_bytes, small_bytes = b"x" * BIG, b"x" * SMALL
    bare = Link(
        lambda: websocket.send(big_bytes), lambda: websocket.send(small_bytes), websocket.recv
    )

    # Warm up both, then alternate rounds so drift on the machine hits both alike.
    await encrypted.rtts(50)
    await bare.rtts(50)
    enc_rtt: list[float] = []
    bare_rtt: list[float] = []
    enc_tp: list[float] = []
    bare_tp: list[float] = []
    for _ in range(3):
        enc_rtt += await encrypted.rtts(args.rounds // 3)
        bare_rtt += await bare.rtts(args.rounds // 3)
        enc_tp.append(await encrypted.throughput(args.messages // 3))
        bare_tp.append(await bare.throughput(args.messages // 3))
    await channel.close()
    await websocket.close()

    enc_t, bare_t = statistics.median(enc_tp), statistics.median(bare_tp)
    rows = [
        ("handshakes/s (connect + handshake + close)", channel_hs, bare_hs, "/s"),
        ("Noise IK handshakes/s, in memory (CPU only)", noise_hs, None, "/s"),
        (
            "round trip, 16-byte message, p50",
            percentile(enc_rtt, 0.5) * 1e3,
            percentile(bare_rtt, 0.5) * 1e3,
            "ms",
        ),
        (
            "round trip, 16-byte message, p99",
            percentile(enc_rtt, 0.99) * 1e3,
            percentile(bare_rtt, 0.99) * 1e3,
            "ms",
        ),
        ("throughput, 100 KB messages", enc_t / 1e6, bare_t / 1e6, "MB/s"),
    ]
    print(f"{'measure':46} {'channel':>10} {'bare ws':>10} {'ratio':>7}  unit")
    for name, ours, theirs, unit in rows:
        ratio = f"{ours / theirs:7.2f}" if theirs else " " * 7
        other = f"{theirs:10.2f}" if theirs is not None else " " * 10
        print(f"{name:46} {ours:10.2f} {other} {ratio}  {unit}")
    goal = enc_t / bare_t >= 0.5
    print(
        f"\ngoal: encrypted throughput >= 0.5 x bare: {'met' if goal else 'NOT met'} "
        f"({enc_t / bare_t:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="100 KB messages per kind")
    parser.add_argument("--rounds", type=int, default=3000, help="round trips per kind")
    parser.add_argument("--handshakes", type=int, default=300, help="handshakes per kind")
    args = parser.parse_args()
    context = mp.get_context("spawn")
    console_key = crypto.generate_private_key()
    ports: dict[str, int] = {}
    processes = []
    for kind in ("channel", "bare"):
        queue: mp.Queue[int] = context.Queue()
        process = context.Process(target=_serve, args=(kind, console_key, queue), daemon=True)
        process.start()
        processes.append(process)
        ports[kind] = queue.get(timeout=30)
    try:
        asyncio.run(measure(args, ports, console_key))
    finally:
        for process in processes:
            process.terminate()
            process.join(5)


if __name__ == "__main__":
    main()
