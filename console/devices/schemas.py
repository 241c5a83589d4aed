"""What the devices API gives: devices, snapshots, enrollment tokens."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec

from deskside.console.api import Id

__all__ = ["DeviceView", "EnrollmentTokenCreated", "SnapshotInfo", "SnapshotSchema", "SnapshotView"]

# The version of a snapshot's document (``deskside.protocol.messages.Snapshot``).
SnapshotSchema = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


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
    # Whether its agent has a display to capture (None: its agent does not say).
    display: bool | None = None


class SnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot without its content."""

    id: Id
    device_id: str
    taken_at: datetime.datetime
    received_at: datetime.datetime
    schema: SnapshotSchema


class SnapshotView(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot with its content (see ``deskside.protocol.messages.Snapshot``)."""

    id: Id
    device_id: str
    taken_at: datetime.datetime
    received_at: datetime.datetime
    schema: SnapshotSchema
    snapshot: dict[str, Any]


class EnrollmentTokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new enrollment token; the token itself is shown this once."""

    id: int
    token: str
    expires_at: datetime.datetime
    uses: int
    group: str | None
