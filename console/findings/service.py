"""Findings on tickets: the rules run over the newest snapshot a ticket has.

Findings are not stored: they are computed each time they are asked for (``ticket
show``, the ticket's API view, ``/findings``), from the newest snapshot attached to
the ticket and the rules in force, so a rule an admin adds or tunes applies to
tickets already open. What is stored is what the technician decided: accepting or
dismissing a finding's suggestion is a ``finding`` entry on the ticket's timeline
(its id, title and the suggestion), and accepting one with a category or an urgency
changes the ticket (a ``change`` entry, as any change). A decision holds for the
finding's id on this ticket, through later snapshots.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from msgspec import UNSET

from deskside.console.devices.schemas import SnapshotView
from deskside.console.errors import NotFound
from deskside.console.tickets.schemas import TicketChanges, TicketDetail, TicketView
from deskside.console.timeline import kinds
from deskside.console.timeline.kinds import TimelineEntry

from .rules import Rules
from .schemas import Decision, Finding, FindingView, TicketFindings

__all__ = ["FindingService", "SnapshotReader", "TicketWriter"]


@runtime_checkable
class TicketWriter(Protocol):
    """What findings read and write of tickets (the tickets' repository)."""

    async def get_ticket(self, ticket_id: int) -> TicketDetail:
        """A ticket and its whole timeline."""
        ...

    async def update_ticket(
        self, ticket_id: int, changes: TicketChanges, *, actor: str
    ) -> TicketView:
        """Change a ticket's fields, recorded on its timeline."""
        ...

    async def add_timeline_event(
        self, ticket_id: int, entry: kinds.EventData, *, actor: str
    ) -> TimelineEntry:
        """Record something on a ticket's timeline."""
        ...


@runtime_checkable
class SnapshotReader(Protocol):
    """Snapshots with their content (the devices' snapshot repository)."""

    async def get_snapshot(self, snapshot_id: int) -> SnapshotView:
        """One snapshot with its content."""
        ...


def document_of(snapshot: SnapshotView) -> dict[str, Any]:
    """What the rules read: the agent's document, and what the console knows of it."""
    document = dict(snapshot.snapshot)
    delay = (snapshot.received_at - snapshot.taken_at).total_seconds()
    document["console"] = {"delay_seconds": round(delay, 1)}
    return document


class FindingService:
    """The rules in force, applied to tickets' snapshots."""

    def __init__(self, rules: Rules, tickets: TicketWriter, snapshots: SnapshotReader) -> None:
        self.rules = rules
        self._tickets = tickets
        self._snapshots = snapshots

    async def for_ticket(self, ticket_id: int) -> TicketFindings:
        """The findings of the ticket's newest snapshot, with what was decided of each."""
        detail = await self._tickets.get_ticket(ticket_id)
        return await self._findings(detail)

    async def _findings(self, detail: TicketDetail) -> TicketFindings:
        ticket_id = detail.ticket.id
        attached = [e.snapshot_id for e in detail.timeline if e.snapshot_id is not None]
        if not attached:
            return TicketFindings(ticket_id=ticket_id, snapshot_id=None, taken_at=None, findings=[])
        snapshot = await self._snapshots.get_snapshot(attached[-1])
        decided: dict[str, tuple[Decision, str]] = {}
        for entry in detail.timeline:
            if isinstance(entry.data, kinds.FindingDecision):
                try:
                    decided[entry.data.finding] = (Decision(entry.data.decision), entry.actor)
                except ValueError:
                    continue  # a decision this console does not know: as if none
        views = []
        for finding in self.rules.evaluate(document_of(snapshot)):
            decision, by = decided.get(finding.id, (None, None))
            views.append(FindingView(finding=finding, decision=decision, decided_by=by))
        open_ = [v.finding for v in views if v.decision is None]
        urgencies = [f.urgency for f in open_ if f.urgency is not None]
        return TicketFindings(
            ticket_id=ticket_id,
            snapshot_id=snapshot.id,
            taken_at=snapshot.taken_at,
            findings=views,
            suggested_category=next((f.category for f in open_ if f.category), None),
            suggested_urgency=min(urgencies) if urgencies else None,
        )

    async def decide(
        self, ticket_id: int, finding_id: str, decision: Decision, *, actor: str
    ) -> FindingView:
        """Accept or dismiss a finding of the ticket; accepting applies its suggestion.

        ``NotFound`` if the ticket's newest snapshot has no such finding.
        """
        current = await self.for_ticket(ticket_id)
        found = next((v.finding for v in current.findings if v.finding.id == finding_id), None)
        if found is None:
            raise NotFound(f"ticket #{ticket_id} has no finding {finding_id!r}")
        if decision is Decision.ACCEPTED and (found.category or found.urgency):
            await self._tickets.update_ticket(
                ticket_id,
                TicketChanges(category=found.category, urgency=found.urgency),
                actor=actor,
            )
        await self._tickets.add_timeline_event(
            ticket_id,
            kinds.FindingDecision(
                finding=found.id,
                title=found.title,
                decision=str(decision),
                category=found.category or UNSET,
                urgency=found.urgency or UNSET,
            ),
            actor=actor,
        )
        return FindingView(finding=found, decision=decision, decided_by=actor)

    def suggestion_keys(self, findings: TicketFindings) -> list[Finding]:
        """The findings not dismissed: what knowledge-base suggestions match."""
        return [v.finding for v in findings.findings if v.decision is not Decision.DISMISSED]
