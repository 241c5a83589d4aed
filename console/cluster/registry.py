"""Which node holds which agent: the presence registry, in Redis.

Theory of operation::

    deskside:node:<node>   "1", expires claim_ttl after the node's last renewal (every
                           claim_ttl / 5 seconds): the node is alive while it exists
    deskside:holders       hash: device id -> the node holding its daemon channel
    deskside:epoch         when this Redis's registry began (set once, NX)

* A node claims a device when its agent says ``Hello`` (before the database records
  it online) and releases it when the channel ends, only if it still holds it (a
  device that moved on to another node is that node's; the departing node then
  records nothing offline).
* A device is online when its holder is alive. The database's ``online`` column,
  which the API and the CLI read, is kept to that by a sweep that one node at a
  time runs every second (``deskside:sweep``, a lock that expires): devices online
  in the database whose holder is missing or dead are recorded offline, unless
  they were seen after the sweep began (a ``Hello`` racing it wins). A node killed
  with ``kill -9`` thus leaves its devices online for ``claim_ttl`` plus a second.
* Redis restarted (nothing persisted) or a node cut off from it longer than
  ``claim_ttl``: the node's renewal finds its key gone, claims again every device
  it holds, and records them online again (a sweep may have taken them offline).
  The sweep waits ``2 * claim_ttl`` after the registry's epoch, so that every live
  node has claimed its devices again before anyone is judged.
* Redis away: agents still connect (a claim that fails is made at the next
  renewal that succeeds); nothing is swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Final, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .bus import connect

__all__ = ["DeviceStates", "PresenceRegistry"]

logger = logging.getLogger(__name__)

HOLDERS: Final = "deskside:holders"
EPOCH: Final = "deskside:epoch"
SWEEP: Final = "deskside:sweep"
# Seconds between sweeps.
SWEEP_INTERVAL: Final = 1.0

# Delete a device's entry only if this node still holds it; 1 if it did.
_RELEASE: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def node_key(node: str) -> str:
    """The key that exists while ``node`` is alive."""
    return f"deskside:node:{node}"


class DeviceStates(Protocol):
    """What the registry keeps right in the database (the devices' repository)."""

    async def online_devices(self) -> list[str]:
        """The devices the database shows online."""
        ...

    async def mark_offline(
        self, device_ids: Collection[str], *, unseen_since: datetime.datetime | None = None
    ) -> None:
        """Record devices offline (those not seen since ``unseen_since``, if given)."""
        ...

    async def mark_online(self, device_ids: Collection[str]) -> None:
        """Record devices online again."""
        ...


class PresenceRegistry:
    """This node's claims on its agents, and the sweep that keeps the database right."""

    def __init__(
        self,
        url: str,
        *,
        node: str,
        devices: DeviceStates,
        held: Callable[[], Iterable[str]],
        claim_ttl: float = 5.0,
    ) -> None:
        self.node = node
        self._url = url
        self._devices = devices
        # The devices whose daemon channel is open on this node now.
        self._held = held
        self.claim_ttl = claim_ttl
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        # Whether the last renewal reached Redis (for /readyz and metrics).
        self.alive = False
        # Renewals that found this node's key gone and claimed everything again.
        self.rebuilds = 0
        # Devices recorded offline by this node's sweeps.
        self.swept = 0
        # Devices claimed again whose return the database has not recorded yet.
        self._unrecorded: set[str] = set()

    async def start(self) -> None:
        """Connect and begin renewing and sweeping."""
        self._client = connect(self._url)
        self._task = asyncio.create_task(self._run(), name="deskside-registry")

    async def stop(self) -> None:
        """Stop renewing; this node's key goes at once (its devices were released)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.delete(node_key(self.node))
            await self._client.aclose()
            self._client = None

    # -- Claims ------------------------------------------------------------------------

    async def claim(self, device_id: str) -> None:
        """This node holds ``device_id`` now (a failure waits for the next renewal)."""
        try:
            await self._redis().hset(HOLDERS, device_id, self.node)
        except (RedisError, OSError) as exc:
            # Thousands of agents may come back while Redis is away: one warning (the
            # renewal's), not one each.
            logger.debug("could not claim device %s in Redis: %s", device_id, exc)

    async def release(self, device_ids: Collection[str]) -> set[str]:
        """Let go of devices whose channel ended here; those this node still held (the
        others moved to another node, which records them)."""
        if not device_ids:
            return set()
        ids = sorted(device_ids)
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for device_id in ids:
                    pipe.eval(_RELEASE, 1, HOLDERS, device_id, self.node)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("could not release %d devices in Redis: %s", len(ids), exc)
            return set(ids)
        held = {d for d, result in zip(ids, results, strict=True) if result}
        # A device no node holds (a claim that failed while Redis was away) is ours too.
        unheld = [d for d, result in zip(ids, results, strict=True) if not result]
        if unheld:
            with contextlib.suppress(RedisError, OSError):
                holders = await self._redis().hmget(HOLDERS, unheld)
                held |= {d for d, h in zip(unheld, holders, strict=True) if h is None}
        return held

    async def holders(self, device_ids: Collection[str]) -> dict[str, str | None]:
        """The live node holding each device, or None."""
        ids = list(device_ids)
        if not ids:
            return {}
        client = self._redis()
        names = [_text(h) for h in await client.hmget(HOLDERS, ids)]
        nodes = sorted({n for n in names if n is not None})
        live = dict(zip(nodes, await client.mget([node_key(n) for n in nodes]), strict=True))
        return {
            d: n if n is not None and live.get(n) is not None else None
            for d, n in zip(ids, names, strict=True)
        }

    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("the presence registry is not started")
        return self._client

    # -- Renewal and sweep -------------------------------------------------------------

    async def _run(self) -> None:
        first = True
        interval = self.claim_ttl / 5
        next_sweep = 0.0
        while True:
            try:
                rebuilt = await self._renew()
                if not first:
                    self._unrecorded.update(rebuilt)
                first = False
                if self._unrecorded:  # kept until the database has them
                    self._unrecorded &= set(self._held())  # not those gone since
                    await self._devices.mark_online(self._unrecorded)
                    self._unrecorded.clear()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_INTERVAL
                    await self._sweep()
            except (RedisError, OSError) as exc:
                if self.alive:
                    logger.warning("lost Redis, the presence registry's store: %s", exc)
                self.alive = False
            except Exception:
                logger.exception("the presence registry's renewal failed; will retry")
            await asyncio.sleep(interval)

    async def _renew(self) -> list[str]:
        """Renew this node's key; if it was gone, claim every held device again (the
        devices claimed so)."""
        client = self._redis()
        ttl = int(self.claim_ttl * 1000)
        renewed = await client.set(node_key(self.node), "1", px=ttl, xx=True)
        if not self.alive:
            logger.info("presence registry in Redis reached; this node is %s", self.node)
        self.alive = True
        if renewed:
            return []
        await client.set(EPOCH, repr(time.time()), nx=True)
        devices = sorted(self._held())
        for start in range(0, len(devices), 1000):
            chunk = devices[start : start + 1000]
            await client.hset(HOLDERS, mapping=dict.fromkeys(chunk, self.node))
        await client.set(node_key(self.node), "1", px=ttl)
        if self.rebuilds or devices:
            logger.info("claimed %d devices in the presence registry again", len(devices))
        self.rebuilds += 1
        return devices

    async def _sweep(self) -> None:
        """One node at a time: record offline the devices no live node holds."""
        client = self._redis()
        epoch = await client.get(EPOCH)
        if epoch is None or time.time() - float(epoch) < 2 * self.claim_ttl:
            return  # nodes may not have claimed their devices again yet
        if not await client.set(SWEEP, self.node, nx=True, px=int(SWEEP_INTERVAL * 900)):
            return
        began = datetime.datetime.now(datetime.UTC)
        online = await self._devices.online_devices()
        if not online:
            return
        holders = await self.holders(online)
        orphans = [d for d, node in holders.items() if node is None]
        if not orphans:
            return
        logger.info("%d devices have no live node any more; recording them offline", len(orphans))
        await self._devices.mark_offline(orphans, unseen_since=began)
        self.swept += len(orphans)
        # Their entries stay: one per device at most, overwritten by its next claim.
