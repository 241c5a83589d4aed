"""What the tickets API takes and gives (also its OpenAPI schema)."""

from __future__ import annotations

import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from deskside.console.api import Count, SmallId
from deskside.console.findings.schemas import TicketFindings
from deskside.console.timeline.kinds import TimelineEntry

from .lifecycle import TicketStatus

__all__ = [
    "AttachDiagnostics",
    "Body",
    "Level",
    "NewNote",
    "NewTicket",
    "Priority",
    "ShortName",
    "TicketChanges",
    "TicketDetail",
    "TicketView",
    "Title",
]

Level = Annotated[int, Meta(ge=1, le=3, description="1 = high, 2 = medium, 3 = low")]
Priority = Annotated[int, Meta(ge=1, le=9, description="1 = most urgent")]
Title = Annotated[str, Meta(min_length=1, max_length=256)]
Body = Annotated[str, Meta(min_length=1, max_length=65536)]
ShortName = Annotated[str, Meta(max_length=128)]


class NewTicket(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A ticket to open."""

    title: Title
    description: Body
    requester: Annotated[str, Meta(max_length=256)] = ""
    device_id: Annotated[str, Meta(max_length=32)] | None = None
    category: Annotated[str, Meta(max_length=64)] = ""
    impact: Level = 3
    urgency: Level = 2
    group: ShortName | None = None


class TicketChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields of a ticket to change; absent fields stay as they are."""

    title: Title | None = None
    status: TicketStatus | None = None
    assignee: Annotated[str, Meta(max_length=64)] | None = None
    group: ShortName | None = None
    category: Annotated[str, Meta(max_length=64)] | None = None
    impact: Level | None = None
    urgency: Level | None = None


class NewNote(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A note for a ticket's timeline."""

    text: Body


class AttachDiagnostics(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Attach diagnostics to a ticket: the device's latest snapshot, or a fresh one."""

    fresh: bool = False
    timeout: Annotated[float, Meta(ge=1, le=120)] = 30.0


class TicketView(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket's fields."""

    id: SmallId
    title: str
    description: str
    requester: str
    device_id: str | None
    category: str
    impact: Level
    urgency: Level
    priority: Priority
    status: TicketStatus
    assignee: str | None
    group: str | None
    source: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    response_due: datetime.datetime
    resolution_due: datetime.datetime
    first_response_at: datetime.datetime | None
    resolved_at: datetime.datetime | None
    closed_at: datetime.datetime | None
    reopen_count: Count


class TicketDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket with its whole timeline, oldest first."""

    ticket: TicketView
    timeline: list[TimelineEntry]
    # What the rules find in the newest snapshot attached (``findings/``).
    findings: TicketFindings | None = None
