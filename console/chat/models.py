"""The chat's table: every line of every ticket's conversation."""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["ChatLine"]


class ChatLine(Base):
    """One line of a ticket's chat: the technician's to the user, or the user's answer.

    A technician's line is numbered per device (``seq``): the agent acknowledges by
    number, and lines not yet acknowledged are sent again, in order, when the device
    comes back. A user's line is named by the agent (``reply_id``), so one sent again
    after a reconnect is kept once.
    """

    __tablename__ = "chat_lines"
    __table_args__ = (
        Index("ix_chat_lines_ticket", "ticket_id", "id"),
        Index("ix_chat_lines_device_seq", "device_id", "seq", unique=True),
        Index("ix_chat_lines_device_reply", "device_id", "reply_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # "to_user" (the technician's) or "from_user" (the user's answer).
    direction: Mapped[str] = mapped_column(String(16))
    # A technician's line: its number on the device (from 1).
    seq: Mapped[int | None] = mapped_column(Integer)
    # A user's line: the agent's name for it.
    reply_id: Mapped[str | None] = mapped_column(String(64))
    # Who wrote it: "user:alice" (a technician), "device-user:bob" (the user).
    author: Mapped[str] = mapped_column(String(160))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # pending, delivered, refused (a technician's line); received (a user's).
    status: Mapped[str] = mapped_column(String(16))
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # Why the device refused the line ("chat is off on this device").
    error: Mapped[str] = mapped_column(Text, default="")
