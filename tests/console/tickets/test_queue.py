"""The queue (``TicketRepository.queue``), tickets' groups, versions, bulk changes and
saved views, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text, update

from deskside.console.auth.schemas import Role
from deskside.console.db import alembic_config, migrate, utcnow
from deskside.console.errors import Conflict, NotFound, StaleVersion
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.models import Ticket
from deskside.console.tickets.schemas import (
    BulkChange,
    BulkOutcome,
    NewSavedView,
    NewTicket,
    QueueSort,
    SortOrder,
    TicketChanges,
    TicketQuery,
    TicketView,
)
from deskside.console.timeline.kinds import Assignment, Change, Note, Status

HOUR = datetime.timedelta(hours=1)


async def new_ticket(store: Store, title: str, **fields: object) -> TicketView:
    view, _ = await store.tickets.create_ticket(
        NewTicket(title=title, description=str(fields.pop("description", "d")), **fields),  # type: ignore[arg-type]
        actor="user:alice",
        source=TicketSource.API,
    )
    return view


async def people(store: Store) -> None:
    for name in ("alice", "bob"):
        await store.accounts.add_user(name, "pw-" + name * 4, role=Role.TECHNICIAN)
    for group in ("desk", "field"):
        await store.groups.add_group(group, actor="test")


async def ids(store: Store, username: str | None = None, **query: object) -> list[int]:
    page = await store.tickets.queue(TicketQuery(**query), username=username)  # type: ignore[arg-type]
    assert page.total >= len(page.tickets)
    return [t.id for t in page.tickets]


# -- The owning group ------------------------------------------------------------------------


async def test_a_ticket_is_owned_by_an_existing_group(store: Store) -> None:
    await people(store)
    owned = await new_ticket(store, "Printer", group="desk")
    assert owned.group == "desk"
    with pytest.raises(NotFound, match="no group 'nowhere'"):
        await new_ticket(store, "Lost", group="nowhere")
    changed = await store.tickets.update_ticket(
        owned.id, TicketChanges(group="field"), actor="user:bob"
    )
    assert changed.group == "field"
    with pytest.raises(NotFound, match="no group"):
        await store.tickets.update_ticket(owned.id, TicketChanges(group="x"), actor="user:bob")
    cleared = await store.tickets.update_ticket(owned.id, TicketChanges(group=""), actor="user:bob")
    assert cleared.group is None
    changes = [e.data for e in (await store.tickets.get_ticket(owned.id)).timeline]
    groups = [(c.group.from_, c.group.to) for c in changes if isinstance(c, Change) and c.group]
    assert groups == [("desk", "field"), ("field", "")]
    # A deleted group leaves its tickets to nobody; the tickets stay.
    again = await store.tickets.update_ticket(owned.id, TicketChanges(group="desk"), actor="x")
    await store.groups.delete_group("desk", actor="test")
    assert (await store.tickets.ticket(again.id)).group is None


def test_the_migration_keeps_free_text_groups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0007")
    engine = create_engine(url)
    now = "2026-12-01 10:00:00.000000"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tickets (title, description, requester, category, impact, urgency,"
                " priority, status, group_name, source, created_at, updated_at, response_due,"
                " resolution_due, reopen_count) VALUES ('t', 'd', '', '', 3, 2, 4, 'new',"
                " :group, 'api', :now, :now, :now, :now, 0)"
            ),
            {"group": "legacy desk", "now": now},
        )
    migrate(url)
    with engine.begin() as connection:
        row = connection.execute(text("SELECT group_name, version FROM tickets")).one()
        groups = connection.execute(text("SELECT name FROM technician_groups")).scalars().all()
    engine.dispose()
    assert tuple(row) == ("legacy desk", 1)
    assert groups == ["legacy desk"]


# -- Filters ---------------------------------------------------------------------------------


async def test_every_filter_of_the_queue(store: Store) -> None:
    await people(store)
    a = await new_ticket(store, "Printer jams", requester="carol@example.org", group="desk")
    b = await new_ticket(store, "VPN drops", description="since 100% of the update", impact=1)
    c = await new_ticket(store, "Mail slow", group="field", urgency=1)
    await store.tickets.update_ticket(a.id, TicketChanges(assignee="alice"), actor="x")
    await store.tickets.update_ticket(b.id, TicketChanges(assignee="bob"), actor="x")
    await store.tickets.update_ticket(b.id, TicketChanges(status=TicketStatus.RESOLVED), actor="x")

    assert await ids(store) == [c.id, b.id, a.id]
    assert await ids(store, statuses=[TicketStatus.NEW]) == [c.id]
    assert await ids(store, statuses=[TicketStatus.NEW, TicketStatus.RESOLVED]) == [c.id, b.id]
    assert await ids(store, priority=c.priority) == [
        t for t in (c.id, b.id, a.id) if (await store.tickets.ticket(t)).priority == c.priority
    ]
    assert await ids(store, group="desk") == [a.id]
    assert await ids(store, group="field") == [c.id]
    assert await ids(store, assignee="bob") == [b.id]
    assert await ids(store, "alice", mine=True) == [a.id]
    assert await ids(store, "carol", mine=True) == []
    assert await ids(store, unassigned=True) == [c.id]
    assert await ids(store, text="printer") == [a.id]  # any case
    assert await ids(store, text="CAROL@") == [a.id]  # the requester
    assert await ids(store, text="100%") == [b.id]  # % is a character, not a wildcard
    assert await ids(store, text="0% of") == [b.id]
    assert await ids(store, text="_") == []
    assert await ids(store, text="slow", group="field", unassigned=True) == [c.id]
    assert await ids(store, text="slow", group="desk") == []


async def test_text_search_finds_the_device_by_id_and_host_name(store: Store) -> None:
    from tests.console.test_store import enrolled

    device = await enrolled(store)
    async with store.db.transaction() as session:
        from deskside.console.devices.models import Device

        await session.execute(
            update(Device).where(Device.id == device).values(hostname="Reception-PC")
        )
    on_device = await new_ticket(store, "Screen flickers", device_id=device)
    await new_ticket(store, "Other")
    assert await ids(store, text="reception-pc") == [on_device.id]
    assert await ids(store, text=device[:8]) == [on_device.id]
    assert await ids(store, device_id=device) == [on_device.id]


async def test_breaching_is_open_and_due_within_the_hour_or_overdue(store: Store) -> None:
    now = utcnow()
    later = await new_ticket(store, "Due in a day")
    soon = await new_ticket(store, "Resolution due in 30 min")
    overdue = await new_ticket(store, "Resolution overdue")
    answer = await new_ticket(store, "Response due in 10 min")
    answered = await new_ticket(store, "Response due, but answered")
    done = await new_ticket(store, "Overdue but resolved")
    dues = {
        later.id: (now + 24 * HOUR, now + 24 * HOUR, None),
        soon.id: (now + 24 * HOUR, now + HOUR / 2, None),
        overdue.id: (now - 5 * HOUR, now - HOUR, now - 6 * HOUR),
        answer.id: (now + HOUR / 6, now + 24 * HOUR, None),
        answered.id: (now + HOUR / 6, now + 24 * HOUR, now - HOUR),
        done.id: (now - HOUR, now - HOUR, now - 2 * HOUR),
    }
    async with store.db.transaction() as session:
        for ticket_id, (response, resolution, responded) in dues.items():
            await session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(
                    response_due=response,
                    resolution_due=resolution,
                    first_response_at=responded,
                )
            )
    await store.tickets.update_ticket(
        done.id, TicketChanges(status=TicketStatus.RESOLVED), actor="x"
    )
    assert await ids(store, breaching=True) == [answer.id, overdue.id, soon.id]
    assert await ids(store, breaching=True, sort=QueueSort.SLA_DUE, order=SortOrder.ASC) == [
        overdue.id,
        soon.id,
        answer.id,
    ]


async def test_contradictory_filters_select_nothing(store: Store) -> None:
    await people(store)
    ticket = await new_ticket(store, "Assigned   ")
    await store.tickets.update_ticket(ticket.id, TicketChanges(assignee="alice"), actor="x")
    assert await ids(store, "alice", mine=True) == [ticket.id]
    assert await ids(store, unassigned=True, assignee="alice") == []
    assert await ids(store, "alice", unassigned=True, mine=True) == []
    assert await ids(store, "alice", mine=True, assignee="bob") == []
    assert await ids(store, None, mine=True) == []  # a service token has no tickets
    assert await ids(store, text="   ") == [ticket.id]  # spaces are text like any other
    assert await ids(store, text="  x") == []


# -- Sorts and pages -------------------------------------------------------------------------


async def test_every_sort_both_ways_and_every_page_boundary(store: Store) -> None:
    levels = [(1, 1), (3, 3), (2, 2), (1, 3), (3, 1), (2, 2), (3, 3)]
    made = []
    for n, (impact, urgency) in enumerate(levels):
        made.append(await new_ticket(store, f"t{n}", impact=impact, urgency=urgency))
    # Touch them in another order than created, so that "updated" is its own order.
    for ticket in reversed(made[::2]):
        await store.tickets.add_note(ticket.id, "seen", actor="user:alice")
    rows = [await store.tickets.ticket(t.id) for t in made]
    keys = {
        QueueSort.NUMBER: lambda t: (t.id, t.id),
        QueueSort.PRIORITY: lambda t: (t.priority, t.id),
        QueueSort.UPDATED: lambda t: (t.updated_at, t.id),
        QueueSort.SLA_DUE: lambda t: (t.resolution_due, t.id),
    }
    for sort, key in keys.items():
        for order in SortOrder:
            expected = [t.id for t in sorted(rows, key=key, reverse=order is SortOrder.DESC)]
            assert await ids(store, sort=sort, order=order, limit=500) == expected, (sort, order)
            for limit in (1, 2, 3, 7):
                pages: list[int] = []
                for offset in range(0, 9, limit):
                    page = await store.tickets.queue(
                        TicketQuery(sort=sort, order=order, limit=limit, offset=offset)
                    )
                    assert page.total == len(made)
                    assert len(page.tickets) == max(0, min(limit, len(made) - offset))
                    pages += [t.id for t in page.tickets]
                assert pages == expected, (sort, order, limit)
    beyond = await store.tickets.queue(TicketQuery(offset=len(made)))
    assert (beyond.tickets, beyond.total) == ([], len(made))
    filtered = await store.tickets.queue(TicketQuery(priority=rows[0].priority, limit=1))
    assert filtered.total == sum(1 for t in rows if t.priority == rows[0].priority)


# -- Versions --------------------------------------------------------------------------------


async def test_every_change_is_a_new_version_and_a_stale_one_is_refused(store: Store) -> None:
    await people(store)
    ticket = await new_ticket(store, "Two editors")
    assert ticket.version == 1
    first = await store.tickets.update_ticket(
        ticket.id, TicketChanges(impact=1, version=1), actor="user:alice"
    )
    assert first.version == 2
    with pytest.raises(StaleVersion, match="changed since version 1") as refused:
        await store.tickets.update_ticket(
            ticket.id, TicketChanges(urgency=1, version=1), actor="user:bob"
        )
    assert refused.value.current["ticket"]["version"] == 2  # type: ignore[index]
    assert refused.value.current["ticket"]["impact"] == 1  # type: ignore[index]
    assert (await store.tickets.ticket(ticket.id)).urgency == ticket.urgency  # not applied
    unchanged = await store.tickets.update_ticket(
        ticket.id, TicketChanges(impact=1, version=2), actor="user:bob"
    )
    assert unchanged.version == 2  # nothing changed: no new version
    await store.tickets.add_note(ticket.id, "a note changes it too", actor="user:bob")
    assert (await store.tickets.ticket(ticket.id)).version == 3
    assigned = await store.tickets.update_ticket(
        ticket.id, TicketChanges(assignee="bob", version=3), actor="user:bob"
    )
    assert assigned.version == 4
    assert isinstance(StaleVersion("x", {}), Conflict)


# -- Bulk ------------------------------------------------------------------------------------


async def test_bulk_changes_report_each_ticket(store: Store) -> None:
    await people(store)
    fresh = await new_ticket(store, "Fresh")
    closed = await new_ticket(store, "Closed")
    mine = await new_ticket(store, "Already bob's")
    await store.tickets.update_ticket(
        closed.id, TicketChanges(status=TicketStatus.CLOSED), actor="x"
    )
    await store.tickets.update_ticket(mine.id, TicketChanges(assignee="bob"), actor="x")
    before = len(await store.audit.log(limit=500))

    result = await store.tickets.bulk_update(
        BulkChange(ids=[fresh.id, 999, closed.id, mine.id], status=TicketStatus.IN_PROGRESS),
        actor="user:bob",
    )
    outcomes = [(r.id, r.outcome) for r in result.results]
    assert outcomes == [
        (fresh.id, BulkOutcome.CHANGED),
        (999, BulkOutcome.NOT_FOUND),
        (closed.id, BulkOutcome.REFUSED),
        (mine.id, BulkOutcome.CHANGED),
    ]
    assert "a closed ticket cannot become in_progress" in result.results[2].detail
    assert result.results[0].ticket is not None
    assert result.results[0].ticket.status is TicketStatus.IN_PROGRESS
    assert (await store.tickets.ticket(closed.id)).status is TicketStatus.CLOSED
    timeline = (await store.tickets.get_ticket(fresh.id)).timeline
    assert [(e.actor, type(e.data)) for e in timeline][-1] == ("user:bob", Status)
    log = await store.audit.log(limit=500)
    audit = log[: len(log) - before]
    assert sorted(e.data["ticket"] for e in audit if e.action == "ticket.changed") == sorted(
        [fresh.id, mine.id]
    )

    again = await store.tickets.bulk_update(
        BulkChange(ids=[fresh.id, mine.id], assignee="bob", group="desk"), actor="user:bob"
    )
    assert [r.outcome for r in again.results] == [BulkOutcome.CHANGED, BulkOutcome.CHANGED]
    assert (await store.tickets.ticket(fresh.id)).assignee == "bob"
    third = await store.tickets.bulk_update(
        BulkChange(ids=[fresh.id], assignee="bob", group="desk"), actor="user:bob"
    )
    assert third.results[0].outcome is BulkOutcome.UNCHANGED
    timeline = (await store.tickets.get_ticket(fresh.id)).timeline
    assert [e.data for e in timeline if isinstance(e.data, Assignment)] == [
        Assignment(from_=None, to="bob")
    ]

    versions = [(await store.tickets.ticket(t)).version for t in (fresh.id, mine.id)]
    with pytest.raises(NotFound, match="no technician named 'zed'"):
        await store.tickets.bulk_update(
            BulkChange(ids=[fresh.id, mine.id], assignee="zed", status=TicketStatus.RESOLVED),
            actor="x",
        )
    with pytest.raises(NotFound, match="no group 'ticketing'"):
        await store.tickets.bulk_update(
            BulkChange(ids=[fresh.id, mine.id], group="ticketing", status=TicketStatus.RESOLVED),
            actor="x",
        )
    # Refused for every ticket before any was changed.
    assert [(await store.tickets.ticket(t)).version for t in (fresh.id, mine.id)] == versions
    nothing = await store.tickets.bulk_update(BulkChange(ids=[fresh.id]), actor="x")
    assert [r.outcome for r in nothing.results] == [BulkOutcome.UNCHANGED]
    twice = await store.tickets.bulk_update(
        BulkChange(ids=[fresh.id, mine.id, fresh.id], assignee="alice"), actor="x"
    )
    assert [(r.id, r.outcome) for r in twice.results] == [
        (fresh.id, BulkOutcome.CHANGED),  # once
        (mine.id, BulkOutcome.CHANGED),
    ]


async def test_a_note_is_on_the_timeline_and_in_the_audit_log(store: Store) -> None:
    ticket = await new_ticket(store, "Noted")
    await store.tickets.add_note(ticket.id, "called the user", actor="user:alice")
    last = (await store.tickets.get_ticket(ticket.id)).timeline[-1]
    assert (last.actor, last.data) == ("user:alice", Note(text="called the user"))
    entry = (await store.audit.log(limit=1))[0]
    assert (entry.action, entry.actor, entry.data) == (
        "ticket.noted",
        "user:alice",
        {"ticket": ticket.id, "characters": 15},
    )


# -- Saved views -----------------------------------------------------------------------------


async def test_saved_views_are_each_technicians_own(store: Store) -> None:
    await people(store)
    query = TicketQuery(
        statuses=[TicketStatus.NEW, TicketStatus.REOPENED],
        group="desk",
        breaching=True,
        sort=QueueSort.SLA_DUE,
        order=SortOrder.ASC,
        limit=7,
        offset=14,
    )
    saved = await store.tickets.save_view("alice", NewSavedView(name="Desk, burning", query=query))
    assert saved.query.group == "desk"
    assert (saved.query.limit, saved.query.offset) == (50, 0)  # a view is a queue, not a page
    assert [v.name for v in await store.tickets.saved_views("alice")] == ["Desk, burning"]
    assert (await store.tickets.saved_view("alice", "Desk, burning")).query.statuses == [
        TicketStatus.NEW,
        TicketStatus.REOPENED,
    ]
    assert await store.tickets.saved_views("bob") == []
    with pytest.raises(Conflict, match="exists already"):
        await store.tickets.save_view("alice", NewSavedView(name="Desk, burning", query=query))
    await store.tickets.save_view("bob", NewSavedView(name="Desk, burning", query=query))
    with pytest.raises(NotFound):
        await store.tickets.delete_view("bob", saved.id)  # alice's
    with pytest.raises(NotFound, match="no technician"):
        await store.tickets.save_view("zed", NewSavedView(name="x", query=query))
    await store.tickets.delete_view("alice", saved.id)
    assert await store.tickets.saved_views("alice") == []
    assert len(await store.tickets.saved_views("bob")) == 1
