"""A ticket's life: its statuses, the changes allowed between them, and its clocks.

Theory of operation::

           ┌──────────────────────── assign / work / wait ─────────────────────┐
           v                                                                    │
    new ──> assigned <──> in_progress <──> waiting_on_user ──> resolved ──> closed
     │         ^                                                 │  ^         │
     │         └────────────── reopened <────────────────────────┘  │         │
     └──────────────── (straight to resolved or closed) ─────────────┘ <──────┘

``TRANSITIONS`` is that drawing as a table, and ``change_status`` runs it: a change
not in the table is a ``Conflict``. The clocks follow the status: resolving sets
``resolved_at``; closing sets ``closed_at`` (and ``resolved_at`` if it was not
resolved first); reopening counts the reopen and clears both. Any change but a
reopen is a response: the first one sets ``first_response_at``, which the
response SLA is measured to. Assigning a ticket that is new or reopened makes it
``assigned``.

Priority follows impact x urgency through the ``Policy`` in force (the ITIL matrix
by default), and the SLA due times follow the priority, counted from the ticket's
creation (``reclassify``).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from typing import Any, Final, Protocol

from deskside.console.errors import Conflict

from .policy import Policy

__all__ = [
    "OPEN_STATES",
    "TRANSITIONS",
    "Classified",
    "TicketSource",
    "TicketStatus",
    "assigned",
    "change_status",
    "is_open",
    "reclassify",
]


class TicketStatus(enum.StrEnum):
    """Where a ticket is in its life."""

    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_USER = "waiting_on_user"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


class TicketSource(enum.StrEnum):
    """Where a ticket was reported."""

    AGENT = "agent"
    API = "api"
    CLI = "cli"


OPEN_STATES: Final = frozenset(
    {
        TicketStatus.NEW,
        TicketStatus.ASSIGNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.WAITING_ON_USER,
        TicketStatus.REOPENED,
    }
)

_S = TicketStatus

# Allowed status changes: from -> to.
TRANSITIONS: Final[Mapping[TicketStatus, frozenset[TicketStatus]]] = {
    _S.NEW: frozenset({_S.ASSIGNED, _S.IN_PROGRESS, _S.WAITING_ON_USER, _S.RESOLVED, _S.CLOSED}),
    _S.ASSIGNED: frozenset({_S.IN_PROGRESS, _S.WAITING_ON_USER, _S.RESOLVED}),
    _S.IN_PROGRESS: frozenset({_S.ASSIGNED, _S.WAITING_ON_USER, _S.RESOLVED}),
    _S.WAITING_ON_USER: frozenset({_S.IN_PROGRESS, _S.ASSIGNED, _S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.CLOSED, _S.REOPENED}),
    _S.CLOSED: frozenset({_S.REOPENED}),
    _S.REOPENED: frozenset({_S.ASSIGNED, _S.IN_PROGRESS, _S.WAITING_ON_USER, _S.RESOLVED}),
}


class Clocks(Protocol):
    """The fields of a ticket its status and clocks live in (the ORM row)."""

    status: str
    first_response_at: datetime.datetime | None
    resolved_at: datetime.datetime | None
    closed_at: datetime.datetime | None
    reopen_count: int


class Classified(Protocol):
    """The fields of a ticket its priority and SLA due times live in (the ORM row)."""

    impact: int
    urgency: int
    priority: int
    created_at: datetime.datetime
    response_due: datetime.datetime
    resolution_due: datetime.datetime


def is_open(status: str) -> bool:
    """Whether a ticket of this status is still being worked on."""
    return status in OPEN_STATES


def change_status(ticket: Clocks, to: TicketStatus, now: datetime.datetime) -> dict[str, Any]:
    """Move ``ticket`` to ``to`` with its clocks; the change, for the timeline.

    ``Conflict`` if ``TRANSITIONS`` does not allow it.
    """
    current = TicketStatus(ticket.status)
    if to not in TRANSITIONS[current]:
        raise Conflict(f"a {current} ticket cannot become {to}")
    ticket.status = str(to)
    if to == TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif to == TicketStatus.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif to == TicketStatus.REOPENED:
        ticket.reopen_count += 1
        ticket.resolved_at = ticket.closed_at = None
    if to != TicketStatus.REOPENED and ticket.first_response_at is None:
        ticket.first_response_at = now
    return {"from": str(current), "to": str(to)}


def assigned(ticket: Clocks, now: datetime.datetime) -> dict[str, Any] | None:
    """A new or reopened ticket that got an assignee becomes ``assigned`` (a response);
    the status change for the timeline, or None if its status stays."""
    if ticket.status not in (TicketStatus.NEW, TicketStatus.REOPENED):
        return None
    change = {"from": ticket.status, "to": str(TicketStatus.ASSIGNED)}
    ticket.status = str(TicketStatus.ASSIGNED)
    ticket.first_response_at = ticket.first_response_at or now
    return change


def reclassify(ticket: Classified, impact: int, urgency: int, policy: Policy) -> dict[str, Any]:
    """Set impact and urgency, and the priority and due times that follow; the
    changed fields for the timeline (``{"priority": {"from": 3, "to": 2}, ...}``),
    empty if nothing changed."""
    if (impact, urgency) == (ticket.impact, ticket.urgency):
        return {}
    priority = policy.priority(impact, urgency)
    changes = {
        "priority": {"from": ticket.priority, "to": priority},
        "impact": {"from": ticket.impact, "to": impact},
        "urgency": {"from": ticket.urgency, "to": urgency},
    }
    ticket.impact, ticket.urgency, ticket.priority = impact, urgency, priority
    ticket.response_due, ticket.resolution_due = policy.due(priority, ticket.created_at)
    return changes
