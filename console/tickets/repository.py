"""Tickets: opening them, reading them with their timeline, changing them.

The rules of a ticket's life (statuses, transitions, clocks, priority and SLA)
are in ``lifecycle.py``; this module only stores what they decide.
"""

from __future__ import annotations

import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select
from sqlalchemy.exc import IntegrityError

from deskside.console import timeline as entries
from deskside.console.audit import chain as audit
from deskside.console.auth.models import TechnicianGroup, User
from deskside.console.db import Database, get_row, utcnow
from deskside.console.devices.models import Device, Snapshot
from deskside.console.errors import Conflict, InvalidRequest, NotFound, StaleVersion
from deskside.console.events import DomainEvent
from deskside.console.timeline import kinds
from deskside.console.timeline.kinds import TimelineEntry
from deskside.console.timeline.models import TicketEvent
from deskside.protocol import messages as m
from deskside.protocol.errors import DesksideError

from . import lifecycle
from .categories import Categories
from .events import TicketChanged, TicketCreated
from .lifecycle import OPEN_STATES, TicketSource, TicketStatus
from .models import SavedView, Ticket
from .policy import Policy
from .schemas import (
    BulkChange,
    BulkOutcome,
    BulkResult,
    BulkResults,
    NewSavedView,
    NewTicket,
    QueueSort,
    SavedViewInfo,
    SortOrder,
    TicketChanges,
    TicketDetail,
    TicketPage,
    TicketQuery,
    TicketView,
)

__all__ = [
    "BREACHING_WITHIN",
    "QUEUE_SORTS",
    "SAVED_VIEWS_PER_USER",
    "TicketRepository",
    "ticket_view",
]

# The column each sort of the queue orders by; the ticket's number breaks ties, so
# pages never overlap or skip (each has an index: ``models.Ticket``).
QUEUE_SORTS: Final[dict[QueueSort, Any]] = {
    QueueSort.NUMBER: Ticket.id,
    QueueSort.PRIORITY: Ticket.priority,
    QueueSort.UPDATED: Ticket.updated_at,
    QueueSort.SLA_DUE: Ticket.resolution_due,
}

# "Breaching": an open ticket whose response or resolution is due within this.
BREACHING_WITHIN: Final = datetime.timedelta(hours=1)

