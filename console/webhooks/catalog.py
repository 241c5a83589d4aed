"""The public event types of Deskside's webhooks, and the payload of each.

The console's domain events are its own and may change; what a ticket system
receives is this catalogue: stable names (``ticket.created``) and documented,
versioned JSON payloads. Every message has the same envelope::

    {"type": "ticket.created", "version": 1, "timestamp": "2026-12-03T16:00:00Z",
     "data": {...the payload of its type...}}

``version`` changes only when a payload loses or changes a field; new fields may
appear in any version, so a receiver ignores fields it does not know.

``outbound`` turns a domain event into the messages it makes (none, one, or two:
a timeline entry that attaches diagnostics is also ``ticket.diagnostics_attached``),
each with the ticket and device it concerns, for filtering by device group and
for keeping one ticket's messages in order.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final

import msgspec

from deskside.console.commands.events import CommandFinished
from deskside.console.commands.schemas import CommandView
from deskside.console.devices.events import (
    DeviceEnrolled,
    DeviceOffline,
    DeviceOnline,
    DeviceRevoked,
    SnapshotAdded,
)
from deskside.console.events import DomainEvent
from deskside.console.tickets.events import TicketChanged, TicketCreated
from deskside.console.tickets.schemas import TicketView
from deskside.console.timeline import kinds
from deskside.console.timeline.events import TimelineEntryAdded

__all__ = [
    "EVENT_TYPES",
    "PAYLOAD_VERSION",
    "EventType",
    "Message",
    "Outbound",
    "encode_message",
    "outbound",
]

# The envelope's ``version``: raised when a payload loses or changes a field.
PAYLOAD_VERSION: Final = 1


class EventType(enum.StrEnum):
    """What an endpoint may subscribe to."""

    TICKET_CREATED = "ticket.created"
    TICKET_CHANGED = "ticket.changed"
    TIMELINE_ENTRY = "ticket.timeline_entry"
    DIAGNOSTICS_ATTACHED = "ticket.diagnostics_attached"
    COMMAND_FINISHED = "command.finished"
    SCREEN_SESSION_ENDED = "screen.session_ended"
    DEVICE_ENROLLED = "device.enrolled"
    DEVICE_ONLINE = "device.online"
    DEVICE_OFFLINE = "device.offline"
    DEVICE_REVOKED = "device.revoked"
    SNAPSHOT_ADDED = "device.snapshot_added"
    WEBHOOK_TEST = "webhook.test"  # sent by ``webhook test`` to one endpoint, on demand


EVENT_TYPES: Final = frozenset(str(t) for t in EventType)


# -- Payloads (the ``data`` of each type) ----------------------------------------------------


class TicketPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``ticket.created``: the ticket as the REST API shows it."""

    ticket: TicketView


class TicketChangedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``ticket.changed``: the ticket after the change, and the names of the fields
    that changed."""

    ticket: TicketView
    fields: list[str]


class TimelinePayload(msgspec.Struct, frozen=True, kw_only=True):
    """``ticket.timeline_entry`` and ``ticket.diagnostics_attached``: the entry as
    ``GET /api/v1/tickets/{id}`` shows it (``entry.snapshot_id``: the snapshot
    attached, fetched with ``GET /api/v1/devices/{id}/snapshots/{snapshot_id}``)."""

    ticket_id: int
    entry: kinds.TimelineEntry


class CommandPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``command.finished``: the command, its status and exit code."""

    command: CommandView


class ScreenSessionPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``screen.session_ended``: a screen session ended, or was refused."""

    ticket_id: int
    session_id: str
    device_id: str
    reason: str
    refused: bool
    # Seconds the session lasted, if it had started.
    duration: float | None = None


class DevicePayload(msgspec.Struct, frozen=True, kw_only=True):
    """``device.enrolled``, ``device.online``, ``device.offline``, ``device.revoked``."""

    device_id: str


class SnapshotPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``device.snapshot_added``: a diagnostics snapshot of the device was kept."""

    device_id: str
    snapshot_id: int


class TestPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``webhook.test``: sent on demand, to check an endpoint."""

    endpoint_id: int
    text: str


Payload = (
    TicketPayload
    | TicketChangedPayload
    | TimelinePayload
    | CommandPayload
    | ScreenSessionPayload
    | DevicePayload
    | SnapshotPayload
    | TestPayload
)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every webhook."""

    type: str
    version: int
    timestamp: datetime.datetime
    data: Payload


