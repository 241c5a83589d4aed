"""What the findings API gives and takes (also its OpenAPI schema)."""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from deskside.console.api import Id

__all__ = [
    "CategoryView",
    "Decision",
    "Finding",
    "FindingDecisionRequest",
    "FindingView",
    "RuleView",
    "Severity",
    "TicketFindings",
]

Urgency = Annotated[int, Meta(ge=1, le=3, description="1 = high, 2 = medium, 3 = low")]


class Severity(enum.StrEnum):
    """How bad a finding is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Decision(enum.StrEnum):
    """What the technician made of a finding's suggestion."""

    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """A known problem seen in a snapshot, as a rule names it."""

    # The rule's id, and for a rule over a list the item's key: "disk-nearly-full:/".
    id: str
    rule: str
    severity: Severity
    title: str
    # The value of each path the rule read, under its full path in the snapshot.
    evidence: dict[str, Any]
    # What the rule suggests for the ticket; the technician accepts or dismisses it.
    category: str | None = None
    urgency: Urgency | None = None


class FindingView(msgspec.Struct, frozen=True, kw_only=True):
    """A finding on a ticket, with the technician's decision if there is one."""

    finding: Finding
    decision: Decision | None = None
    decided_by: str | None = None


class TicketFindings(msgspec.Struct, frozen=True, kw_only=True):
    """The findings of the newest snapshot attached to a ticket (none without one)."""

    ticket_id: Id
    snapshot_id: Id | None
    taken_at: datetime.datetime | None
    findings: list[FindingView]
    # The most severe undecided finding's category, and the highest undecided urgency.
    suggested_category: str | None = None
    suggested_urgency: Urgency | None = None


class FindingDecisionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Accept or dismiss what a finding of the ticket suggests."""

    finding: Annotated[str, Meta(min_length=1, max_length=256)]
    decision: Decision


class RuleView(msgspec.Struct, frozen=True, kw_only=True):
    """A rule in force."""

    id: str
    severity: Severity
    title: str
    description: str
    category: str | None
    urgency: Urgency | None


class CategoryView(msgspec.Struct, frozen=True, kw_only=True):
    """A category a ticket may have: ``ID`` or ``ID/SUB``."""

    name: str
    title: str
