"""The Redis event bus: two nodes in one process, on a real redis-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import ClassVar

import msgspec
import pytest
import redis.asyncio

from deskside.console.cluster.bus import CHANNEL, RedisEventBus
from deskside.console.events import DomainEvent, Subscription
from tests.redisserver import RedisServer


class Noted(DomainEvent, frozen=True, kw_only=True, tag="test.cluster.noted"):
    topic_field: ClassVar[str | None] = "key"

    key: str
    data: bytes = b""


class Other(DomainEvent, frozen=True, kw_only=True, tag="test.cluster.other"):
    n: int


@pytest.fixture
async def nodes(redis: RedisServer) -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    a = RedisEventBus(redis.url, node="a")
    b = RedisEventBus(redis.url, node="b", outbox=16)
    await a.start()
    await b.start()
    try:
        await _until(lambda: a.receiving and b.receiving)
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _next(subscription: Subscription, timeout: float = 10.0) -> DomainEvent:
    async with asyncio.timeout(timeout):
        return await subscription.get()


async def test_an_event_reaches_every_node_once_by_type_and_topic(
    nodes: tuple[RedisEventBus, RedisEventBus],
) -> None:
    a, b = nodes
    here = a.subscribe(Noted)
    everything = b.subscribe(Noted, Other)
    only_x = b.subscribe(Noted, topic="x")
    a.publish(Noted(key="y", data=b"\x00\xff"))
    a.publish(Noted(key="x"))
    a.publish(Other(n=3))
    assert [await _next(everything) for _ in range(3)] == [
        Noted(key="y", data=b"\x00\xff"),
        Noted(key="x"),
        Other(n=3),
    ]
    assert await _next(only_x) == Noted(key="x")
    # The publishing node's own subscribers got theirs at once, and only once.
    assert here.get_nowait() == Noted(key="y", data=b"\x00\xff")
    assert here.get_nowait() == Noted(key="x")
    await _until(lambda: b.sent == 0 and a.sent == 3)
    await asyncio.sleep(0.1)
    assert here.get_nowait() is None
    assert only_x.get_nowait() is None
    assert not everything.overflowed
    assert not here.overflowed


async def test_events_published_after_redis_returns_arrive_and_subscribers_hear_of_the_gap(
    nodes: tuple[RedisEventBus, RedisEventBus], redis: RedisServer
) -> None:
    a, b = nodes
    on_a = a.subscribe(Other)
    on_b = b.subscribe(Other)
    redis.stop()
    await _until(lambda: not a.receiving and not b.receiving)
    # While Redis is away, b's outbox (16 events) overflows: its numbers have a gap.
    for n in range(20):
        b.publish(Other(n=n))
    assert b.outbox_dropped == 4
    assert [on_b.get_nowait() for _ in range(20)] == [Other(n=n) for n in range(20)]  # b's own
    redis.start()
    await _until(lambda: a.receiving and b.receiving)
    assert on_a.overflowed
    assert on_b.overflowed
    a.publish(Other(n=100))
    assert await _next(on_b) == Other(n=100)
    assert on_a.get_nowait() == Other(n=100)  # a's own, at once
    # What b kept while Redis was away went out once it was back (whoever was
    # subscribed again by then got it; the others were told they may miss events).
    await _until(lambda: b.sent == 16 and b.outbox_depth == 0)


async def test_a_gap_in_another_nodes_numbers_is_told_to_subscribers(
    nodes: tuple[RedisEventBus, RedisEventBus], redis: RedisServer
) -> None:
    a, b = nodes
    on_a = a.subscribe(Other)
    b.publish(Other(n=1))
    assert await _next(on_a) == Other(n=1)
    assert not on_a.overflowed
    # b's event number 1 never reaches Redis; number 2 does.
    b._next_seq += 1
    b.publish(Other(n=2))
    assert await _next(on_a) == Other(n=2)
    assert a.gaps == 1
    assert on_a.overflowed


async def test_what_is_not_an_event_of_a_known_type_is_skipped(
    nodes: tuple[RedisEventBus, RedisEventBus],
    redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = nodes
    on_a = a.subscribe(Other)
    unknown = msgspec.msgpack.encode({"type": "from.a.newer.node", "n": 1})
    known = msgspec.msgpack.encode(Other(n=7))
    client = redis_client(redis)
    with caplog.at_level(logging.WARNING):
        await client.publish(CHANNEL, b"not msgpack at all \xc1")
        batch = ["c", 0, [msgspec.Raw(unknown), msgspec.Raw(known)]]
        await client.publish(CHANNEL, msgspec.msgpack.encode(batch))
        assert await _next(on_a) == Other(n=7)
    await client.aclose()
    assert "not a batch of events" in caplog.text
    assert "from.a.newer.node" in caplog.text
    assert a.received == 1


def redis_client(server: RedisServer) -> redis.asyncio.Redis:
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(server.url)
    return client
