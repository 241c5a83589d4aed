"""Terminal sessions: opened for a ticket, allowed by the device, kept as a transcript."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from deskside.console.audit import chain as audit
from deskside.console.auth.access import (
    DeviceAction,
    check_device_action,
    record_action,
    record_refusal,
)
from deskside.console.auth.identity import ApiIdentity
from deskside.console.db import Database, utcnow
from deskside.console.errors import NotFound
from deskside.console.events import DomainEvent
from deskside.console.timeline import add as add_entry
from deskside.console.timeline import kinds

from .models import ShellSession
from .schemas import TerminalStatus, TerminalView

__all__ = ["TerminalRepository", "terminal_view"]


class TerminalRepository:
    """Terminal sessions and their transcripts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_terminal(
        self,
        ticket_id: int,
        *,
        device_id: str | None,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> TerminalView:
        """Record a terminal session for an open ticket (same rules as commands)."""
        now = utcnow()
        session_id = uuid.uuid4().hex
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            conn = await session.connection()
            ticket, device, refusal = await conn.run_sync(
                lambda sync: check_device_action(
                    sync, ticket_id, device_id, identity, online, action=DeviceAction.TERMINAL
                )
            )
            data = {
                "shell_session": session_id,
                "ticket": ticket_id,
                "device": device,
                "terminal": True,
            }
            if refusal is not None:
                await conn.run_sync(record_refusal, ticket, identity, refusal, data, now, events)
            else:
                assert ticket is not None
                assert device is not None
                row = ShellSession(
                    id=session_id,
                    ticket_id=ticket_id,
                    device_id=device,
                    requested_by=identity.actor,
                    started_at=now,
                    status=str(TerminalStatus.OPEN),
                    error="",
                    transcript=b"",
                    transcript_truncated=False,
                )
                session.add(row)
                await conn.run_sync(record_action, ticket, device, identity, now, events)
                await add_entry(
                    session,
                    ticket_id,
                    kinds.Shell(shell_session=session_id, device=device),
                    actor=identity.actor,
                    at=now,
                    events=events,
                )
                await audit.append(
                    session, actor=identity.actor, action="shell.opened", data=data, at=now
                )
                await session.flush()
                return terminal_view(row)
        assert refusal is not None
        raise refusal

    async def terminal_started(self, device_id: str, session_id: str, consent: str) -> bool:
        """The agent allowed the terminal and its shell started; False if not this
        device's open session."""
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            row = await session.get(ShellSession, session_id, with_for_update=True)
            if row is None or row.device_id != device_id or row.ended_at is not None:
                return False
            if not row.consent:
                row.consent = consent[:32] or "unknown"
                data = {"shell_session": row.id, "consent": row.consent}
                await add_entry(
                    session,
                    row.ticket_id,
                    kinds.ShellStarted(shell_session=row.id, consent=row.consent),
                    actor=f"agent:{device_id}",
                    at=now,
                    events=events,
                )
                await audit.append(
                    session,
                    actor=f"agent:{device_id}",
                    action="shell.consented",
                    data=data,
                    at=now,
                )
            return True

    async def close_terminal(
        self,
        session_id: str,
        *,
        status: TerminalStatus,
        exit_code: int | None,
        error: str,
        transcript: bytes,
        truncated: bool,
    ) -> TerminalView:
        """The terminal ended: keep its transcript and record the end on the ticket."""
        now = utcnow()
        events: list[DomainEvent] = []
        # Up to 16 MiB of transcript: off the event loop on SQLite.
        async with self._db.transaction(bulk=True, events=events) as session:
            row = await session.get(ShellSession, session_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            if row.ended_at is None:
                row.ended_at = now
                row.status = str(status)
                row.exit_code = exit_code
                row.error = error[:4096]
                row.transcript = transcript
                row.transcript_truncated = truncated
                await add_entry(
                    session,
                    row.ticket_id,
                    kinds.ShellClosed(
                        shell_session=row.id,
                        status=str(status),
                        exit_code=exit_code,
                        error=row.error,
                        consent=row.consent,
                        transcript_bytes=len(transcript),
                    ),
                    actor=row.requested_by,
                    at=now,
                    events=events,
                )
                await audit.append(
                    session,
                    actor=f"agent:{row.device_id}",
                    action="shell.closed",
                    data={"shell_session": row.id, "status": str(status), "exit_code": exit_code},
                    at=now,
                )
            return terminal_view(row)

    async def get_terminal(self, session_id: str) -> TerminalView:
        """A terminal session (without its transcript)."""
        async with self._db.reading() as session:
            row = await session.get(ShellSession, session_id)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            return terminal_view(row)

    async def terminal_transcript(self, session_id: str) -> bytes:
        """A terminal session's transcript, an asciinema v2 cast."""
        async with self._db.reading(bulk=True) as session:
            row = await session.get(ShellSession, session_id)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            return row.transcript


def terminal_view(row: ShellSession) -> TerminalView:
    """The API's view of a terminal session (without its transcript)."""
    return TerminalView(
        id=row.id,
        ticket_id=row.ticket_id,
        device_id=row.device_id,
        requested_by=row.requested_by,
        started_at=row.started_at,
        ended_at=row.ended_at,
        status=TerminalStatus(row.status),
        exit_code=row.exit_code,
        error=row.error,
        transcript_bytes=len(row.transcript),
        transcript_truncated=row.transcript_truncated,
        consent=row.consent,
    )
