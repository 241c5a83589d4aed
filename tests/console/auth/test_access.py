"""Who may act on a device: the rule in ``auth/access.py``, on a real database."""

from __future__ import annotations

import datetime
import os
from types import SimpleNamespace

import msgspec
import pytest
from sqlalchemy import Connection

from deskside.console.auth.access import (
    DeviceAction,
    check_device,
    check_device_action,
    may_control,
    record_action,
    record_refusal,
    replay_refusal,
)
from deskside.console.auth.identity import ApiIdentity, LinkCapability, ViewerGrant
from deskside.console.auth.schemas import Role
from deskside.console.errors import Conflict, ConsoleError, Forbidden, NotFound
from deskside.console.events import DomainEvent
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline.events import TimelineEntryAdded
from deskside.console.timeline.kinds import Change, CommandRefused, encode

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


async def setup(store: Store, *, group: str | None = None) -> tuple[int, str]:
    """A ticket assigned to alice, of an enrolled device (of ``group``)."""
    for name in ("alice", "bob"):
        await store.accounts.add_user(name, "a long password!", role=Role.TECHNICIAN)
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=group, created_by="t"
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
    action: DeviceAction = DeviceAction.COMMAND,
) -> tuple[str | None, ConsoleError | None]:
    def run(conn: Connection) -> tuple[str | None, ConsoleError | None]:
        _, device_id, refusal = check_device_action(
            conn, ticket_id, device, identity, lambda _: up, action=action
        )
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


async def test_a_chat_line_waits_for_an_offline_device_but_needs_tickets_write(
    store: Store,
) -> None:
    ticket, device = await setup(store)
    writer = msgspec.structs.replace(ALICE, scopes=frozenset({"tickets:write"}))
    chat = DeviceAction.CHAT
    assert await decide(store, ticket, writer, up=False, action=chat) == (device, None)
    _, refusal = await decide(store, ticket, ALICE, up=False, action=chat)
    assert isinstance(refusal, Forbidden)
    assert "'tickets:write' scope" in str(refusal)
    _, refusal = await decide(store, ticket, writer, up=False)  # a command does not wait
    assert isinstance(refusal, Forbidden)
    await store.devices.revoke_device(device)
    _, refusal = await decide(store, ticket, writer, up=False, action=chat)
    assert isinstance(refusal, NotFound)  # a revoked device gets nothing


async def test_the_ticket_and_device_must_be_there_open_and_online(store: Store) -> None:
    ticket, device = await setup(store)
    _, refusal = await decide(store, 999, ADMIN)
    assert isinstance(refusal, NotFound)
    _, refusal = await decide(store, ticket, ADMIN, up=False)
    assert isinstance(refusal, Conflict)
    assert "not connected" in str(refusal)
    _, refusal = await decide(store, await bare_ticket(store), ADMIN, device="dunknown")
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
    row = SimpleNamespace(id=fresh.id, device_id="d0")
    await store.db.run(lambda conn: record_action(conn, row, "d0", ADMIN, at, []))
    answered = await store.tickets.ticket(fresh.id)
    assert (answered.first_response_at, answered.updated_at) == (at, at)
    later = at + datetime.timedelta(minutes=5)
    await store.db.run(lambda conn: record_action(conn, row, "d0", ADMIN, later, []))
    again = await store.tickets.ticket(fresh.id)
    assert (again.first_response_at, again.updated_at) == (at, later)  # the first stays
    assert await store.tickets.ticket(other.id) == untouched
    assert (await store.tickets.ticket(first)).first_response_at != at


async def bare_ticket(store: Store, assignee: str | None = None) -> int:
    """A ticket without a device (from e-mail, say), assigned to ``assignee``."""
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="mail", description="d"), actor="t", source=TicketSource.CLI
    )
    if assignee is not None:
        await store.tickets.update_ticket(ticket.id, TicketChanges(assignee=assignee), actor="t")
    return ticket.id


async def test_a_technician_cannot_reach_another_device_through_a_ticket_of_their_own(
    store: Store,
) -> None:
    # The attack of issue 12: bob's ticket has no device; he names alice's ticket's.
    _, device = await setup(store)
    own = await bare_ticket(store, "bob")
    scopes = frozenset({"commands:run", "devices:write", "tickets:write"})
    bob = msgspec.structs.replace(BOB, scopes=scopes)
    for action in DeviceAction:
        _, refusal = await decide(store, own, bob, device=device, action=action)
        assert isinstance(refusal, Forbidden), action
        assert f"bob may not act on device {device}" in str(refusal)
    assert (await store.tickets.ticket(own)).device_id is None


