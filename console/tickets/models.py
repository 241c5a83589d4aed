"""The tickets' table; a ticket's history is its timeline (``timeline/models.py``)."""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["Ticket"]


class Ticket(Base):
    """A help-desk ticket; its history is in ``TicketEvent`` rows."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_priority", "status", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(256), default="")
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    category: Mapped[str] = mapped_column(String(64), default="")
    impact: Mapped[int] = mapped_column(Integer)
    urgency: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(64))
    group_name: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))
    # The agent's help-request id: the same request filed twice is one ticket.
    help_request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    response_due: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    resolution_due: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
