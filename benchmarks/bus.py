"""The event bus across nodes: Redis (redis-py, as the console does it) against the
in-process bus, and against Litestar's channels over the same Redis, in one run.

    .venv/bin/python benchmarks/bus.py [--rounds 2000] [--events 100000]

Starts its own redis-server on a free port (tests/redisserver.py). Two
``RedisEventBus`` nodes in this process, as two console nodes would be:

* one event's trip from a publish on node A to a subscriber's ``get`` on node B,
  p50 and p99 (one at a time), against the same trip on one ``LocalEventBus``, and
  against bytes sent through ``litestar.channels``' Redis pub/sub backend;
* throughput: N command-output events (100 bytes of output each) published on A
  as fast as ``publish`` returns, until B's subscriber has them all.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from litestar.channels.backends.redis import RedisChannelsPubSubBackend

from deskside.console.cluster.bus import RedisEventBus, connect
from deskside.console.events import DomainEvent, LocalEventBus, Subscription
from tests.redisserver import RedisServer


class Output(DomainEvent, frozen=True, kw_only=True, tag="bench.output"):
    topic_field: ClassVar[str | None] = "command"

    command: str
    seq: int
    data: bytes


def _event(seq: int) -> Output:
    return Output(command="c" * 32, seq=seq, data=b"x" * 100)


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1e3, cuts[98] * 1e3


async def _trips(publish: object, subscription: Subscription, rounds: int) -> list[float]:
    assert callable(publish)
    samples = []
    for seq in range(rounds):
        began = time.perf_counter()
        publish(_event(seq))
        await subscription.get()
        samples.append(time.perf_counter() - began)
    return samples


async def _channels_trips(url: str, rounds: int) -> list[float]:
    sender = RedisChannelsPubSubBackend(redis=connect(url))
    receiver = RedisChannelsPubSubBackend(redis=connect(url))
    await sender.on_startup()
    await receiver.on_startup()
    await receiver.subscribe(["bench"])
    await asyncio.sleep(0.2)
    events = receiver.stream_events()
    samples = []
    payload = b"x" * 180
    for _ in range(rounds):
        began = time.perf_counter()
        await sender.publish(payload, ["bench"])
        await anext(events)
        samples.append(time.perf_counter() - began)
    await sender.on_shutdown()
    await receiver.on_shutdown()
    return samples


async def main(rounds: int, events: int) -> None:
    with tempfile.TemporaryDirectory(prefix="deskside-bench-redis-") as base:
        redis = RedisServer(Path(base))
        redis.start()
        try:
            a = RedisEventBus(redis.url, node="a", outbox=events + 1)
            b = RedisEventBus(redis.url, node="b")
            await a.start()
            await b.start()
            while not (a.receiving and b.receiving):
                await asyncio.sleep(0.01)
            local = LocalEventBus()
            with local.subscribe(Output) as subscription:
                one = await _trips(local.publish, subscription, rounds)
            with b.subscribe(Output) as subscription:
                across = await _trips(a.publish, subscription, rounds)
            channels = await _channels_trips(redis.url, rounds)
            sink = b.subscribe(Output, maxsize=events + 1)
            began = time.perf_counter()
            for seq in range(events):
                a.publish(_event(seq))
            published = time.perf_counter() - began
            for _ in range(events):
                await sink.get()
            delivered = time.perf_counter() - began
            await a.stop()
            await b.stop()
        finally:
            redis.stop()
    print(f"one event's trip, {rounds} rounds (ms)      p50      p99")
    for name, samples in (
        ("LocalEventBus (one node)", one),
        ("RedisEventBus, node A -> node B", across),
        ("litestar.channels Redis pub/sub", channels),
    ):
        p50, p99 = _quantiles(samples)
        print(f"  {name:<34} {p50:8.3f} {p99:8.3f}")
    print(
        f"{events} events A -> B: publish {events / published:,.0f}/s, "
        f"delivered on B {events / delivered:,.0f}/s ({delivered:.2f} s), "
        f"gaps {b.gaps}, overflowed {sink.overflowed}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--events", type=int, default=100_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.events))