async def test_a_ticket_of_one_device_does_not_act_on_another(store: Store) -> None:
    ticket, device = await setup(store)
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="t"
    )
    other = (await store.devices.enroll(os.urandom(32), token.token)).id
    for identity in (ALICE, ADMIN, SERVICE):
        _, refusal = await decide(store, ticket, identity, device=other)
        assert isinstance(refusal, Conflict)
        assert f"ticket #{ticket} is about device {device}" in str(refusal)
    assert await decide(store, ticket, ALICE, device=device) == (device, None)


async def test_the_assignee_of_a_ticket_of_the_device_may_give_it_to_their_bare_ticket(
    store: Store,
) -> None:
    _, device = await setup(store)
    own = await bare_ticket(store, "alice")
    assert await decide(store, own, ALICE, device=device) == (device, None)
    # ...and acting records the device on the ticket, with a timeline entry.
    events: list[DomainEvent] = []

    def act(conn: Connection) -> None:
        ticket, device_id, refusal = check_device_action(conn, own, device, ALICE, lambda _: True)
        assert refusal is None
        assert device_id is not None
        record_action(conn, ticket, device_id, ALICE, _now(), events)

    await store.db.run(act, events=events)
    assert (await store.tickets.ticket(own)).device_id == device
    (entry,) = [e.entry for e in events if isinstance(e, TimelineEntryAdded)]
    assert (entry.kind, entry.actor) == ("change", "user:alice")
    assert isinstance(entry.data, Change)
    assert encode(entry.data)[1] == {"device": {"from": None, "to": device}}
    # Once it is the ticket of that device, bob still may not act through it.
    _, refusal = await decide(store, own, BOB)
    assert isinstance(refusal, Forbidden)


async def test_a_group_with_rights_on_the_device_group_may_act(store: Store) -> None:
    ticket, device = await setup(store, group="lab")
    _, refusal = await decide(store, ticket, BOB)
    assert isinstance(refusal, Forbidden)
    await store.groups.add_group("desk", actor="t")
    await store.groups.change_group("desk", actor="t", add_members=("bob",))
    _, refusal = await decide(store, ticket, BOB)
    assert isinstance(refusal, Forbidden)  # a member, but without rights on "lab"
    await store.groups.change_group("desk", actor="t", add_device_groups=("lab",))
    assert await decide(store, ticket, BOB) == (device, None)
    own = await bare_ticket(store)  # nobody's: the group may still take it to the device
    assert await decide(store, own, BOB, device=device) == (device, None)
    await store.groups.change_group("desk", actor="t", remove_device_groups=("lab",))
    _, refusal = await decide(store, ticket, BOB)
    assert isinstance(refusal, Forbidden)


def _writer(name: str, role: str = "technician") -> ApiIdentity:
    return ApiIdentity(
        actor=f"user:{name}", scopes=frozenset({"devices:write"}), username=name, role=role
    )


async def test_a_device_without_a_ticket_for_admins_services_and_groups(store: Store) -> None:
    _, device = await setup(store, group="lab")
    service = ApiIdentity(actor="api:rt", scopes=frozenset({"devices:write"}))
    up = {device}

    async def refusal_of(identity: ApiIdentity, on: str = device) -> ConsoleError | None:
        return await store.db.run(lambda conn: check_device(conn, on, identity, up.__contains__))

    for identity in (service, _writer("root", "admin")):
        assert await refusal_of(identity) is None
    assert isinstance(await refusal_of(_writer("bob")), Forbidden)
    await store.groups.add_group("desk", actor="t")
    await store.groups.change_group(
        "desk", actor="t", add_members=("bob",), add_device_groups=("lab",)
    )
    assert await refusal_of(_writer("bob")) is None  # his group's device
    assert isinstance(await refusal_of(_writer("bob"), "dunknown"), Forbidden)
    assert isinstance(await refusal_of(service, "dunknown"), NotFound)
    up.clear()
    refusal = await refusal_of(service)
    assert isinstance(refusal, Conflict)
    assert "not connected" in str(refusal)


