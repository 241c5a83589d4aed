"""Writing a ticket's timeline: every capability records its steps through here.

An entry is written in the transaction of the action it records, and a
``TimelineEntryAdded`` event is queued for after the commit. ``add`` is for ORM
sessions, ``add_sync`` for the plain statements of the paths a technician waits on
(``Database.run``).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from deskside.console.events import DomainEvent

from .events import TimelineEntryAdded
from .models import TicketEvent
from .schemas import EventView

__all__ = ["add", "add_sync", "view"]

_INSERT: Final = insert(TicketEvent)


def view(row: TicketEvent) -> EventView:
    """The API's view of a stored entry."""
    return EventView(
        id=row.id,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        data=dict(row.data),
        snapshot_id=row.snapshot_id,
    )


async def add(
    session: AsyncSession,
    ticket_id: int,
    kind: str,
    *,
    actor: str,
    data: dict[str, Any],
    at: datetime.datetime,
    events: list[DomainEvent],
    snapshot_id: int | None = None,
) -> EventView:
    """Add an entry in ``session``'s transaction; its view."""
    row = TicketEvent(
        ticket_id=ticket_id, at=at, kind=kind, actor=actor, data=data, snapshot_id=snapshot_id
    )
    session.add(row)
    await session.flush()
    entry = view(row)
    events.append(TimelineEntryAdded(ticket_id=ticket_id, entry=entry))
    return entry


def add_sync(
    conn: Connection,
    ticket_id: int,
    kind: str,
    *,
    actor: str,
    data: dict[str, Any],
    at: datetime.datetime,
    events: list[DomainEvent],
) -> None:
    """Add an entry in one plain INSERT, on a transaction run by ``Database.run``."""
    result = conn.execute(
        _INSERT, {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor, "data": data}
    )
    (entry_id,) = result.inserted_primary_key or (0,)
    entry = EventView(id=entry_id, at=at, kind=kind, actor=actor, data=data)
    events.append(TimelineEntryAdded(ticket_id=ticket_id, entry=entry))
