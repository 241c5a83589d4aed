"""The outbox and its dispatcher, on SQLite and PostgreSQL, sending to a real receiver
on 127.0.0.1 that verifies with the ``standardwebhooks`` package. The clock is the
test's: schedules are followed without sleeping."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from standardwebhooks import Webhook

from deskside.console.db import utcnow
from deskside.console.store import Store
from deskside.console.tickets.events import TicketCreated
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline import kinds
from deskside.console.webhooks.addresses import AddressGuard
from deskside.console.webhooks.catalog import EventType
from deskside.console.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from deskside.console.webhooks.schemas import DeliveryStatus, NewEndpoint
from deskside.protocol import crypto
from deskside.protocol.messages import ScreenEndReason

from .receiver import Receiver, payload, running

LOOPBACK = AddressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
HOUR = datetime.timedelta(hours=1)


class Clock:
    """The dispatcher's time, moved by the test; a minute ahead of the rows' own
    timestamps, so what a test writes is due at once."""

    def __init__(self) -> None:
        self.now = utcnow() + datetime.timedelta(minutes=1)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running(Receiver())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def dispatcher(store: Store, clock: Clock) -> AsyncIterator[WebhookDispatcher]:
    sender = WebhookDispatcher(store.webhooks, LOOPBACK, DispatcherConfig(), clock=clock)
    yield sender
    await sender.stop()


async def subscribe(
    store: Store, receiver: Receiver, *events: str, group: str | None = None
) -> int:
    created = await store.webhooks.add_endpoint(
        NewEndpoint(url=receiver.url, events=[EventType(e) for e in events], device_group=group),
        actor="test",
    )
    receiver.secrets.append(created.secret)
    return created.endpoint.id


async def new_ticket(store: Store, title: str = "printer", device: str | None = None) -> int:
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title=title, description="jammed", device_id=device),
        actor="test",
        source=TicketSource.API,
    )
    return ticket.id


async def test_outbox_rows_commit_with_the_change_and_not_without_it(store: Store) -> None:
    created = await store.webhooks.add_endpoint(
        NewEndpoint(url="http://127.0.0.1:9/hook", events=[EventType.TICKET_CREATED]), actor="test"
    )
    ticket_id = await new_ticket(store)
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.endpoint_id == created.endpoint.id
    assert delivery.event_type == "ticket.created"
    assert delivery.status is DeliveryStatus.PENDING
    ticket = await store.tickets.ticket(ticket_id)
    with pytest.raises(RuntimeError, match="rolled back"):
        async with store.db.transaction(events=[TicketCreated(ticket_id=1, ticket=ticket)]):
            raise RuntimeError("rolled back")
    assert len(await store.webhooks.deliveries()) == 1
    # Transactions run in one go (commands' paths) stage their events too.
    await store.db.run(lambda _: None, events=[TicketCreated(ticket_id=ticket_id, ticket=ticket)])
    assert len(await store.webhooks.deliveries()) == 2
    # Events nobody subscribed to make no rows.
    await store.tickets.add_note(ticket_id, "hello", actor="test")
    assert len(await store.webhooks.deliveries()) == 2


async def test_a_delivery_is_signed_and_verified_by_the_reference_receiver(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    endpoint = await subscribe(store, receiver, "ticket.created")
    ticket_id = await new_ticket(store)
    assert await dispatcher.run_once() == 1
    (got,) = receiver.received
    assert got.verified is not None, got.error
    assert got.verified["type"] == "ticket.created"
    assert got.verified["version"] == 1
    assert got.verified["data"]["ticket"]["id"] == ticket_id
    assert got.headers["content-type"] == "application/json"
    (delivery,) = await store.webhooks.deliveries(endpoint_id=endpoint)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.message_id == got.message_id
    assert delivery.attempts == 1
    assert delivery.last_status_code == 204
    assert delivery.last_latency_ms is not None
    assert delivery.delivered_at is not None
    assert await dispatcher.run_once() == 0


async def test_failures_are_retried_on_the_schedule_with_the_same_webhook_id(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher, clock: Clock
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.script = [500, 503]
    assert await dispatcher.run_once() == 1
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500"
    assert delivery.next_attempt_at is not None
    wait = (delivery.next_attempt_at - clock.now).total_seconds()
    assert 5 <= wait <= 10
    assert await dispatcher.run_once() == 0  # not due yet
    clock.advance(wait)
    assert await dispatcher.run_once() == 1
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at is not None
    wait = (delivery.next_attempt_at - clock.now).total_seconds()
    assert 10 <= wait <= 20  # doubled
    clock.advance(wait)
    assert await dispatcher.run_once() == 1
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    ids = {r.message_id for r in receiver.received}
    assert len(receiver.received) == 3
    assert ids == {delivery.message_id}
    timestamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert timestamps == sorted(timestamps)
    assert all(r.verified is not None for r in receiver.received)


async def test_a_delivery_is_given_up_after_three_days(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher, clock: Clock
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.status = 500
    attempts = 0
    while (await store.webhooks.deliveries())[0].status is DeliveryStatus.PENDING:
        clock.advance(4 * 3600)
        attempts += await dispatcher.run_once()
        assert attempts < 100
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.FAILED
    assert clock.now - delivery.created_at >= datetime.timedelta(days=2, hours=20)
    # A manual redelivery sends it again, with the same webhook-id.
    receiver.status = 200
    await store.webhooks.redeliver(delivery.id, actor="test")
    assert await dispatcher.run_once() == 1
    (again,) = await store.webhooks.deliveries()
    assert again.status is DeliveryStatus.DELIVERED
    assert receiver.received[-1].message_id == delivery.message_id


async def test_410_gone_disables_the_endpoint(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher, clock: Clock
) -> None:
    endpoint = await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.status = 410
    assert await dispatcher.run_once() == 1
    view = await store.webhooks.endpoint(endpoint)
    assert not view.enabled
    assert "410" in view.disabled_reason
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_status_code == 410
    audit = await store.audit.log(limit=5)
    assert any(e.action == "webhook.disabled" and e.actor == "system" for e in audit)
    # A disabled endpoint gets no new rows, and nothing is sent to it.
    await new_ticket(store)
    assert len(await store.webhooks.deliveries()) == 1
    clock.advance(120)  # (within the receiver's 5-minute tolerance of timestamps)
    assert await dispatcher.run_once() == 0
    receiver.status = 204
    await store.webhooks.set_enabled(endpoint, True, actor="test")
    await new_ticket(store)
    assert await dispatcher.run_once() == 1
    assert receiver.received[-1].verified is not None, receiver.received[-1].error
    assert receiver.received[-1].verified["type"] == "ticket.created"


async def test_one_ticket_messages_arrive_in_order(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    # One request at a time, so that the scripted 500 meets the first ticket's message
    # (with several at once, the second ticket's could reach the receiver first).
    dispatcher = WebhookDispatcher(
        store.webhooks, LOOPBACK, DispatcherConfig(concurrency=1), clock=clock
    )
    await subscribe(store, receiver, "ticket.created", "ticket.changed")
    first = await new_ticket(store, "first")
    await store.tickets.update_ticket(
        first, TicketChanges(status=TicketStatus.IN_PROGRESS), actor="test"
    )
    second = await new_ticket(store, "second")
    receiver.script = [500]  # the first ticket's first message fails once
    assert await dispatcher.run_once() == 2  # first's change waits behind its creation
    clock.advance(60)
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 1
    verified = [r.verified for r in receiver.received]
    order = [(v["type"], v["data"]["ticket"]["id"]) for v in verified]
    assert order == [
        ("ticket.created", first),
        ("ticket.created", second),
        ("ticket.created", first),
        ("ticket.changed", first),
    ]


async def test_endpoints_get_only_their_types_and_device_group(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=1, group="sales", created_by="test"
    )
    other = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=1, group="hr", created_by="test"
    )
    sales = await store.devices.enroll(
        crypto.public_key(crypto.generate_private_key()), token.token
    )
    hr = await store.devices.enroll(crypto.public_key(crypto.generate_private_key()), other.token)
    await subscribe(store, receiver, "ticket.created", "device.offline", group="sales")
    sales_ticket = await new_ticket(store, "sales", sales.id)
    await new_ticket(store, "hr", hr.id)
    await new_ticket(store, "no device")
    await store.devices.mark_offline([sales.id, hr.id])
    await store.tickets.add_note(sales_ticket, "not subscribed", actor="test")
    while await dispatcher.run_once():
        pass
    got = sorted(
        (v["type"], json.dumps(v["data"], sort_keys=True))
        for v in (r.verified for r in receiver.received)
    )
    assert [t for t, _ in got] == ["device.offline", "ticket.created"]
    assert sales.id in got[0][1]
    assert f'"id": {sales_ticket}' in got[1][1]


async def test_timeline_entries_make_their_public_types(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    await subscribe(
        store, receiver, "ticket.timeline_entry", "screen.session_ended", "ticket.created"
    )
    ticket_id = await new_ticket(store)
    await store.tickets.add_timeline_event(
        ticket_id,
        kinds.ScreenEnded(
            screen_session="s1", device="d1", reason=ScreenEndReason.VIEWER_LEFT, error="",
            duration=12.5,
        ),
        actor="user:alice",
    )  # fmt: skip
    while await dispatcher.run_once():
        pass
    types = [r.verified["type"] for r in receiver.received]
    assert types == [
        "ticket.created",
        "ticket.timeline_entry",
        "ticket.timeline_entry",
        "screen.session_ended",
    ]
    ended = receiver.received[-1].verified["data"]
    assert ended == {
        "ticket_id": ticket_id,
        "session_id": "s1",
        "device_id": "d1",
        "reason": "viewer_left",
        "refused": False,
        "duration": 12.5,
    }
    entry = receiver.received[2].verified["data"]["entry"]
    assert entry["kind"] == "screen_ended"


async def test_a_lease_held_by_a_dead_dispatcher_ends_and_the_same_id_goes_again(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher, clock: Clock
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    (claimed,) = await store.webhooks.claim(clock.now, lease=dispatcher.config.lease, limit=10)
    # ... and that dispatcher died before recording anything.
    assert await dispatcher.run_once() == 0
    clock.advance(dispatcher.config.lease.total_seconds() + 1)
    assert await dispatcher.run_once() == 1
    assert [r.message_id for r in receiver.received] == [claimed.message_id]


async def test_concurrent_claims_take_each_delivery_once(store: Store, clock: Clock) -> None:
    await store.webhooks.add_endpoint(
        NewEndpoint(url="http://127.0.0.1:9/hook", events=[EventType.TICKET_CREATED]), actor="test"
    )
    for n in range(24):
        await new_ticket(store, f"t{n}")
    lease = datetime.timedelta(minutes=1)
    claims = await asyncio.gather(
        *(store.webhooks.claim(clock.now, lease=lease, limit=8) for _ in range(5))
    )
    ids = [c.id for claim in claims for c in claim]
    assert len(ids) == len(set(ids)) == 24


async def test_the_address_is_checked_again_at_send_time(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    strict = WebhookDispatcher(store.webhooks, AddressGuard(), clock=clock)
    try:
        assert await strict.run_once() == 1
    finally:
        await strict.stop()
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.PENDING
    assert "loopback" in delivery.last_error
    assert delivery.last_status_code is None
    assert receiver.received == []


async def test_redirects_are_not_followed(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.status = 307
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    assert await dispatcher.run_once() == 1
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_status_code == 307
    assert len(receiver.received) == 1


async def test_a_rotated_secret_signs_with_both_for_a_while(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    endpoint = await subscribe(store, receiver, "ticket.created")
    old = receiver.secrets[0]
    rotated = await store.webhooks.rotate_secret(endpoint, actor="test")
    assert rotated.secret != old
    assert rotated.endpoint.rotating_until is not None
    await new_ticket(store)
    await dispatcher.run_once()
    (got,) = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(rotated.secret).verify(got.body, got.headers)
    assert payload(got)["type"] == "ticket.created"


async def test_test_messages_go_to_one_endpoint_whatever_it_subscribed(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    endpoint = await subscribe(store, receiver, "device.online")
    queued = await store.webhooks.send_test(endpoint, actor="test")
    assert queued.event_type == "webhook.test"
    assert await dispatcher.run_once() == 1
    assert receiver.received[0].verified["data"]["endpoint_id"] == endpoint
    assert (await store.webhooks.delivery(queued.id)).status is DeliveryStatus.DELIVERED


async def test_an_endless_response_is_read_only_up_to_the_cap(
    store: Store, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.status = 200  # (a 204 has no body)
    receiver.endless = 16 * 1024  # 1.6 MB/s for ever: the 10-s time-out would end it
    assert await dispatcher.run_once() == 1
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.last_error


async def test_a_receiver_slower_than_the_time_out_is_tried_again(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    await subscribe(store, receiver, "ticket.created")
    await new_ticket(store)
    receiver.delay = 2.0
    hasty = WebhookDispatcher(
        store.webhooks, LOOPBACK, DispatcherConfig.for_timeout(0.5), clock=clock
    )
    try:
        assert await hasty.run_once() == 1
    finally:
        await hasty.stop()
    (delivery,) = await store.webhooks.deliveries()
    assert delivery.status is DeliveryStatus.PENDING
    assert "Timeout" in delivery.last_error
    assert delivery.last_status_code is None
