"""The tickets' table; a ticket's history is its timeline (``timeline/models.py``)."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["SavedView", "Ticket"]


class Ticket(Base):
    """A help-desk ticket; its history is in ``TicketEvent`` rows."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_priority", "status", "priority"),
        # The queue's sorts (``repository.QUEUE_SORTS``): a page of 50 in any order
        # reads 50 index entries, not the whole table.
        Index("ix_tickets_updated_at", "updated_at"),
        Index("ix_tickets_resolution_due", "resolution_due"),
        Index("ix_tickets_priority_id", "priority", "id"),
    )

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
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    # The technicians' group that owns the ticket (``auth``'s groups); a deleted
    # group leaves its tickets to nobody rather than taking them along.
    group_name: Mapped[str | None] = mapped_column(
        ForeignKey("technician_groups.name", ondelete="SET NULL"), index=True
    )
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
    # Incremented on every change (``_next_version``): an editor who saw an older one
    # is refused rather than overwriting what another technician did meanwhile.
    version: Mapped[int] = mapped_column(Integer, default=1)


@event.listens_for(Ticket, "before_update")
def _next_version(mapper: Any, connection: Any, target: Ticket) -> None:
    """Every ORM change of a ticket is a new version (core ``update()`` statements set
    ``version=Ticket.version + 1`` themselves)."""
    target.version = (target.version or 0) + 1


class SavedView(Base):
    """A technician's named queue: the filters and sort of ``TicketQuery``, as JSON."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("username", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
