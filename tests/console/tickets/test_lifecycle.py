"""A ticket's lifecycle: the transition table, the clocks, priority and SLA."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pytest

from deskside.console.errors import Conflict
from deskside.console.tickets import lifecycle
from deskside.console.tickets.lifecycle import OPEN_STATES, TRANSITIONS, TicketStatus
from deskside.console.tickets.policy import Policy

T0 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
LATER = T0 + datetime.timedelta(hours=2)


@dataclass
class Row:
    status: str = "new"
    first_response_at: datetime.datetime | None = None
    resolved_at: datetime.datetime | None = None
    closed_at: datetime.datetime | None = None
    reopen_count: int = 0
    impact: int = 3
    urgency: int = 2
    priority: int = 4
    created_at: datetime.datetime = T0
    response_due: datetime.datetime = field(default=T0)
    resolution_due: datetime.datetime = field(default=T0)


def test_the_table_covers_every_status_and_only_open_ones_can_be_worked() -> None:
    assert set(TRANSITIONS) == set(TicketStatus)
    assert TicketStatus.RESOLVED not in OPEN_STATES
    assert TicketStatus.CLOSED not in OPEN_STATES
    assert TRANSITIONS[TicketStatus.CLOSED] == {TicketStatus.REOPENED}
    for status in TicketStatus:
        assert status not in TRANSITIONS[status]  # no change is a change to itself


@pytest.mark.parametrize("start", list(TicketStatus))
@pytest.mark.parametrize("to", list(TicketStatus))
def test_change_status_runs_the_table(start: TicketStatus, to: TicketStatus) -> None:
    row = Row(status=str(start))
    if to in TRANSITIONS[start]:
        assert lifecycle.change_status(row, to, LATER) == {"from": str(start), "to": str(to)}
        assert row.status == to
    else:
        with pytest.raises(Conflict, match=f"a {start} ticket cannot become {to}"):
            lifecycle.change_status(row, to, LATER)
        assert row.status == start


def test_clocks_follow_the_status() -> None:
    row = Row()
    lifecycle.change_status(row, TicketStatus.RESOLVED, LATER)
    assert (row.resolved_at, row.first_response_at) == (LATER, LATER)
    later = LATER + datetime.timedelta(hours=1)
    lifecycle.change_status(row, TicketStatus.REOPENED, later)
    assert (row.resolved_at, row.closed_at, row.reopen_count) == (None, None, 1)
    assert row.first_response_at == LATER  # the first response stays the first
    lifecycle.change_status(row, TicketStatus.RESOLVED, later)
    lifecycle.change_status(row, TicketStatus.CLOSED, later + datetime.timedelta(days=1))
    assert row.resolved_at == later
    assert row.closed_at == later + datetime.timedelta(days=1)


def test_closing_unresolved_sets_both_and_reopening_is_no_response() -> None:
    row = Row()
    lifecycle.change_status(row, TicketStatus.CLOSED, LATER)
    assert row.resolved_at == row.closed_at == LATER
    fresh = Row(status="resolved")
    lifecycle.change_status(fresh, TicketStatus.REOPENED, LATER)
    assert fresh.first_response_at is None


def test_assigning_a_new_or_reopened_ticket_makes_it_assigned() -> None:
    row = Row()
    assert lifecycle.assigned(row, LATER) == {"from": "new", "to": "assigned"}
    assert (row.status, row.first_response_at) == ("assigned", LATER)
    assert lifecycle.assigned(row, LATER) is None
    working = Row(status="in_progress")
    assert lifecycle.assigned(working, LATER) is None
    assert working.status == "in_progress"


def test_reclassify_sets_priority_and_due_times_from_creation() -> None:
    row = Row()
    policy = Policy()
    assert lifecycle.reclassify(row, 3, 2, policy) == {}  # nothing changed
    changes = lifecycle.reclassify(row, 1, 1, policy)
    assert changes == {
        "priority": {"from": 4, "to": 1},
        "impact": {"from": 3, "to": 1},
        "urgency": {"from": 2, "to": 1},
    }
    assert (row.impact, row.urgency, row.priority) == (1, 1, 1)
    assert row.response_due == T0 + policy.sla[1].response
    assert row.resolution_due == T0 + policy.sla[1].resolution
    assert lifecycle.is_open("new")
    assert not lifecycle.is_open("closed")
