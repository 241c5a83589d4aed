"""A terminal session as the API gives it."""

from __future__ import annotations

import datetime
import enum

import msgspec

from deskside.console.api import Count, ExitCode, SmallId

__all__ = ["TerminalStatus", "TerminalView"]


class TerminalStatus(enum.StrEnum):
    """Where a terminal session is."""

    OPEN = "open"
    CLOSED = "closed"
    REFUSED = "refused"
    FAILED = "failed"


class TerminalView(msgspec.Struct, frozen=True, kw_only=True):
    """A terminal session on a device."""

    id: str
    ticket_id: SmallId
    device_id: str
    requested_by: str
    started_at: datetime.datetime
    ended_at: datetime.datetime | None
    status: TerminalStatus
    exit_code: ExitCode | None
    error: str
    transcript_bytes: Count
    transcript_truncated: bool
    consent: str = ""  # how the agent allowed it; empty until the shell started
