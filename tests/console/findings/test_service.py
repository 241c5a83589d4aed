"""Findings on tickets and categories, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime
import json
import time

import msgspec
import pytest

from deskside.console.errors import NotFound
from deskside.console.findings.schemas import Decision
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline.kinds import Change, FindingDecision, TextChange
from deskside.protocol import crypto
from deskside.protocol import messages as m
from tests.console.findings.test_rules import SNAPSHOTS


def recorded(edit: str = "") -> m.Snapshot:
    """The healthy recorded snapshot, taken now; ``edit`` "disk" fills its disk."""
    raw = json.loads((SNAPSHOTS / "linux-healthy.json").read_text())
    raw["taken_at"] = time.time()
    if edit == "disk":
        raw["disks"][0].update(percent=97.0, free=7 * 2**30)
        raw["uptime"] = 40 * 86400.0
    return msgspec.convert(raw, m.Snapshot)


async def ticket_with(store: Store, snapshot: m.Snapshot) -> int:
    key = crypto.public_key(crypto.generate_private_key())
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="test"
    )
    device = (await store.devices.enroll(key, token.token)).id
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(
            title="Cannot save files", description="Word says the disk is full", device_id=device
        ),
        actor="agent:x",
        source=TicketSource.AGENT,
        snapshot=snapshot,
    )
    return ticket.id


async def test_a_ticket_without_a_snapshot_has_no_findings(store: Store) -> None:
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d"), actor="cli", source=TicketSource.CLI
    )
    findings = await store.findings.for_ticket(ticket.id)
    assert (findings.snapshot_id, findings.findings) == (None, [])
    with pytest.raises(NotFound):
        await store.findings.for_ticket(ticket.id + 1)


async def test_findings_of_the_attached_snapshot_and_their_suggestions(store: Store) -> None:
    ticket_id = await ticket_with(store, recorded("disk"))
    findings = await store.findings.for_ticket(ticket_id)
    assert [v.finding.id for v in findings.findings] == ["disk-nearly-full:/", "long-uptime"]
    assert findings.suggested_category == "hardware/storage"
    assert findings.suggested_urgency == 2
    assert findings.findings[0].finding.evidence == {"disks.0.percent": 97.0}
    # A healthy snapshot attached later: its findings are the ticket's now.
    device = (await store.tickets.ticket(ticket_id)).device_id
    assert device is not None
    later = await store.snapshots.add_snapshot(device, recorded())
    await store.tickets.attach_snapshot(ticket_id, later.id, actor="user:alice")
    assert (await store.findings.for_ticket(ticket_id)).findings == []


async def test_accepting_a_finding_applies_its_suggestion(store: Store) -> None:
    ticket_id = await ticket_with(store, recorded("disk"))
    before = await store.tickets.ticket(ticket_id)
    view = await store.findings.decide(
        ticket_id, "disk-nearly-full:/", Decision.ACCEPTED, actor="user:alice"
    )
    assert view.decision is Decision.ACCEPTED
    after = await store.tickets.ticket(ticket_id)
    assert (after.category, after.urgency) == ("hardware/storage", 2)
    assert after.priority <= before.priority
    timeline = (await store.tickets.get_ticket(ticket_id)).timeline
    change, decision = timeline[-2].data, timeline[-1].data
    assert isinstance(change, Change)
    assert change.category == TextChange(from_="", to="hardware/storage")
    assert decision == FindingDecision(
        finding="disk-nearly-full:/",
        title="Disk / is 97% full (7.0 GiB free)",
        decision="accepted",
        category="hardware/storage",
        urgency=2,
    )
    assert timeline[-1].actor == "user:alice"
    findings = await store.findings.for_ticket(ticket_id)
    assert [(v.decision, v.decided_by) for v in findings.findings] == [
        (Decision.ACCEPTED, "user:alice"),
        (None, None),
    ]
    assert findings.suggested_category == "software/updates"  # the one left: long-uptime
    assert findings.suggested_urgency is None


async def test_dismissing_a_finding_changes_nothing_but_the_timeline(store: Store) -> None:
    ticket_id = await ticket_with(store, recorded("disk"))
    before = await store.tickets.ticket(ticket_id)
    await store.findings.decide(ticket_id, "disk-nearly-full:/", Decision.DISMISSED, actor="api:rt")
    after = await store.tickets.ticket(ticket_id)
    assert (after.category, after.urgency) == (before.category, before.urgency)
    last = (await store.tickets.get_ticket(ticket_id)).timeline[-1].data
    assert isinstance(last, FindingDecision)
    assert last.decision == "dismissed"
    findings = await store.findings.for_ticket(ticket_id)
    assert findings.findings[0].decision is Decision.DISMISSED
    assert findings.suggested_category == "software/updates"
    with pytest.raises(NotFound, match="no finding 'disk-full:/'"):
        await store.findings.decide(ticket_id, "disk-full:/", Decision.ACCEPTED, actor="api:rt")


async def test_categories_are_checked_and_filtered(store: Store) -> None:
    with pytest.raises(NotFound, match="no category 'printers'"):
        await store.tickets.create_ticket(
            NewTicket(title="t", description="d", category="printers"),
            actor="cli",
            source=TicketSource.CLI,
        )
    dns, _ = await store.tickets.create_ticket(
        NewTicket(title="dns", description="d", category="network/dns"),
        actor="cli",
        source=TicketSource.CLI,
    )
    other, _ = await store.tickets.create_ticket(
        NewTicket(title="other", description="d"), actor="cli", source=TicketSource.CLI
    )
    for wrong in ("network/", "network/dns/x", "hardware/dns", "Network"):
        with pytest.raises(NotFound):
            await store.tickets.update_ticket(other.id, TicketChanges(category=wrong), actor="cli")
    await store.tickets.update_ticket(other.id, TicketChanges(category="network"), actor="cli")
    listed = await store.tickets.list_tickets(category="network")
    assert [t.id for t in listed] == [other.id, dns.id]
    assert [t.id for t in await store.tickets.list_tickets(category="network/dns")] == [dns.id]
    assert await store.tickets.list_tickets(category="net%") == []
