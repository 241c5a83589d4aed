"""Writing a ticket's timeline: every capability records its steps through here.

An entry is one of the typed kinds of ``kinds.py``, written in the transaction of
the action it records; a ``TimelineEntryAdded`` event is queued for after the
commit. ``add`` is for ORM sessions, ``add_sync`` for the plain statements of the
paths a technician waits on (``Database.run``). ``typed`` turns a kind and its
keys, as a relay gathers them, into the kind's struct, refusing what does not fit.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from deskside.console.events import DomainEvent

from .events import TimelineEntryAdded
from .kinds import EventData, TimelineEntry, Unknown, decode, encode, from_row
from .models import TicketEvent

__all__ = ["add", "add_sync", "typed", "view"]

_INSERT: Final = insert(TicketEvent)


def typed(kind: str, data: Mapping[str, Any]) -> EventData:
    """The struct of ``kind`` holding ``data``; ``ValueError`` if it does not fit."""
    entry = decode(kind, data)
    if isinstance(entry, Unknown):
        raise ValueError(f"not a {kind} timeline entry: {sorted(data)}")
    return entry


def view(row: TicketEvent) -> TimelineEntry:
    """The API's view of a stored entry, its data typed."""
    return from_row(
        id=row.id,
        at=row.at,
        actor=row.actor,
        kind=row.kind,
        data=row.data,
        snapshot_id=row.snapshot_id,
    )


async def add(
    session: AsyncSession,
    ticket_id: int,
    entry: EventData,
    *,
    actor: str,
    at: datetime.datetime,
    events: list[DomainEvent],
    snapshot_id: int | None = None,
) -> TimelineEntry:
    """Add an entry in ``session``'s transaction; its view."""
    kind, data = encode(entry)
    row = TicketEvent(
        ticket_id=ticket_id, at=at, kind=str(kind), actor=actor, data=data, snapshot_id=snapshot_id
    )
    session.add(row)
    await session.flush()
    added = TimelineEntry(
        id=row.id, at=at, actor=actor, kind=kind, data=entry, snapshot_id=snapshot_id
    )
    events.append(TimelineEntryAdded(ticket_id=ticket_id, entry=added))
    return added


def add_sync(
    conn: Connection,
    ticket_id: int,
    entry: EventData,
    *,
    actor: str,
    at: datetime.datetime,
    events: list[DomainEvent],
) -> None:
    """Add an entry in one plain INSERT, on a transaction run by ``Database.run``."""
    kind, data = encode(entry)
    result = conn.execute(
        _INSERT, {"ticket_id": ticket_id, "at": at, "kind": str(kind), "actor": actor, "data": data}
    )
    (entry_id,) = result.inserted_primary_key or (0,)
    added = TimelineEntry(id=entry_id, at=at, actor=actor, kind=kind, data=entry)
    events.append(TimelineEntryAdded(ticket_id=ticket_id, entry=added))
