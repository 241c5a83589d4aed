"""The presence registry on a real redis-server and a real PostgreSQL, two nodes in one
process: claims, the sweep after a node is gone, presence rebuilt after Redis restarts."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Callable

import pytest

from deskside.console.cluster.registry import PresenceRegistry
from deskside.console.db import migrate
from deskside.console.devices.events import DeviceOffline, DeviceOnline
from deskside.console.store import Store
from deskside.protocol import messages as m
from tests.console.test_store import enrolled
from tests.postgres import create_database
from tests.redisserver import RedisServer

TTL = 1.0
HELLO = m.Hello(agent_version="test", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian"))


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:
    url = create_database(postgres_url)
    migrate(url)
    store = Store.connect(url)
    try:
        yield store
    finally:
        await store.close()


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def online(store: Store, device: str) -> bool:
    return (await store.devices.get_device(device)).online


async def test_claims_the_sweep_and_presence_rebuilt_after_redis_restarts(
    store: Store, redis: RedisServer
) -> None:
    held: set[str] = set()
    a = PresenceRegistry(
        redis.url, node="a", devices=store.devices, held=lambda: held, claim_ttl=TTL
    )
    b = PresenceRegistry(redis.url, node="b", devices=store.devices, held=set, claim_ttl=TTL)
    kept, gone = await enrolled(store), await enrolled(store)
    await a.start()
    await b.start()
    try:
        for device in (kept, gone):
            held.add(device)
            await a.claim(device)
            await store.devices.record_hello(device, HELLO)
        await until(lambda: a.alive and b.alive)
        assert await b.holders([kept, gone]) == {kept: "a", gone: "a"}
        # A device that moved to b is b's: a's release of it gives nothing back.
        await b.claim(gone)
        held.discard(gone)
        assert await a.release([gone]) == set()
        assert await b.release([gone]) == {gone}
        await store.devices.mark_offline([gone])

        # Redis restarts empty; meanwhile a sweep somewhere recorded kept offline.
        redis.stop()
        await until(lambda: not a.alive)
        await store.devices.mark_offline([kept])
        events = store.bus.subscribe(DeviceOnline, DeviceOffline)
        redis.start()
        await until(lambda: a.rebuilds >= 2)  # a found its key gone and claimed again
        assert await b.holders([kept]) == {kept: "a"}
        assert await online(store, kept)
        assert events.get_nowait() == DeviceOnline(device_id=kept)
        # Sweeps wait until every node had time to claim again, then leave kept alone.
        await asyncio.sleep(2 * TTL + 1.5)
        assert await online(store, kept)

        # Node a goes: its claims die with it, and b's sweep records kept offline.
        await a.stop()
        await until(lambda: _not(online(store, kept)))
        assert b.swept == 1
        assert events.get_nowait() == DeviceOffline(device_id=kept)
    finally:
        await a.stop()
        await b.stop()


async def _not(value: object) -> bool:
    assert asyncio.iscoroutine(value)
    return not await value


async def test_the_sweep_spares_a_device_seen_after_it_began(store: Store) -> None:
    device = await enrolled(store)
    await store.devices.record_hello(device, HELLO)
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    await store.devices.mark_offline([device], unseen_since=before)
    assert await online(store, device)  # its Hello came after the sweep began
    await store.devices.mark_offline([device], unseen_since=datetime.datetime.now(datetime.UTC))
    assert not await online(store, device)
