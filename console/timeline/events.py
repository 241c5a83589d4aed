"""The timeline's domain events."""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

from .kinds import TimelineEntry

__all__ = ["TimelineEntryAdded"]


class TimelineEntryAdded(DomainEvent, frozen=True, kw_only=True, tag="timeline.entry_added"):
    """An entry was added to a ticket's timeline (topic: the ticket's number)."""

    topic_field: ClassVar[str | None] = "ticket_id"

    ticket_id: int
    entry: TimelineEntry
