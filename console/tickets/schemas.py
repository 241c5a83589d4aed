"""What the tickets API takes and gives (also its OpenAPI schema)."""

from __future__ import annotations

import datetime
import enum
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
    "BulkChange",
    "BulkOutcome",
    "BulkResult",
    "BulkResults",
    "Level",
    "NewNote",
    "NewSavedView",
    "NewTicket",
    "Priority",
    "QueueSort",
    "SavedViewInfo",
    "ShortName",
    "SortOrder",
    "TicketChanges",
    "TicketDetail",
    "TicketPage",
    "TicketQuery",
    "TicketView",
    "Title",
    "Version",
]

Level = Annotated[int, Meta(ge=1, le=3, description="1 = high, 2 = medium, 3 = low")]
Priority = Annotated[int, Meta(ge=1, le=9, description="1 = most urgent")]
Title = Annotated[str, Meta(min_length=1, max_length=256)]
Body = Annotated[str, Meta(min_length=1, max_length=65536)]
ShortName = Annotated[str, Meta(max_length=128)]
Version = Annotated[int, Meta(ge=1, le=2**31 - 1, description="A ticket's row version")]


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
    # The version the editor saw (``TicketView.version``): if the ticket changed since,
    # the change is refused (409, the current ticket in ``extra.ticket``). Without it
    # the change applies to whatever the ticket is now.
    version: Version | None = None


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
    version: Version


class TicketDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket with its whole timeline, oldest first."""

    ticket: TicketView
    timeline: list[TimelineEntry]
    # What the rules find in the newest snapshot attached (``findings/``).
    findings: TicketFindings | None = None


class QueueSort(enum.StrEnum):
    """What the queue can be sorted by."""

    NUMBER = "number"
    PRIORITY = "priority"
    UPDATED = "updated"
    SLA_DUE = "sla_due"  # the resolution due time


class SortOrder(enum.StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


SearchText = Annotated[str, Meta(min_length=1, max_length=256)]
QueueLimit = Annotated[int, Meta(ge=1, le=500)]
QueueOffset = Annotated[int, Meta(ge=0, le=10_000_000)]


class TicketQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A queue: which tickets, in which order. Every filter given must hold, so that
    filters that contradict each other (``unassigned`` and an ``assignee``) select
    nothing, as ``mine`` does for a service token, which has no tickets of its own.

    It is also what a saved view keeps (without ``limit`` and ``offset``).
    """

    statuses: list[TicketStatus] = msgspec.field(default_factory=list)
    priority: Priority | None = None
    group: ShortName | None = None
    assignee: Annotated[str, Meta(max_length=64)] | None = None
    # The caller's own tickets (a technician's token or ``--as``).
    mine: bool = False
    unassigned: bool = False
    # Open tickets whose response or resolution is due within the hour, or overdue.
    breaching: bool = False
    device_id: Annotated[str, Meta(max_length=32)] | None = None
    # Words in the title, description, requester, device id or device host name.
    text: SearchText | None = None
    # A category "ID" (its subcategories too) or "ID/SUB".
    category: Annotated[str, Meta(max_length=64)] | None = None
    sort: QueueSort = QueueSort.NUMBER
    order: SortOrder = SortOrder.DESC
    limit: QueueLimit = 50
    offset: QueueOffset = 0


class TicketPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a queue and how many tickets the whole queue has."""

    tickets: list[TicketView]
    total: Count
    limit: QueueLimit
    offset: QueueOffset


ViewName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NewSavedView(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A queue to keep under a name, for the technician who saves it."""

    name: ViewName
    query: TicketQuery


class SavedViewInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A technician's saved queue."""

    id: SmallId
    name: str
    query: TicketQuery
    created_at: datetime.datetime


TicketIds = Annotated[list[SmallId], Meta(min_length=1, max_length=500)]


class BulkChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The same change to many tickets: each one changed (and recorded) on its own."""

    ids: TicketIds
    status: TicketStatus | None = None
    assignee: Annotated[str, Meta(max_length=64)] | None = None
    group: ShortName | None = None


class BulkOutcome(enum.StrEnum):
    """What a bulk change did to one ticket."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # it was so already
    REFUSED = "refused"  # the change is not allowed for this ticket (``detail`` says why)
    NOT_FOUND = "not_found"


class BulkResult(msgspec.Struct, frozen=True, kw_only=True):
    """One ticket's outcome in a bulk change."""

    id: SmallId
    outcome: BulkOutcome
    detail: str = ""
    ticket: TicketView | None = None


class BulkResults(msgspec.Struct, frozen=True, kw_only=True):
    """Per ticket, in the order asked, what happened."""

    results: list[BulkResult]
