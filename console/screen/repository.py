"""Screen sessions on record: their permission, their steps, their recordings."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from deskside.console.audit import chain as audit
from deskside.console.auth.access import (
    DeviceAction,
    check_device_action,
    record_action,
    record_refusal,
)
from deskside.console.auth.identity import ApiIdentity
from deskside.console.db import Database, get_row, utcnow
from deskside.console.errors import NotFound
from deskside.console.events import DomainEvent
from deskside.console.tickets.models import Ticket
from deskside.console.timeline import add as add_entry
from deskside.console.timeline import kinds, typed

from .models import ScreenRecording

__all__ = ["ScreenRepository"]


class ScreenRepository:
    """Screen sessions' permissions, steps and recordings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def request_screen(
        self,
        ticket_id: int,
        *,
        device_id: str | None,
        identity: ApiIdentity,
        online: Callable[[str], bool],
        join: str | None = None,
    ) -> tuple[str, str]:
        """Check and record a request to view the device's screen: (session id, device).

        The rules of commands apply (``commands:run`` scope, admin or assignee, open
        ticket, device enrolled and online); a refusal is recorded too. ``join``: the
        id of the technician's running session they open another viewer of.
        """
        now = utcnow()
        session_id = join or uuid.uuid4().hex
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            conn = await session.connection()
            ticket, device, refusal = await conn.run_sync(
                lambda sync: check_device_action(
                    sync, ticket_id, device_id, identity, online, action=DeviceAction.SCREEN
                )
            )
            data = {"screen_session": session_id, "ticket": ticket_id, "device": device}
            if refusal is not None:
                await conn.run_sync(
                    lambda sync: record_refusal(
                        sync,
                        ticket,
                        identity,
                        refusal,
                        data,
                        now,
                        events,
                        what="screen",
                        shown=("screen_session",),
                    )
                )
            else:
                assert ticket is not None
                assert device is not None
                await conn.run_sync(record_action, ticket, device, identity, now, events)
                await add_entry(
                    session,
                    ticket_id,
                    (kinds.ScreenViewerJoined if join else kinds.ScreenRequested)(
                        screen_session=session_id, device=device, what="view"
                    ),
                    actor=identity.actor,
                    at=now,
                    events=events,
                )
                await audit.append(
                    session,
                    actor=identity.actor,
                    action="screen.joined" if join else "screen.requested",
                    data=data,
                    at=now,
                )
                return session_id, device
        assert refusal is not None
        raise refusal

    async def record_screen_event(
        self, ticket_id: int, kind: str, *, actor: str, data: dict[str, Any]
    ) -> None:
        """A screen session's step (started, refused, viewer joined, ended): on the
        ticket's timeline and in the audit log."""
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            ticket.updated_at = now
            await add_entry(
                session, ticket_id, typed(kind, data), actor=actor, at=now, events=events
            )
            await audit.append(
                session,
                actor=actor,
                action=kind.replace("_", ".", 1),
                data={"ticket": ticket_id, **data},
                at=now,
            )

    async def save_screen_recording(
        self,
        session_id: str,
        *,
        ticket_id: int,
        device_id: str,
        requested_by: str,
        started_at: datetime.datetime,
        reason: str,
        frames: int,
        data: bytes,
        truncated: bool,
    ) -> None:
        """Keep a screen session's recording with its ticket."""
        async with self._db.transaction(bulk=True) as session:
            session.add(
                ScreenRecording(
                    id=session_id,
                    ticket_id=ticket_id,
                    device_id=device_id,
                    requested_by=requested_by,
                    started_at=started_at,
                    ended_at=utcnow(),
                    reason=reason[:32],
                    frames=frames,
                    data=data,
                    truncated=truncated,
                )
            )

    async def recording_ticket(self, session_id: str) -> int:
        """The ticket of a recorded screen session; ``NotFound`` if it was not recorded."""
        async with self._db.reading() as session:
            ticket_id = await session.scalar(
                select(ScreenRecording.ticket_id).where(ScreenRecording.id == session_id)
            )
            if ticket_id is None:
                raise NotFound(f"no recording of screen session {session_id}")
            return ticket_id

    async def screen_recording(self, session_id: str) -> bytes:
        """A screen session's recording ("DSR1"); ``NotFound`` if it was not recorded."""
        async with self._db.reading(bulk=True) as session:
            row = await session.get(ScreenRecording, session_id)
            if row is None:
                raise NotFound(f"no recording of screen session {session_id}")
            return row.data
