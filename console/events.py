"""The console's event bus: typed domain events, published after their commit.

Theory of operation::

    repository: transaction ──commit──> Database.publish(events) ──> EventBus.publish
                                                                        │
       subscribers: bus.subscribe(TicketChanged, CommandFinished, topic="7f3a...")
       live pages, API streams, webhooks, connectors, SLA timers, the cluster's broker

* An event says what changed, once it is true: repositories append events to the
  list given to ``Database.transaction(events=...)`` (or ``Database.run``), and
  the database publishes them after the commit. A rolled-back transaction
  publishes nothing.
* Each capability declares its own events (``<capability>/events.py``) as
  subclasses of ``DomainEvent``: frozen, tagged ``msgspec`` structs, so a broker
  between console nodes can carry them as they are.
* A subscription names the event types it wants and, optionally, one ``topic``
  (a command's id, a ticket's number as text): an event reaches the
  subscriptions of its type with its topic and those of its type with none.
  Looking subscribers up costs two dictionary accesses, so publishing an event
  nobody listens to (a command's output chunk, thousands a second) is cheap.
* Delivery never blocks the publisher: each subscription has a bounded queue; a
  subscriber that falls behind loses events from then on (``overflowed`` is set
  and a warning logged) and must read the rest from the store, as the API's
  command stream does.
* ``EventBus`` is an interface. ``LocalEventBus`` serves one process; a broker
  (Redis) across console nodes implements the same two methods
  (``deskside.console.cluster.bus.RedisEventBus``), and tells subscriptions that
  events may have been lost on the way (``overflowed``) as a full queue does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import ClassVar, Protocol

import msgspec

__all__ = ["DomainEvent", "EventBus", "LocalEventBus", "Subscription"]

logger = logging.getLogger(__name__)

# Events a subscription may hold before it is considered behind.
DEFAULT_QUEUE = 4096


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Something that happened in the console; subclasses are per capability."""

    # The subscription key of events of this type: the name of the field that holds
    # it (a command's id, a ticket's number), or None when events have no topic.
    topic_field: ClassVar[str | None] = None

    @property
    def topic(self) -> str | None:
        """The key subscriptions may filter on (see ``topic_field``)."""
        if self.topic_field is None:
            return None
        return str(getattr(self, self.topic_field))


class Subscription:
    """The events of some types (and topic) from the moment of subscribing on."""

    def __init__(
        self,
        bus: LocalEventBus,
        types: tuple[type[DomainEvent], ...],
        topic: str | None,
        maxsize: int,
    ) -> None:
        self._bus = bus
        self.types = types
        self.topic = topic
        # What was published and not read yet.
        self._queue: asyncio.Queue[DomainEvent] = asyncio.Queue(maxsize)
        # Set once an event could not be queued: later events may be missing.
        self.overflowed = False

    def deliver(self, event: DomainEvent) -> None:
        """Queue an event (the bus calls this); never blocks."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            if not self.overflowed:
                logger.warning("a subscriber to %s fell behind", type(event).__name__)
            self.overflowed = True
            self._bus.dropped += 1

    def lost(self, why: str) -> None:
        """Events meant for this subscription may have been lost on their way to this
        process (a broker's connection broke): it is told as if it had fallen behind."""
        if not self.overflowed:
            logger.warning("a subscriber to %s may have missed events: %s", self._names(), why)
        self.overflowed = True

    def _names(self) -> str:
        return ", ".join(kind.__name__ for kind in self.types)

    async def get(self) -> DomainEvent:
        """The next event, waiting for it."""
        return await self._queue.get()

    def get_nowait(self) -> DomainEvent | None:
        """The next event if one is queued."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        """Stop receiving events."""
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[DomainEvent]:
        while True:
            yield await self._queue.get()


class EventBus(Protocol):
    """Where domain events are published and subscribed to."""

    def publish(self, event: DomainEvent) -> None:
        """Deliver ``event`` to its subscribers; never blocks, never raises for them."""
        ...

    def subscribe(
        self, *types: type[DomainEvent], topic: str | None = None, maxsize: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Receive events of ``types`` (with ``topic``, if given) from now on."""
        ...


class LocalEventBus:
    """The event bus of one console process."""

    def __init__(self) -> None:
        # Subscriptions by event type, then by topic (None: every topic).
        self._subscriptions: dict[type[DomainEvent], dict[str | None, set[Subscription]]] = {}
        # Events a full queue refused, since the start (for metrics).
        self.dropped = 0

    def publish(self, event: DomainEvent) -> None:
        """Deliver ``event`` to the subscriptions of its type and topic."""
        by_topic = self._subscriptions.get(type(event))
        if not by_topic:
            return
        for key in (None, event.topic) if event.topic is not None else (None,):
            for subscription in by_topic.get(key, ()):
                subscription.deliver(event)

    def subscribe(
        self, *types: type[DomainEvent], topic: str | None = None, maxsize: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Receive events of ``types`` (with ``topic``, if given) from now on."""
        if not types:
            raise ValueError("subscribe to at least one event type")
        subscription = Subscription(self, types, topic, maxsize)
        for kind in types:
            self._subscriptions.setdefault(kind, {}).setdefault(topic, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription (``Subscription.close`` calls this)."""
        for kind in subscription.types:
            by_topic = self._subscriptions.get(kind, {})
            group = by_topic.get(subscription.topic)
            if group is not None:
                group.discard(subscription)
                if not group:
                    del by_topic[subscription.topic]
            if not by_topic:
                self._subscriptions.pop(kind, None)

    def subscribers(self) -> int:
        """How many subscriptions are open (for tests and metrics)."""
        return len(self._all())

    def lost(self, why: str) -> None:
        """Tell every subscription that events may have been lost (``Subscription.lost``)."""
        for subscription in self._all():
            subscription.lost(why)

    def _all(self) -> set[Subscription]:
        return {s for by in self._subscriptions.values() for g in by.values() for s in g}
