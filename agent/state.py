"""The daemon's state on disk: ``status.json`` and ``tickets.json``.

``status.json`` is how ``deskside-agent status`` (another process) learns what the
daemon is doing. The daemon rewrites it atomically whenever something changes;
writes happen on a worker thread, one after the other in the order they were
asked for, so the file on disk always ends with the newest status.

``tickets.json`` remembers which ticket each help request was filed as.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil  # type: ignore[import-untyped]

from deskside.protocol.errors import DesksideError

from .files import ensure_private_dir, write_atomic

__all__ = [
    "DaemonStatus",
    "StatusRecorder",
    "TicketRecord",
    "daemon_alive",
    "read_status",
    "read_tickets",
    "record_ticket",
]

# The ticket log keeps this many newest entries.
_MAX_TICKETS = 100
# Largest state file read back; anything bigger is not ours.
_MAX_STATE_FILE = 1 << 20
# A process whose start time differs more than this from the recorded one is another.
_START_TOLERANCE = 2.0
# How often ``StatusRecorder.touch`` writes the file at most, seconds.
TOUCH_INTERVAL = 5.0

logger = logging.getLogger(__name__)


class DaemonStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the daemon is doing, as written to ``status.json``. Times: epoch seconds."""

    pid: int
    started_at: float
    running: bool = True
    connected: bool = False
    console_url: str = ""
    device_id: str = ""
    connected_since: float | None = None
    last_contact: float | None = None
    last_error: str | None = None
    updated_at: float = 0.0


class TicketRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A help request and the ticket the console filed it as."""

    request_id: str
    ticket_id: int | None
    filed_at: float


def _read_small(path: Path) -> bytes | None:
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_STATE_FILE + 1)
    except OSError:
        return None
    return data if len(data) <= _MAX_STATE_FILE else None


def read_status(path: Path) -> DaemonStatus | None:
    """The status the daemon last wrote, or None if there is none (or it is unreadable)."""
    data = _read_small(path)
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=DaemonStatus)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def daemon_alive(status: DaemonStatus) -> bool:
    """True if the daemon that wrote ``status`` is still running.

    The process must exist and have started when the status says, so a pid reused
    by another program after a crash does not count.
    """
    if not status.running or status.pid <= 0:
        return False
    try:
        process = psutil.Process(status.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = float(process.create_time())
    except (psutil.Error, OSError):
        return False
    return abs(created - status.started_at) <= _START_TOLERANCE


class StatusRecorder:
    """Keeps the daemon's status and writes every change to ``status.json``."""

    def __init__(self, path: Path, status: DaemonStatus) -> None:
        self._path = path
        # The newest status; what the file will hold once pending writes are done.
        self.status = status
        # The last write scheduled; the next one waits for it, so order is kept.
        self._last_write: asyncio.Future[None] | None = None
        # When the last write was scheduled (monotonic), for ``touch``.
        self._written_at = -TOUCH_INTERVAL
        # The last write failed (said once until one succeeds again).
        self._failing = False

    async def update(self, **changes: Any) -> None:
        """Apply ``changes`` (fields of ``DaemonStatus``) and write the file.

        The write goes on if the caller is cancelled, so the final status written
        at shutdown is always the last one on disk. Write errors are logged, not
        raised: the status file is informative and must not stop the daemon.
        """
        self.status = msgspec.structs.replace(self.status, updated_at=time.time(), **changes)
        self._written_at = time.monotonic()
        data = msgspec.json.encode(self.status)
        previous = self._last_write
        write = asyncio.ensure_future(self._write(previous, data))
        self._last_write = write
        await asyncio.shield(write)

    async def touch(self, **changes: Any) -> None:
        """Apply frequent, minor ``changes`` (the last contact), written at most every
        ``TOUCH_INTERVAL`` seconds or with the next ``update``: every message of a busy
        channel must not cost a file write."""
        if time.monotonic() - self._written_at < TOUCH_INTERVAL:
            self.status = msgspec.structs.replace(self.status, **changes)
            return
        await self.update(**changes)

    async def _write(self, previous: asyncio.Future[None] | None, data: bytes) -> None:
        if previous is not None:
            # Only its end matters here (order); it reports its own errors below.
            await asyncio.wait({previous})
        try:
            await asyncio.to_thread(self._write_file, data)
        except (OSError, DesksideError) as exc:
            # The file informs and must not stop the daemon; said once, not on every
            # write (touch() writes every few seconds), and again after a success.
            if not self._failing:
                logger.warning("cannot write the status file: %s", exc)
            self._failing = True
        else:
            self._failing = False

    def _write_file(self, data: bytes) -> None:
        ensure_private_dir(self._path.parent)
        # Not synced: the status informs, and a crash leaves the old file or the new one.
        write_atomic(self._path, data, mode=0o644, durable=False)


def read_tickets(path: Path) -> list[TicketRecord]:
    """The tickets filed for this device, oldest first (empty if none or unreadable)."""
    data = _read_small(path)
    if data is None:
        return []
    try:
        return msgspec.json.decode(data, type=list[TicketRecord])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def record_ticket(path: Path, request_id: str, ticket_id: int | None) -> None:
    """Remember that ``request_id`` was filed as ``ticket_id`` (blocking file I/O)."""
    records = [r for r in read_tickets(path) if r.request_id != request_id]
    records.append(TicketRecord(request_id=request_id, ticket_id=ticket_id, filed_at=time.time()))
    ensure_private_dir(path.parent)
    write_atomic(path, msgspec.json.encode(records[-_MAX_TICKETS:]))
