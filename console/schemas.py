"""What the console's API takes and gives: msgspec Structs, also its OpenAPI schema.

The store returns these views, the REST API returns them as JSON, and the CLI
prints them, so all three agree on every field.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "ApiTokenCreated",
    "AttachDiagnostics",
    "DeviceView",
    "EnrollmentTokenCreated",
    "EventView",
    "NewNote",
    "NewTicket",
    "Role",
    "RunRunbook",
    "RunbookRunView",
    "ShellView",
    "SnapshotInfo",
    "SnapshotView",
    "TicketChanges",
    "TicketDetail",
    "TicketStatus",
    "TicketView",
]


class TicketStatus(enum.StrEnum):
    """Where a ticket is in its life."""

    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_USER = "waiting_on_user"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


class Role(enum.StrEnum):
    """What a technician account may do."""

    ADMIN = "admin"
    TECHNICIAN = "technician"


Level = Annotated[int, Meta(ge=1, le=3, description="1 = high, 2 = medium, 3 = low")]
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
    timeout: Annotated[float, Meta(gt=0, le=120)] = 30.0


class DeviceView(msgspec.Struct, frozen=True, kw_only=True):
    """An enrolled device."""

    id: str
    hostname: str
    os_family: str
    os_name: str
    os_release: str
    arch: str
    agent_version: str
    group: str | None
    enrolled_at: datetime.datetime
    online: bool
    last_seen: datetime.datetime | None
    metrics: dict[str, Any] | None
    revoked: bool
    public_key: str  # base64


class SnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot without its content."""

    id: int
    device_id: str
    taken_at: datetime.datetime
    received_at: datetime.datetime
    schema: int


class SnapshotView(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot with its content (see ``deskside.protocol.messages.Snapshot``)."""

    id: int
    device_id: str
    taken_at: datetime.datetime
    received_at: datetime.datetime
    schema: int
    snapshot: dict[str, Any]


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a ticket's timeline."""

    id: int
    at: datetime.datetime
    kind: Literal["created", "diagnostics", "status", "note", "assignment", "change"] | str
    actor: str
    data: dict[str, Any]
    snapshot_id: int | None = None


class TicketView(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket's fields."""

    id: int
    title: str
    description: str
    requester: str
    device_id: str | None
    category: str
    impact: int
    urgency: int
    priority: int
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
    reopen_count: int


class TicketDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket with its whole timeline, oldest first."""

    ticket: TicketView
    timeline: list[EventView]


class EnrollmentTokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new enrollment token; the token itself is shown this once."""

    id: int
    token: str
    expires_at: datetime.datetime
    uses: int
    group: str | None


class ApiTokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new API token; the token itself is shown this once."""

    id: int
    name: str
    token: str
    scopes: list[str]
    expires_at: datetime.datetime | None


class NewCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A command to run on the ticket's device (or another one named here)."""

    argv: Annotated[
        list[Annotated[str, Meta(max_length=32768)]], Meta(min_length=0, max_length=1024)
    ]
    shell: bool = False
    timeout: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    device_id: Annotated[str, Meta(max_length=32)] | None = None
    # A script named in the device's own policy ([commands.scripts]), run with
    # ``argv`` appended; without it ``argv`` must not be empty.
    script: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None


class CommandView(msgspec.Struct, frozen=True, kw_only=True):
    """A command and how it went."""

    id: str
    ticket_id: int
    device_id: str
    argv: list[str]
    shell: bool
    timeout: float
    requested_by: str
    requested_at: datetime.datetime
    status: Literal["pending", "running", "finished", "refused", "timed_out", "cancelled", "failed"]
    consent: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    exit_code: int | None
    duration: float | None
    error: str
    output_truncated: bool
    output_bytes: int
    runbook_run: str | None = None
    runbook_step: int | None = None
    script: str | None = None


class OutputChunk(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of a command's output."""

    seq: int
    stream: Literal["stdout", "stderr"]
    data: bytes


class AuditView(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the audit log."""

    id: int
    at: datetime.datetime
    actor: str
    action: str
    data: dict[str, Any]
    hash: str


class ShellView(msgspec.Struct, frozen=True, kw_only=True):
    """A terminal session on a device."""

    id: str
    ticket_id: int
    device_id: str
    requested_by: str
    started_at: datetime.datetime
    ended_at: datetime.datetime | None
    status: str  # open, closed, refused, failed
    exit_code: int | None
    error: str
    transcript_bytes: int
    transcript_truncated: bool
    consent: str = ""  # how the agent allowed it; empty until the shell started


class RunRunbook(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Run a runbook on a ticket's device (or another one named here)."""

    params: dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=256)]] = {}
    device_id: Annotated[str, Meta(max_length=32)] | None = None


class RunbookRunView(msgspec.Struct, frozen=True, kw_only=True):
    """A runbook run: the commands of its steps so far, and whether it has ended."""

    id: str
    runbook: str
    done: bool
    commands: list[CommandView]
