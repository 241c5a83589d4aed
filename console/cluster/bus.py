"""Domain events across console nodes, through Redis pub/sub.

Theory of operation::

    node A  Database.publish ─> RedisEventBus.publish ─┬─> A's subscribers, at once
                                                       └─> outbox ─(sender)─> PUBLISH
    node B  (receiver) SUBSCRIBE ─> decode ─> B's subscribers   (channel deskside:events)

* The interface is ``EventBus``'s: ``publish`` never blocks, ``subscribe`` gives a
  ``Subscription`` with a bounded queue. Local subscribers get a node's own events
  straight away (as on a single node, and while Redis is away); the other nodes get
  them through Redis, and a node skips its own when they come back.
* Events travel as they are: each is its ``msgspec`` struct in MessagePack,
  decoded by its tag into the union of every ``DomainEvent`` type this node knows.
  An event of a type this node does not know (a newer node's) is logged and
  skipped. Events go in batches (one ``PUBLISH`` for what queued meanwhile), so
  thousands of output chunks a second cost tens of round trips, not thousands.
* Nothing is lost silently. Each node numbers its events; a receiver that sees a
  gap in a node's numbers (events that node dropped while Redis was away and its
  outbox full, or that Redis did not deliver) tells every local subscription that
  it may have missed events (``Subscription.lost``: ``overflowed``), as it does
  when its own connection to Redis breaks and again once it is back. Such a
  subscriber reads the rest from the store, as it does after falling behind.
* Redis going away: the sender keeps events in the outbox (``outbox`` of them) and
  sends them once Redis is back; the receiver reconnects with backoff (0.1 s to
  2 s) and subscribes again. Redis pub/sub keeps nothing for a node that is not
  connected, which is why the receiver's subscribers are told.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import operator
import time
from collections import deque
from typing import Any, Final

import msgspec
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from deskside.console.events import DEFAULT_QUEUE, DomainEvent, LocalEventBus, Subscription

__all__ = ["CHANNEL", "RedisEventBus", "connect"]

logger = logging.getLogger(__name__)

# The pub/sub channel every node publishes to and subscribes to.
CHANNEL: Final = "deskside:events"
# Most events and bytes sent in one PUBLISH.
_BATCH_EVENTS: Final = 256
_BATCH_BYTES: Final = 512 * 1024
# Longest wait between tries to reach Redis again.
_MAX_BACKOFF: Final = 2.0


def connect(url: str) -> Redis:
    """A client for ``url`` that fails at once instead of retrying on its own, so that
    the callers here notice a broken connection (and tell subscribers)."""
    client: Redis = Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=5,
    )
    return client


class _Batch(msgspec.Struct, array_like=True, frozen=True):
    """One PUBLISH: events ``seq``, ``seq + 1``... of node ``node``."""

    node: str
    seq: int
    events: list[msgspec.Raw]


def event_types() -> list[type[DomainEvent]]:
    """Every ``DomainEvent`` type defined so far, one per tag."""
    found: dict[object, type[DomainEvent]] = {}
    pending = list(DomainEvent.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        tag = kind.__struct_config__.tag
        if tag in found and found[tag] is not kind:
            logger.warning("two event types share the tag %r; %s is not carried", tag, kind)
            continue
        found[tag] = kind
    return list(found.values())


class RedisEventBus:
    """The event bus of a console node among several: ``LocalEventBus`` plus Redis."""

    def __init__(self, url: str, *, node: str, outbox: int = 65536) -> None:
        self._url = url
        self.node = node
        # This node's subscriptions; delivers to them and only them.
        self.local = LocalEventBus()
        # Encoded events waiting for Redis: (sequence number, MessagePack).
        self._outbox: deque[tuple[int, bytes]] = deque()
        self._outbox_limit = outbox
        self._next_seq = 0
        self._wake = asyncio.Event()
        self._encoder = msgspec.msgpack.Encoder()
        self._batch_decoder = msgspec.msgpack.Decoder(_Batch)
        self._decoder: msgspec.msgpack.Decoder[Any] | None = None
        # The next number expected from each other node.
        self._expected: dict[str, int] = {}
        # Tags already reported as unknown (each is logged once).
        self._unknown: set[str] = set()
        self._client: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Whether the receiver is subscribed, and the last PUBLISH went through.
        self.receiving = False
        self.sending = False
        # Counters for metrics: events sent and received through Redis, dropped
        # from a full outbox, gaps seen, reconnections of the receiver.
        self.sent = 0
        self.received = 0
        self.outbox_dropped = 0
        self.gaps = 0
        self.reconnects = 0

    # -- EventBus ------------------------------------------------------------------------

    def publish(self, event: DomainEvent) -> None:
        """Deliver ``event`` here at once and queue it for the other nodes."""
        self.local.publish(event)
        seq = self._next_seq
        self._next_seq += 1
        if len(self._outbox) >= self._outbox_limit:
            if self.outbox_dropped == 0 or self.outbox_dropped % 10_000 == 0:
                logger.warning("Redis is away and its outbox full: events are dropped")
            self.outbox_dropped += 1  # the gap in the numbers tells the others
            return
        self._outbox.append((seq, self._encoder.encode(event)))
        self._wake.set()

    def subscribe(
        self, *types: type[DomainEvent], topic: str | None = None, maxsize: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Receive events of ``types`` (with ``topic``) from every node, from now on."""
        return self.local.subscribe(*types, topic=topic, maxsize=maxsize)

    def subscribers(self) -> int:
        """How many subscriptions are open on this node."""
        return self.local.subscribers()

    @property
    def dropped(self) -> int:
        """Events local subscriptions' full queues refused."""
        return self.local.dropped

    @property
    def outbox_depth(self) -> int:
        """Events waiting to be sent to Redis."""
        return len(self._outbox)

    # -- Life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start sending and receiving (every event type is known by now)."""
        types = event_types()
        union = functools.reduce(operator.or_, types)
        self._decoder = msgspec.msgpack.Decoder(union)
        self._client = connect(self._url)
        self._tasks = [
            asyncio.create_task(self._send(), name="deskside-bus-send"),
            asyncio.create_task(self._receive(), name="deskside-bus-receive"),
        ]

    async def stop(self, flush: float = 2.0) -> None:
        """Send what is queued (for up to ``flush`` seconds), then disconnect."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush):
                while self._outbox and self.sending:
                    await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> float:
        """Seconds Redis takes to answer a PING; raises if it does not."""
        assert self._client is not None, "the bus is not started"
        started = time.perf_counter()
        await self._client.ping()
        return time.perf_counter() - started

    # -- Sending -------------------------------------------------------------------------

    def _take(self) -> tuple[int, list[msgspec.Raw]]:
        """The next run of consecutive events from the outbox, within the batch caps."""
        first, data = self._outbox.popleft()
        events, size, seq = [msgspec.Raw(data)], len(data), first
        while self._outbox and len(events) < _BATCH_EVENTS and size < _BATCH_BYTES:
            if self._outbox[0][0] != seq + 1:
                break  # a gap: dropped events; the next batch starts after it
            seq, data = self._outbox.popleft()
            events.append(msgspec.Raw(data))
            size += len(data)
        return first, events

    async def _send(self) -> None:
        assert self._client is not None
        while True:
            while not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            first, events = self._take()
            payload = self._encoder.encode(_Batch(node=self.node, seq=first, events=events))
            backoff = 0.1
            while True:
                try:
                    await self._client.publish(CHANNEL, payload)
                except (RedisError, OSError) as exc:
                    if self.sending:
                        logger.warning("cannot publish events to Redis (%s); retrying", exc)
                    self.sending = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                if not self.sending:
                    logger.info("publishing events to Redis")
                self.sending = True
                self.sent += len(events)
                break

    # -- Receiving -----------------------------------------------------------------------

    async def _receive(self) -> None:
        backoff = 0.1
        while True:
            client = connect(self._url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                # Confirmed: events published from now on reach this node.
                while await pubsub.get_message(timeout=0.0) is not None:
                    pass
                if self.reconnects:
                    self.local.lost("this node was disconnected from Redis")
                    logger.info("receiving events from Redis again")
                self.receiving = True
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"])
            except (RedisError, OSError) as exc:
                if self.receiving:
                    logger.warning("lost the connection to Redis (%s); reconnecting", exc)
                self.receiving = False
                self.reconnects += 1
                self.local.lost("this node was disconnected from Redis")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    def _received(self, data: bytes) -> None:
        """One batch from Redis: check its numbers, deliver its events here."""
        try:
            batch = self._batch_decoder.decode(data)
        except msgspec.DecodeError:
            logger.warning("a message on %s is not a batch of events; ignored", CHANNEL)
            return
        if batch.node == self.node:
            return
        expected = self._expected.get(batch.node)
        if expected is not None and batch.seq != expected:
            self.gaps += 1
            self.local.lost(f"events of node {batch.node} were lost on the way")
        self._expected[batch.node] = batch.seq + len(batch.events)
        assert self._decoder is not None
        for raw in batch.events:
            try:
                event = self._decoder.decode(raw)
            except msgspec.DecodeError as exc:
                self._unknown_event(str(exc))
                continue
            self.received += 1
            self.local.publish(event)

    def _unknown_event(self, why: str) -> None:
        if why not in self._unknown and len(self._unknown) < 100:
            self._unknown.add(why)
            logger.warning("an event from another node was skipped: %s", why)