# A technician's saved views, at most (a queue page lists them all).
SAVED_VIEWS_PER_USER: Final = 100


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
                if new.group is not None:
                    await _check_group(session, new.group)
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
                    version=1,
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
        subcategories too. The queue's one query (``queue``), without its total."""
        query = TicketQuery(
            statuses=list(statuses),
            device_id=device_id,
            assignee=assignee,
            priority=priority,
            category=category,
            limit=limit,
            offset=offset,
        )
        return (await self.queue(query)).tickets

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
        on its timeline and in the audit log.

        With ``changes.version``, a ticket changed since that version is refused
        (``StaleVersion``, carrying the ticket as it is now), even if nothing else would
        change: the editor's view is stale either way.
        """
        self._check_category(changes.category)
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            if changes.version is not None and changes.version != ticket.version:
                raise StaleVersion(
                    f"ticket #{ticket_id} changed since version {changes.version} "
                    f"(it is at version {ticket.version}): look at it again",
                    {"ticket": msgspec.to_builtins(ticket_view(ticket))},
                )
            if changes.group and changes.group != ticket.group_name:
                await _check_group(session, changes.group)
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
                if name == "group" and value == "":
                    value = None  # "" takes the ticket from its group
                    if ticket.group_name is not None:
                        fields[name] = {"from": ticket.group_name, "to": ""}
                        ticket.group_name = None
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
            changed = sorted({k for kind, d in steps for k in (d if kind == "change" else [kind])})
            await audit.append(
                session,
                actor=actor,
                action="ticket.changed",
                data={"ticket": ticket.id, "fields": changed},
                at=now,
            )
            await session.flush()  # the new version
            view = ticket_view(ticket)
            events.append(TicketChanged(ticket_id=ticket.id, ticket=view, fields=tuple(changed)))
            return view

    async def bulk_update(self, change: BulkChange, *, actor: str) -> BulkResults:
        """Apply one change to each of ``change.ids``, each on its own as
        ``update_ticket`` would (its rules, its timeline, its audit entry), so that a
        ticket that refuses does not stop the others; what happened to each, in order."""
        one = TicketChanges(status=change.status, assignee=change.assignee, group=change.group)
        async with self._db.reading() as session:  # for every ticket: refused before any
            if change.assignee and not await session.scalar(
                select(func.count()).select_from(User).where(User.username == change.assignee)
            ):
                raise NotFound(f"no technician named {change.assignee!r}")
            if change.group:
                await _check_group(session, change.group)
        results: list[BulkResult] = []
        for ticket_id in dict.fromkeys(change.ids):  # a ticket named twice is changed once
            try:
                before = await self.ticket(ticket_id)
            except NotFound:
                results.append(BulkResult(id=ticket_id, outcome=BulkOutcome.NOT_FOUND))
                continue
            try:
                after = await self.update_ticket(ticket_id, one, actor=actor)
            except DesksideError as exc:
                results.append(
                    BulkResult(id=ticket_id, outcome=BulkOutcome.REFUSED, detail=str(exc))
                )
            else:
                outcome = (
                    BulkOutcome.UNCHANGED
                    if after.version == before.version
                    else BulkOutcome.CHANGED
                )
                results.append(BulkResult(id=ticket_id, outcome=outcome, ticket=after))
        return BulkResults(results=results)

    async def queue(self, query: TicketQuery, *, username: str | None = None) -> TicketPage:
        """One page of the tickets ``query`` selects, in its order, and their number.

        ``username`` is the technician asking, for ``mine``. Pages are by offset: with
        an index per sort (``models.Ticket``) a page costs about the same at any depth
        of 10,000 tickets (``benchmarks/queue.py``), and a technician can jump to page N.
        """
        conditions = self._conditions(query, username)
        column = QUEUE_SORTS[query.sort]
        if query.order is SortOrder.ASC:
            order = [column.asc(), Ticket.id.asc()]
        else:
            order = [column.desc(), Ticket.id.desc()]
        page = select(Ticket).where(*conditions).order_by(*order)
        page = page.limit(query.limit).offset(query.offset)
        count = select(func.count()).select_from(Ticket).where(*conditions)
        async with self._db.reading() as session:
            rows = [ticket_view(row) for row in (await session.execute(page)).scalars()]
            total = int(await session.scalar(count) or 0)
        return TicketPage(tickets=rows, total=total, limit=query.limit, offset=query.offset)

    @staticmethod
    def _conditions(query: TicketQuery, username: str | None) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if query.statuses:
            where.append(Ticket.status.in_(sorted({str(s) for s in query.statuses})))
        if query.priority is not None:
            where.append(Ticket.priority == query.priority)
        if query.group is not None:
            where.append(Ticket.group_name == query.group)
        if query.assignee is not None:
            where.append(Ticket.assignee == query.assignee)
        if query.mine:  # a service token has no tickets of its own
            where.append(Ticket.assignee == username if username is not None else false())
        if query.unassigned:
            where.append(Ticket.assignee.is_(None))
        if query.device_id is not None:
            where.append(Ticket.device_id == query.device_id)
        if query.breaching:
            soon = utcnow() + BREACHING_WITHIN
            where.append(Ticket.status.in_(sorted(OPEN_STATES)))
            where.append(
                or_(
                    Ticket.resolution_due <= soon,
                    and_(Ticket.first_response_at.is_(None), Ticket.response_due <= soon),
                )
            )
        if query.category is not None:
            where.append(
                (Ticket.category == query.category)
                | Ticket.category.startswith(f"{query.category}/", autoescape=True)
            )
        if query.text is not None:
            text = query.text
            hosts = select(Device.id).where(Device.hostname.icontains(text, autoescape=True))
            where.append(
                or_(
                    Ticket.title.icontains(text, autoescape=True),
                    Ticket.description.icontains(text, autoescape=True),
                    Ticket.requester.icontains(text, autoescape=True),
                    Ticket.device_id.icontains(text, autoescape=True),
                    Ticket.device_id.in_(hosts),
                )
            )
        return where

    # -- Saved views -------------------------------------------------------------------

    async def save_view(self, username: str, new: NewSavedView) -> SavedViewInfo:
        """Keep a queue under a name for ``username``; ``Conflict`` if the name is taken."""
        query = msgspec.structs.replace(new.query, limit=50, offset=0)
        now = utcnow()
        try:
            async with self._db.transaction() as session:
                if await session.scalar(select(User.id).where(User.username == username)) is None:
                    raise NotFound(f"no technician named {username!r}")
                count = await session.scalar(
                    select(func.count())
                    .select_from(SavedView)
                    .where(SavedView.username == username)
                )
                if (count or 0) >= SAVED_VIEWS_PER_USER:
                    raise Conflict(f"{SAVED_VIEWS_PER_USER} saved views at most: delete one first")
                row = SavedView(
                    username=username,
                    name=new.name,
                    query=_stored_query(query),
                    created_at=now,
                )
                session.add(row)
                await session.flush()
                return _view_info(row)
        except IntegrityError as exc:
            raise Conflict(f"a view named {new.name!r} exists already") from exc

    async def saved_views(self, username: str) -> list[SavedViewInfo]:
        """``username``'s saved views, by name."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(
                    select(SavedView).where(SavedView.username == username).order_by(SavedView.name)
                )
            ).scalars()
            return [_view_info(row) for row in rows]

    async def saved_view(self, username: str, name: str) -> SavedViewInfo:
        """One of ``username``'s saved views, by name; ``NotFound`` if none."""
        for view in await self.saved_views(username):
            if view.name == name:
                return view
        raise NotFound(f"no saved view named {name!r}")

    async def delete_view(self, username: str, view_id: int) -> None:
        """Delete one of ``username``'s views (another's is ``NotFound`` too)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(SavedView).where(SavedView.id == view_id, SavedView.username == username)
            )
            if not getattr(result, "rowcount", 0):
                raise NotFound(f"no saved view {view_id}")

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
            await audit.append(
                session,
                actor=actor,
                action="ticket.noted",
                data={"ticket": ticket_id, "characters": len(text)},
                at=now,
            )
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


async def _check_group(session: Any, name: str) -> None:
    if await session.get(TechnicianGroup, name) is None:
        raise NotFound(f"no group {name!r} (deskside-console group add NAME)")


def _stored_query(query: TicketQuery) -> dict[str, Any]:
    stored: dict[str, Any] = msgspec.to_builtins(query)
    return stored


def _view_info(row: SavedView) -> SavedViewInfo:
    return SavedViewInfo(
        id=row.id,
        name=row.name,
        query=msgspec.convert(row.query, TicketQuery),
        created_at=row.created_at,
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
        version=row.version,
    )
