"""A ticket's chat: the technician's lines, their delivery, the user's answers.

A technician's line is recorded with the next number of its device (``add_line``,
after the device-action rule of ``deskside.console.auth.access``, which lets a line
wait for a device that is offline), and stays ``pending`` until the agent says it
showed it (``delivered``) or refused it. The user's answers come from the agent
(``add_reply``), named by it, so one sent twice is kept once. Every line is on the
ticket's timeline (kind ``chat``) in the transaction that records it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from deskside.console.audit import chain as audit
from deskside.console.auth.access import (
    DeviceAction,
    check_device_action,
    record_action,
    record_refusal,
)
from deskside.console.auth.identity import ApiIdentity
from deskside.console.db import Database, utcnow
from deskside.console.errors import ConsoleError, NotFound, TooManyRequests
from deskside.console.events import DomainEvent
from deskside.console.tickets.models import Ticket
from deskside.console.timeline import add_sync, kinds
from deskside.protocol import messages as m

from .events import ChatLineAdded, ChatLineChanged
from .models import ChatLine
from .schemas import ChatDirection, ChatLineView, ChatStatus

__all__ = ["LINES_PER_MINUTE", "ChatRepository", "line_view"]

# A technician's lines a ticket may take in a minute: a conversation, not a flood.
LINES_PER_MINUTE: Final = 20
# Tries at the next number of a device when two lines take it at once.
_TRIES: Final = 3

_COLUMNS: Final = tuple(ChatLine.__table__.columns)
_INSERT: Final = insert(ChatLine)
_NEXT_SEQ: Final = select(func.coalesce(func.max(ChatLine.seq), 0) + 1).where(
    ChatLine.device_id == bindparam("device")
)
_RECENT: Final = (
    select(func.count())
    .select_from(ChatLine)
    .where(ChatLine.ticket_id == bindparam("ticket"))
    .where(ChatLine.direction == ChatDirection.TO_USER.value)
    .where(ChatLine.sent_at > bindparam("since"))
)
_BY_ID: Final = select(*_COLUMNS).where(ChatLine.id == bindparam("line"))
_BY_SEQ: Final = (
    select(*_COLUMNS)
    .where(ChatLine.device_id == bindparam("device"))
    .where(ChatLine.seq == bindparam("number"))
)
_BY_REPLY: Final = (
    select(*_COLUMNS)
    .where(ChatLine.device_id == bindparam("device"))
    .where(ChatLine.reply_id == bindparam("reply"))
)
_PENDING: Final = (
    select(*_COLUMNS)
    .where(ChatLine.device_id == bindparam("device"))
    .where(ChatLine.status == ChatStatus.PENDING.value)
    .order_by(ChatLine.seq)
)
_OF_TICKET: Final = (
    select(*_COLUMNS).where(ChatLine.ticket_id == bindparam("ticket")).order_by(ChatLine.id)
)
_DELIVER: Final = (
    update(ChatLine)
    .where(ChatLine.device_id == bindparam("device"))
    .where(ChatLine.seq == bindparam("number"))
    .where(ChatLine.status == ChatStatus.PENDING.value)
    .values(status=bindparam("new_status"), delivered_at=bindparam("at"), error=bindparam("why"))
)
_TICKET: Final = select(Ticket.id, Ticket.device_id).where(Ticket.id == bindparam("ticket"))


def line_view(row: Any) -> ChatLineView:
    """The API's view of a stored line."""
    return ChatLineView(
        id=row.id,
        ticket_id=row.ticket_id,
        device_id=row.device_id,
        direction=ChatDirection(row.direction),
        author=row.author,
        text=row.text,
        sent_at=row.sent_at,
        status=ChatStatus(row.status),
        seq=row.seq,
        delivered_at=row.delivered_at,
        error=row.error,
    )


