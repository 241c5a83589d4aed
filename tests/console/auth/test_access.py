"""Who may act on a device: the rule in ``auth/access.py``, on a real database."""

from __future__ import annotations

import datetime
import os

import pytest
from sqlalchemy import Connection

from deskside.console.auth.access import check_device_action, record_refusal, record_response
from deskside.console.auth.identity import ApiIdentity
from deskside.console.auth.schemas import Role
from deskside.console.errors import Conflict, ConsoleError, Forbidden, NotFound
from deskside.console.events import DomainEvent
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline.events import TimelineEntryAdded
from deskside.console.timeline.kinds import CommandRefused

ADMIN = ApiIdentity(
    actor="user:root", scopes=frozenset({"commands:run"}), username="root", role="admin"
)
ALICE = ApiIdentity(
    actor="user:alice", scopes=frozenset({"commands:run"}), username="alice", role="technician"
)
BOB = ApiIdentity(
    actor="user:bob", scopes=frozenset({"commands:run"}), username="bob", role="technician"
)
SERVICE = ApiIdentity(actor="api:rt", scopes=frozenset({"commands:run"}))
READER = ApiIdentity(actor="api:reader", scopes=frozenset({"tickets:read"}))


async def setup(store: Store) -> tuple[int, str]:
    """A ticket assigned to alice, of an enrolled device."""
    for name in ("alice", "bob"):
        await store.accounts.add_user(name, "a long password!", role=Role.TECHNICIAN)
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="t"
    )
    device = (await store.devices.enroll(os.urandom(32), token.token)).id
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d", device_id=device), actor="t", source=TicketSource.CLI
    )
    await store.tickets.update_ticket(ticket.id, TicketChanges(assignee="alice"), actor="t")
    return ticket.id, device


async def decide(
    store: Store,
    ticket_id: int,
    identity: ApiIdentity,
    *,
    device: str | None = None,
    up: bool = True,
) -> tuple[str | None, ConsoleError | None]:
    def run(conn: Connection) -> tuple[str | None, ConsoleError | None]:
        _, device_id, refusal = check_device_action(conn, ticket_id, device, identity, lambda _: up)
        return device_id, refusal

    return await store.db.run(run)


async def test_the_assignee_an_admin_and_a_service_may_act(store: Store) -> None:
    ticket, device = await setup(store)
    for identity in (ALICE, ADMIN, SERVICE):
        assert await decide(store, ticket, identity) == (device, None)


@pytest.mark.parametrize(
    ("identity", "error", "text"),
    [
        (BOB, Forbidden, "bob may not act on ticket"),
        (READER, Forbidden, "lacks the 'commands:run' scope"),
    ],
)
async def test_others_are_refused(
    store: Store, identity: ApiIdentity, error: type[ConsoleError], text: str
) -> None:
    ticket, _ = await setup(store)
    _, refusal = await decide(store, ticket, identity)
    assert isinstance(refusal, error)
    assert text in str(refusal)


async def test_the_ticket_and_device_must_be_there_open_and_online(store: Store) -> None:
    ticket, device = await setup(store)
    _, refusal = await decide(store, 999, ADMIN)
    assert isinstance(refusal, NotFound)
    _, refusal = await decide(store, ticket, ADMIN, up=False)
    assert isinstance(refusal, Conflict)
    assert "not connected" in str(refusal)
    _, refusal = await decide(store, ticket, ADMIN, device="dunknown")
    assert isinstance(refusal, NotFound)
    await store.devices.revoke_device(device)
    _, refusal = await decide(store, ticket, ADMIN)
    assert isinstance(refusal, NotFound)
    await store.tickets.update_ticket(
        ticket, TicketChanges(status=TicketStatus.RESOLVED), actor="t"
    )
    _, refusal = await decide(store, ticket, ADMIN)
    assert isinstance(refusal, Conflict)
    assert "is resolved" in str(refusal)


async def test_a_refusal_is_recorded_on_the_audit_log_and_the_ticket(store: Store) -> None:
    ticket, device = await setup(store)
    events: list[DomainEvent] = []

    def refuse(conn: Connection) -> None:
        row, _, refusal = check_device_action(conn, ticket, None, BOB, lambda _: True)
        assert refusal is not None
        record_refusal(conn, row, BOB, refusal, {"argv": ["id"], "device": device}, _now(), events)

    await store.db.run(refuse, events=events)
    (entry,) = [e for e in events if isinstance(e, TimelineEntryAdded)]
    assert entry.entry.kind == "command_refused"
    assert isinstance(entry.entry.data, CommandRefused)
    assert entry.entry.data.argv == ("id",)
    assert "bob may not act" in entry.entry.data.reason
    (audit,) = await store.audit.log(limit=1)
    assert (audit.action, audit.actor, audit.data["device"]) == (
        "command.refused",
        "user:bob",
        device,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def test_a_ticket_without_a_device_names_none(store: Store) -> None:
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d"), actor="t", source=TicketSource.CLI
    )
    device, refusal = await decide(store, ticket.id, ADMIN)
    assert device is None
    assert isinstance(refusal, Conflict)
    assert "has no device; name one" in str(refusal)


async def test_a_response_is_recorded_on_its_ticket_only(store: Store) -> None:
    first, _ = await setup(store)
    other, _ = await store.tickets.create_ticket(
        NewTicket(title="o", description="d"), actor="t", source=TicketSource.CLI
    )
    untouched = await store.tickets.ticket(other.id)
    fresh, _ = await store.tickets.create_ticket(
        NewTicket(title="f", description="d"), actor="t", source=TicketSource.CLI
    )
    at = _now() + datetime.timedelta(minutes=5)
    await store.db.run(lambda conn: record_response(conn, fresh.id, at))
    answered = await store.tickets.ticket(fresh.id)
    assert (answered.first_response_at, answered.updated_at) == (at, at)
    later = at + datetime.timedelta(minutes=5)
    await store.db.run(lambda conn: record_response(conn, fresh.id, later))
    again = await store.tickets.ticket(fresh.id)
    assert (again.first_response_at, again.updated_at) == (at, later)  # the first stays
    assert await store.tickets.ticket(other.id) == untouched
    assert (await store.tickets.ticket(first)).first_response_at != at
