"""Tickets: opening them, reading them with their timeline, changing them.

The rules of a ticket's life (statuses, transitions, clocks, priority and SLA)
are in ``lifecycle.py``; this module only stores what they decide.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from deskside.console import timeline as entries
from deskside.console.auth.models import User
from deskside.console.db import Database, get_row, utcnow
from deskside.console.devices.models import Device, Snapshot
from deskside.console.errors import InvalidRequest, NotFound
from deskside.console.events import DomainEvent
from deskside.console.timeline import kinds
from deskside.console.timeline.kinds import TimelineEntry
from deskside.console.timeline.models import TicketEvent
from deskside.protocol import messages as m

from . import lifecycle
from .categories import Categories
from .events import TicketChanged, TicketCreated
from .lifecycle import TicketSource, TicketStatus
from .models import Ticket
from .policy import Policy
from .schemas import NewTicket, TicketChanges, TicketDetail, TicketView

__all__ = ["TicketRepository", "ticket_view"]


class TicketRepository:
    """Tickets and what is written on their timelines."""

    def __init__(
        self, db: Database, policy: Policy | None = None, categories: Categories | None = None
    ) -> None:
        self._db = db
        # Priority matrix and SLA targets for new and changed tickets.
        self.policy = policy or Policy()
        # What a ticket's category may be (the shipped set unless the admin's is given).
        self.categories = categories or Categories.load()

    def _check_category(self, category: str | None) -> None:
        problem = None if category is None else self.categories.check(category)
        if problem is not None:  # an unknown name, as an unknown assignee: not found
            raise NotFound(problem)

    async def create_ticket(
        self,
        new: NewTicket,
        *,
        actor: str,
        source: TicketSource,
        help_request_id: str | None = None,
        snapshot: m.Snapshot | None = None,
    ) -> tuple[TicketView, bool]:
        """Open a ticket (and attach ``snapshot``); ``(ticket, created)``.

        With ``help_request_id``, a request seen before returns its ticket and
        ``created`` is False: an agent re-sending after a reconnect files one ticket.
        """
        if help_request_id is not None:
            existing = await self._ticket_for_request(help_request_id)
            if existing is not None:
                return existing, False
        self._check_category(new.category)
        now = utcnow()
        priority = self.policy.priority(new.impact, new.urgency)
        response_due, resolution_due = self.policy.due(priority, now)
        events: list[DomainEvent] = []
        try:
            async with self._db.transaction(events=events) as session:
                if new.device_id is not None:
                    await get_row(session, Device, new.device_id, "device")
                ticket = Ticket(
                    title=new.title,
                    description=new.description,
                    requester=new.requester,
                    device_id=new.device_id,
                    category=new.category,
                    impact=new.impact,
                    urgency=new.urgency,
                    priority=priority,
                    status=str(TicketStatus.NEW),
                    assignee=None,
                    group_name=new.group,
                    source=str(source),
                    help_request_id=help_request_id,
                    created_at=now,
                    updated_at=now,
                    response_due=response_due,
                    resolution_due=resolution_due,
                    reopen_count=0,
                )
                session.add(ticket)
                await session.flush()
                view = ticket_view(ticket)
                events.append(TicketCreated(ticket_id=ticket.id, ticket=view))
                await entries.add(
                    session,
                    ticket.id,
                    kinds.Created(
                        title=new.title,
                        source=str(source),
                        priority=priority,
                        impact=new.impact,
                        urgency=new.urgency,
                    ),
                    actor=actor,
                    at=now,
                    events=events,
                )
                if snapshot is not None and new.device_id is not None:
                    row = Snapshot.of(new.device_id, snapshot, received_at=now, pinned=True)
                    session.add(row)
                    await session.flush()
                    await _diagnostics_entry(session, ticket.id, actor, row, now, events)
                return view, True
        except IntegrityError:
            if help_request_id is None:
                raise
            # The same request arrived twice at once; the other one won.
            existing = await self._ticket_for_request(help_request_id)
            if existing is None:
                raise
            return existing, False

    async def _ticket_for_request(self, help_request_id: str) -> TicketView | None:
        async with self._db.reading() as session:
            row = (
                await session.execute(
                    select(Ticket).where(Ticket.help_request_id == help_request_id)
                )
            ).scalar_one_or_none()
            return None if row is None else ticket_view(row)

    async def list_tickets(
        self,
        *,
        statuses: tuple[TicketStatus, ...] | list[TicketStatus] = (),
        device_id: str | None = None,
        assignee: str | None = None,
        priority: int | None = None,
        category: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TicketView]:
        """Tickets matching every filter given, newest first; ``category`` "ID" takes its
        subcategories too."""
        query = select(Ticket).order_by(Ticket.id.desc()).limit(limit).offset(offset)
        if statuses:
            query = query.where(Ticket.status.in_([str(s) for s in statuses]))
        if device_id is not None:
            query = query.where(Ticket.device_id == device_id)
        if assignee is not None:
            query = query.where(Ticket.assignee == assignee)
        if priority is not None:
            query = query.where(Ticket.priority == priority)
        if category is not None:
            query = query.where(
                (Ticket.category == category)
                | Ticket.category.startswith(f"{category}/", autoescape=True)
            )
        async with self._db.reading() as session:
            return [ticket_view(row) for row in (await session.execute(query)).scalars()]

    async def ticket(self, ticket_id: int) -> TicketView:
        """A ticket without its timeline; ``NotFound`` if unknown."""
        async with self._db.reading() as session:
            return ticket_view(await get_row(session, Ticket, ticket_id, "ticket"))

    async def get_ticket(self, ticket_id: int) -> TicketDetail:
        """A ticket and its whole timeline."""
        async with self._db.reading() as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket")
            rows = (
                await session.execute(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == ticket_id)
                    .order_by(TicketEvent.id)
                )
            ).scalars()
            return TicketDetail(
                ticket=ticket_view(ticket), timeline=[entries.view(row) for row in rows]
            )

    async def update_ticket(
        self, ticket_id: int, changes: TicketChanges, *, actor: str
    ) -> TicketView:
        """Change a ticket's fields (by ``lifecycle``'s rules); each change is recorded
        on its timeline."""
        self._check_category(changes.category)
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            steps: list[tuple[str, dict[str, Any]]] = []
            if changes.status is not None and changes.status != ticket.status:
                steps.append(("status", lifecycle.change_status(ticket, changes.status, now)))
            if changes.assignee is not None and changes.assignee != (ticket.assignee or ""):
                assignee = changes.assignee or None
                if assignee is not None and not await session.scalar(
                    select(func.count()).select_from(User).where(User.username == assignee)
                ):
                    raise NotFound(f"no technician named {assignee!r}")
                steps.append(("assignment", {"from": ticket.assignee, "to": assignee}))
                ticket.assignee = assignee
                if assignee is not None:
                    status = lifecycle.assigned(ticket, now)
                    if status is not None:
                        steps.append(("status", status))
            fields: dict[str, Any] = {}
            for name, column in (
                ("title", "title"),
                ("group", "group_name"),
                ("category", "category"),
            ):
                value = getattr(changes, name)
                if value is not None and value != getattr(ticket, column):
                    fields[name] = {"from": getattr(ticket, column), "to": value}
                    setattr(ticket, column, value)
            fields.update(
                lifecycle.reclassify(
                    ticket,
                    changes.impact if changes.impact is not None else ticket.impact,
                    changes.urgency if changes.urgency is not None else ticket.urgency,
                    self.policy,
                )
            )
            if fields:
                steps.append(("change", fields))
            if not steps:
                return ticket_view(ticket)
            ticket.updated_at = now
            for kind, data in steps:
                await entries.add(
                    session,
                    ticket.id,
                    entries.typed(kind, data),
                    actor=actor,
                    at=now,
                    events=events,
                )
            view = ticket_view(ticket)
            changed = sorted({k for kind, d in steps for k in (d if kind == "change" else [kind])})
            events.append(TicketChanged(ticket_id=ticket.id, ticket=view, fields=tuple(changed)))
            return view

    async def add_note(self, ticket_id: int, text: str, *, actor: str) -> TimelineEntry:
        """Add a note to a ticket's timeline."""
        if not 1 <= len(text) <= 65536:
            raise InvalidRequest("a note is 1-65536 characters")
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            ticket.updated_at = now
            if ticket.first_response_at is None and actor.startswith(("user:", "api:")):
                ticket.first_response_at = now
            return await entries.add(
                session, ticket_id, kinds.Note(text=text), actor=actor, at=now, events=events
            )

    async def attach_snapshot(
        self, ticket_id: int, snapshot_id: int, *, actor: str
    ) -> TimelineEntry:
        """Attach a device's snapshot to a ticket; it is then kept for good."""
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            snapshot = await get_row(session, Snapshot, snapshot_id, "snapshot")
            if ticket.device_id != snapshot.device_id:
                raise InvalidRequest("that snapshot is of another device than the ticket's")
            snapshot.pinned = True
            ticket.updated_at = now
            return await _diagnostics_entry(session, ticket_id, actor, snapshot, now, events)

    async def ticket_is_open(self, ticket_id: int) -> bool:
        """Whether the ticket exists and is not resolved or closed."""
        async with self._db.reading() as session:
            return lifecycle.is_open((await get_row(session, Ticket, ticket_id, "ticket")).status)

    async def add_timeline_event(
        self, ticket_id: int, entry: kinds.EventData, *, actor: str
    ) -> TimelineEntry:
        """Record something on a ticket's timeline (a runbook's start or end, say)."""
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            ticket.updated_at = now
            return await entries.add(session, ticket_id, entry, actor=actor, at=now, events=events)


async def _diagnostics_entry(
    session: Any,
    ticket_id: int,
    actor: str,
    snapshot: Snapshot,
    now: Any,
    events: list[DomainEvent],
) -> TimelineEntry:
    return await entries.add(
        session,
        ticket_id,
        kinds.Diagnostics(taken_at=snapshot.taken_at.isoformat(), schema=snapshot.schema),
        actor=actor,
        at=now,
        events=events,
        snapshot_id=snapshot.id,
    )


def ticket_view(row: Ticket) -> TicketView:
    """The API's view of a ticket row."""
    return TicketView(
        id=row.id,
        title=row.title,
        description=row.description,
        requester=row.requester,
        device_id=row.device_id,
        category=row.category,
        impact=row.impact,
        urgency=row.urgency,
        priority=row.priority,
        status=TicketStatus(row.status),
        assignee=row.assignee,
        group=row.group_name,
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
        response_due=row.response_due,
        resolution_due=row.resolution_due,
        first_response_at=row.first_response_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        reopen_count=row.reopen_count,
    )