async def test_authorize_gives_the_device_or_records_the_refusal(store: Store) -> None:
    ticket, device = await setup(store)
    alice, bob = _writer("alice"), _writer("bob")
    online = {device}.__contains__
    diagnostics = DeviceAction.DIAGNOSTICS
    access = store.access
    assert await access.authorize(alice, online, action=diagnostics, ticket_id=ticket) == device
    assert await access.authorize(alice, online, action=diagnostics, device_id=device) == device
    for where in ({"ticket_id": ticket}, {"device_id": device}):
        with pytest.raises(Forbidden, match="bob may not act"):
            await access.authorize(bob, online, action=diagnostics, **where)
    log = await store.audit.log(limit=2)
    assert [(e.action, e.actor, e.data["device"]) for e in log] == [
        ("diagnostics.refused", "user:bob", device),
        ("diagnostics.refused", "user:bob", device),
    ]
    assert log[1].data["ticket"] == ticket
    assert "bob may not act" in log[0].data["reason"]


async def test_acting_on_a_device_without_a_ticket(store: Store) -> None:
    ticket, device = await setup(store)
    writers = {
        name: ApiIdentity(
            actor=f"user:{name}",
            scopes=frozenset({"devices:write"}),
            username=name,
            role="technician",
        )
        for name in ("alice", "bob")
    }

    async def device_refusal(identity: ApiIdentity) -> ConsoleError | None:
        return await store.db.run(lambda conn: check_device(conn, device, identity, lambda _: True))

    assert await device_refusal(writers["alice"]) is None  # her open ticket's device
    refusal = await device_refusal(writers["bob"])
    assert isinstance(refusal, Forbidden)
    assert isinstance(await device_refusal(ALICE), Forbidden)  # commands:run only
    await store.tickets.update_ticket(
        ticket, TicketChanges(status=TicketStatus.RESOLVED), actor="t"
    )
    assert isinstance(await device_refusal(writers["alice"]), Forbidden)


def _link(capability: LinkCapability, ticket: int, session: str | None = None) -> ApiIdentity:
    return ApiIdentity(
        actor="user:alice",
        scopes=frozenset(),
        username="alice",
        role="technician",
        grant=ViewerGrant(
            link_id=1, ticket_id=ticket, capability=capability, screen_session=session
        ),
    )


async def test_a_viewer_link_grants_its_tickets_screen_and_nothing_else(store: Store) -> None:
    ticket, device = await setup(store)
    other, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d", device_id=device), actor="t", source=TicketSource.CLI
    )
    await store.tickets.update_ticket(other.id, TicketChanges(assignee="alice"), actor="t")
    view = _link(LinkCapability.VIEW, ticket)
    assert await decide(store, ticket, view, action=DeviceAction.SCREEN) == (device, None)
    for action in set(DeviceAction) - {DeviceAction.SCREEN}:
        _, refusal = await decide(store, ticket, view, action=action)
        assert isinstance(refusal, Forbidden), action
    _, refusal = await decide(store, other.id, view, action=DeviceAction.SCREEN)
    assert isinstance(refusal, Forbidden)
    assert f"this viewer link is for ticket #{ticket}" in str(refusal)
    _, refusal = await decide(
        store, ticket, _link(LinkCapability.REPLAY, ticket, "s1"), action=DeviceAction.SCREEN
    )
    assert isinstance(refusal, Forbidden)
    # The link's technician must still have the rights: bob's link is refused.
    bobs = msgspec.structs.replace(view, actor="user:bob", username="bob")
    _, refusal = await decide(store, ticket, bobs, action=DeviceAction.SCREEN)
    assert isinstance(refusal, Forbidden)


def test_control_and_replay_need_what_the_link_grants() -> None:
    assert may_control(ALICE)
    assert may_control(_link(LinkCapability.CONTROL, 1))
    assert not may_control(_link(LinkCapability.VIEW, 1))
    assert replay_refusal(_link(LinkCapability.REPLAY, 1, "s1"), "s1") is None
    assert isinstance(replay_refusal(_link(LinkCapability.REPLAY, 1, "s1"), "s2"), Forbidden)
    assert isinstance(replay_refusal(_link(LinkCapability.VIEW, 1, "s1"), "s1"), Forbidden)
    assert replay_refusal(READER, "s1") is None
    assert isinstance(replay_refusal(ALICE, "s1"), Forbidden)
