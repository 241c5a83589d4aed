"""The event bus: typed events by type and topic, bounded queues, published after commit."""

from __future__ import annotations

import datetime
from typing import ClassVar

import msgspec
import pytest

from deskside.console.db import Database, migrate
from deskside.console.devices.events import DeviceOnline
from deskside.console.events import DomainEvent, LocalEventBus, Subscription
from deskside.console.store import Store
from deskside.console.tickets.events import TicketChanged, TicketCreated
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline.events import TimelineEntryAdded
from deskside.console.timeline.kinds import Created, EventKind


class Pinged(DomainEvent, frozen=True, kw_only=True, tag="test.pinged"):
    topic_field: ClassVar[str | None] = "key"

    key: str


class Untopical(DomainEvent, frozen=True, kw_only=True, tag="test.untopical"):
    pass


def test_subscribers_get_their_types_and_topics_only() -> None:
    bus = LocalEventBus()
    everything = bus.subscribe(Pinged)
    only_a = bus.subscribe(Pinged, topic="a")
    others = bus.subscribe(Untopical)
    bus.publish(Pinged(key="a"))
    bus.publish(Pinged(key="b"))
    bus.publish(Untopical())
    assert [e.topic for e in _drain(everything)] == ["a", "b"]
    assert [e.topic for e in _drain(only_a)] == ["a"]
    assert [type(e) for e in _drain(others)] == [Untopical]
    assert Untopical().topic is None


def test_a_closed_subscription_receives_nothing_and_is_forgotten() -> None:
    bus = LocalEventBus()
    with bus.subscribe(Pinged, Untopical, topic="a") as subscription:
        assert bus.subscribers() == 1
    assert bus.subscribers() == 0
    bus.publish(Pinged(key="a"))
    assert subscription.get_nowait() is None


def test_a_slow_subscriber_loses_events_but_never_blocks_the_publisher() -> None:
    bus = LocalEventBus()
    slow = bus.subscribe(Pinged, maxsize=2)
    for key in "abc":
        bus.publish(Pinged(key=key))
    assert slow.overflowed
    assert [e.topic for e in _drain(slow)] == ["a", "b"]


def test_subscribing_to_nothing_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LocalEventBus().subscribe()


async def test_events_are_published_after_commit_and_not_after_rollback(
    database_url: str,
) -> None:
    migrate(database_url)
    bus = LocalEventBus()
    store = Store(Database.connect(database_url, bus))
    seen = bus.subscribe(TicketCreated, TicketChanged, TimelineEntryAdded, DeviceOnline)
    try:
        ticket, _ = await store.tickets.create_ticket(
            NewTicket(title="Printer", description="jams"), actor="u", source=TicketSource.CLI
        )
        created = _drain(seen)
        assert [type(e) for e in created] == [TicketCreated, TimelineEntryAdded]
        assert created[0].topic == str(ticket.id)
        entry = created[1]
        assert isinstance(entry, TimelineEntryAdded)
        assert entry.entry.kind == EventKind.CREATED
        assert isinstance(entry.entry.data, Created)
        assert entry.entry.data.title == "Printer"
        # A refused change rolls back: nothing is published.
        with pytest.raises(Exception, match="cannot become"):
            await store.tickets.update_ticket(
                ticket.id, TicketChanges(status=TicketStatus.REOPENED), actor="u"
            )
        assert _drain(seen) == []
        await store.tickets.update_ticket(
            ticket.id, TicketChanges(status=TicketStatus.RESOLVED, urgency=1), actor="u"
        )
        changed = _drain(seen)
        assert [type(e) for e in changed] == [TimelineEntryAdded, TimelineEntryAdded, TicketChanged]
        last = changed[-1]
        assert isinstance(last, TicketChanged)
        assert last.ticket.status == TicketStatus.RESOLVED
        assert last.fields == ("impact", "priority", "status", "urgency")
        assert last.ticket.resolved_at is not None
        assert last.ticket.resolved_at <= datetime.datetime.now(datetime.UTC)
    finally:
        seen.close()
        await store.close()


def behind(subscription: Subscription) -> bool:
    return subscription.overflowed


def _drain(subscription: Subscription) -> list[DomainEvent]:
    events = []
    while (event := subscription.get_nowait()) is not None:
        events.append(event)
    return events


def test_events_are_frozen_keyword_only_and_tagged() -> None:
    event = Pinged(key="a")
    with pytest.raises(AttributeError):
        event.key = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Pinged("a")  # type: ignore[call-arg]
    # The tag names the type, so a broker between nodes can carry events as they are.
    assert msgspec.json.decode(msgspec.json.encode(event)) == {"type": "test.pinged", "key": "a"}


def test_a_subscription_holds_4096_events_by_default_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalEventBus()
    subscription = bus.subscribe(Pinged)
    assert not behind(subscription)
    for n in range(4096):
        bus.publish(Pinged(key=str(n)))
    assert not behind(subscription)
    bus.publish(Pinged(key="one too many"))
    assert caplog.text.count("fell behind") == 1  # said at the first loss
    bus.publish(Pinged(key="and another"))
    bus.publish(Pinged(key="and a third"))
    assert behind(subscription)
    assert caplog.text.count("fell behind") == 1
    assert len(_drain(subscription)) == 4096


async def test_subscriptions_are_awaited_and_iterated() -> None:
    bus = LocalEventBus()
    with bus.subscribe(Pinged) as subscription:
        bus.publish(Pinged(key="a"))
        assert await subscription.get() == Pinged(key="a")
        bus.publish(Pinged(key="b"))
        bus.publish(Pinged(key="c"))
        seen = []
        async for event in subscription:
            seen.append(event.topic)
            if len(seen) == 2:
                break
        assert seen == ["b", "c"]


def test_closing_the_last_subscription_leaves_nothing_behind() -> None:
    """A console follows thousands of commands in a day, each by its own topic: the
    bus must not keep an empty entry for every one of them."""
    bus = LocalEventBus()
    one = bus.subscribe(Pinged, topic="a")
    two = bus.subscribe(Pinged, topic="a")
    other = bus.subscribe(Pinged, Untopical, topic="b")
    one.close()
    bus.publish(Pinged(key="a"))
    assert two.get_nowait() == Pinged(key="a")  # the other one's is still there
    two.close()
    other.close()
    assert bus._subscriptions == {}