class Outbound(msgspec.Struct, frozen=True, kw_only=True):
    """A message a domain event makes, with what it concerns."""

    type: EventType
    data: Payload
    # The ticket it concerns: one ticket's messages reach an endpoint in order.
    ticket_id: int | None = None
    # The device it concerns, for endpoints limited to a device group.
    device_id: str | None = None

    @property
    def ordering_key(self) -> str | None:
        """Messages with the same key are delivered to an endpoint one after another."""
        if self.ticket_id is not None:
            return f"ticket:{self.ticket_id}"
        if self.device_id is not None:
            return f"device:{self.device_id}"
        return None


_encoder = msgspec.json.Encoder()


def encode_message(kind: EventType, data: Payload, at: datetime.datetime) -> bytes:
    """The body of a message: its JSON envelope."""
    return _encoder.encode(
        Message(type=str(kind), version=PAYLOAD_VERSION, timestamp=at, data=data)
    )


def _timeline(event: TimelineEntryAdded) -> list[Outbound]:
    entry = event.entry
    payload = TimelinePayload(ticket_id=event.ticket_id, entry=entry)
    out = [Outbound(type=EventType.TIMELINE_ENTRY, data=payload, ticket_id=event.ticket_id)]
    data = entry.data
    if isinstance(data, kinds.Diagnostics):
        out.append(
            Outbound(type=EventType.DIAGNOSTICS_ATTACHED, data=payload, ticket_id=event.ticket_id)
        )
    elif isinstance(data, kinds.ScreenEnded | kinds.ScreenRefused):
        device = data.device if isinstance(data.device, str) else ""
        duration = getattr(data, "duration", None)
        out.append(
            Outbound(
                type=EventType.SCREEN_SESSION_ENDED,
                data=ScreenSessionPayload(
                    ticket_id=event.ticket_id,
                    session_id=data.screen_session,
                    device_id=device,
                    reason=str(data.reason),
                    refused=isinstance(data, kinds.ScreenRefused),
                    duration=duration if isinstance(duration, float | int) else None,
                ),
                ticket_id=event.ticket_id,
                device_id=device or None,
            )
        )
    return out


_DEVICE_TYPES: Final[dict[type[DomainEvent], EventType]] = {
    DeviceEnrolled: EventType.DEVICE_ENROLLED,
    DeviceOnline: EventType.DEVICE_ONLINE,
    DeviceOffline: EventType.DEVICE_OFFLINE,
    DeviceRevoked: EventType.DEVICE_REVOKED,
}

# The domain events that make messages (the dispatcher wakes up on them).
SOURCES: Final[tuple[type[DomainEvent], ...]] = (
    TicketCreated,
    TicketChanged,
    TimelineEntryAdded,
    CommandFinished,
    SnapshotAdded,
    *_DEVICE_TYPES,
)


def outbound(event: DomainEvent) -> list[Outbound]:
    """The messages ``event`` makes (none for events no webhook carries)."""
    if isinstance(event, TicketCreated):
        return [
            Outbound(
                type=EventType.TICKET_CREATED,
                data=TicketPayload(ticket=event.ticket),
                ticket_id=event.ticket_id,
                device_id=event.ticket.device_id,
            )
        ]
    if isinstance(event, TicketChanged):
        return [
            Outbound(
                type=EventType.TICKET_CHANGED,
                data=TicketChangedPayload(ticket=event.ticket, fields=list(event.fields)),
                ticket_id=event.ticket_id,
                device_id=event.ticket.device_id,
            )
        ]
    if isinstance(event, TimelineEntryAdded):
        return _timeline(event)
    if isinstance(event, CommandFinished):
        return [
            Outbound(
                type=EventType.COMMAND_FINISHED,
                data=CommandPayload(command=event.command),
                ticket_id=event.command.ticket_id,
                device_id=event.command.device_id,
            )
        ]
    if isinstance(event, SnapshotAdded):
        return [
            Outbound(
                type=EventType.SNAPSHOT_ADDED,
                data=SnapshotPayload(device_id=event.device_id, snapshot_id=event.snapshot_id),
                device_id=event.device_id,
            )
        ]
    kind = _DEVICE_TYPES.get(type(event))
    if kind is not None:
        device_id = str(getattr(event, "device_id", ""))
        return [Outbound(type=kind, data=DevicePayload(device_id=device_id), device_id=device_id)]
    return []