class ChatRepository:
    """The chat lines of every ticket."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_line(
        self,
        ticket_id: int,
        text: str,
        *,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> ChatLineView:
        """Record a technician's line for the user of the ticket's device, after
        checking who asks (a refusal is recorded, then raised); ``pending`` until the
        device shows it. ``TooManyRequests`` past ``LINES_PER_MINUTE`` on the ticket."""
        for attempt in range(_TRIES):
            try:
                return await self._add_line(ticket_id, text, identity=identity, online=online)
            except IntegrityError:
                if attempt == _TRIES - 1:
                    raise  # three clashes in a row on one device's numbers: a bug
        raise AssertionError("unreachable")

    async def _add_line(
        self,
        ticket_id: int,
        text: str,
        *,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> ChatLineView:
        now = utcnow()
        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> ChatLineView | ConsoleError:
            ticket, device_id, refusal = check_device_action(
                conn, ticket_id, None, identity, online, action=DeviceAction.CHAT
            )
            data = {"ticket": ticket_id, "device": device_id, "characters": len(text)}
            if refusal is None:
                since = now - datetime.timedelta(minutes=1)
                recent = conn.execute(_RECENT, {"ticket": ticket_id, "since": since}).scalar()
                if (recent or 0) >= LINES_PER_MINUTE:
                    refusal = TooManyRequests(
                        f"ticket #{ticket_id} had {LINES_PER_MINUTE} chat lines in the last "
                        "minute: wait a moment"
                    )
            if refusal is not None:
                record_refusal(conn, ticket, identity, refusal, data, now, events, what="chat")
                return refusal
            assert ticket is not None
            assert device_id is not None
            seq = int(conn.execute(_NEXT_SEQ, {"device": device_id}).scalar_one() or 1)
            values = {
                "ticket_id": ticket_id,
                "device_id": device_id,
                "direction": ChatDirection.TO_USER.value,
                "seq": seq,
                "reply_id": None,
                "author": identity.actor,
                "text": text,
                "sent_at": now,
                "status": ChatStatus.PENDING.value,
                "delivered_at": None,
                "error": "",
            }
            (line_id,) = conn.execute(_INSERT, values).inserted_primary_key or (0,)
            record_action(conn, ticket, device_id, identity, now, events)
            add_sync(
                conn,
                ticket_id,
                kinds.Chat(
                    line=line_id, device=device_id, direction=ChatDirection.TO_USER, text=text
                ),
                actor=identity.actor,
                at=now,
                events=events,
            )
            audit.append_sync(
                conn,
                actor=identity.actor,
                action="chat.sent",
                data={**data, "line": line_id, "seq": seq},
                at=now,
            )
            view = line_view(conn.execute(_BY_ID, {"line": line_id}).one())
            events.append(ChatLineAdded(ticket_id=ticket_id, line=view))
            return view

        outcome = await self._db.run(transaction, events=events)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def pending(self, device_id: str) -> list[ChatLineView]:
        """The device's lines not yet shown or refused, in order."""

        def transaction(conn: Connection) -> list[ChatLineView]:
            return [line_view(row) for row in conn.execute(_PENDING, {"device": device_id})]

        return await self._db.run(transaction, read_only=True)

    async def delivered(
        self, device_id: str, seq: int, *, refused: bool = False, error: str = ""
    ) -> ChatLineView | None:
        """The device showed (or refused) its line ``seq``; the line, or None if it was
        no longer pending (delivered before, or unknown)."""
        now = utcnow()
        events: list[DomainEvent] = []
        status = ChatStatus.REFUSED if refused else ChatStatus.DELIVERED

        def transaction(conn: Connection) -> ChatLineView | None:
            params = {"device": device_id, "number": seq}
            changed = conn.execute(
                _DELIVER, {**params, "new_status": status.value, "at": now, "why": error}
            )
            if changed.rowcount != 1:
                return None
            view = line_view(conn.execute(_BY_SEQ, params).one())
            events.append(ChatLineChanged(ticket_id=view.ticket_id, line=view))
            return view

        return await self._db.run(transaction, events=events)

    async def add_reply(self, device_id: str, reply: m.ChatReply) -> ChatLineView | None:
        """Keep the user's answer on its ticket (which must be the device's); the line,
        or None if it was kept already. ``NotFound`` for a ticket of another device."""
        now = utcnow()
        events: list[DomainEvent] = []
        author = f"device-user:{reply.user}" if reply.user else f"agent:{device_id}"

        def transaction(conn: Connection) -> ChatLineView | ConsoleError | None:
            params = {"device": device_id, "reply": reply.reply_id}
            if conn.execute(_BY_REPLY, params).first() is not None:
                return None
            ticket = conn.execute(_TICKET, {"ticket": reply.ticket_id}).first()
            if ticket is None or ticket.device_id != device_id:
                return NotFound(f"no ticket {reply.ticket_id} of this device")
            values = {
                "ticket_id": reply.ticket_id,
                "device_id": device_id,
                "direction": ChatDirection.FROM_USER.value,
                "seq": None,
                "reply_id": reply.reply_id,
                "author": author[:160],
                "text": reply.text,
                "sent_at": now,
                "status": ChatStatus.RECEIVED.value,
                "delivered_at": now,
                "error": "",
            }
            (line_id,) = conn.execute(_INSERT, values).inserted_primary_key or (0,)
            add_sync(
                conn,
                reply.ticket_id,
                kinds.Chat(
                    line=line_id,
                    device=device_id,
                    direction=ChatDirection.FROM_USER,
                    text=reply.text,
                ),
                actor=author[:160],
                at=now,
                events=events,
            )
            view = line_view(conn.execute(_BY_ID, {"line": line_id}).one())
            events.append(ChatLineAdded(ticket_id=reply.ticket_id, line=view))
            return view

        outcome = await self._db.run(transaction, events=events)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def conversation(self, ticket_id: int) -> list[ChatLineView]:
        """Every line of the ticket's chat, oldest first; ``NotFound`` without a ticket."""

        def transaction(conn: Connection) -> list[ChatLineView] | None:
            if conn.execute(_TICKET, {"ticket": ticket_id}).first() is None:
                return None
            return [line_view(row) for row in conn.execute(_OF_TICKET, {"ticket": ticket_id})]

        lines = await self._db.run(transaction, read_only=True)
        if lines is None:
            raise NotFound(f"no ticket {ticket_id}")
        return lines
