"""The timeline's table: one row per entry of a ticket's history."""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, BigId, UTCDateTime

__all__ = ["TicketEvent"]


class TicketEvent(Base):
    """One entry of a ticket's timeline: who did what, when."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    # Who: "user:alice", "api:rt-sync", "agent:d1234...", "system".
    actor: Mapped[str] = mapped_column(String(160))
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"))
