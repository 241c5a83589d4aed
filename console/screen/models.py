"""The screen's table: recorded sessions."""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["ScreenRecording"]


class ScreenRecording(Base):
    """A recorded screen session: the encoded frames as relayed, not re-encoded."""

    __tablename__ = "screen_recordings"
    __table_args__ = (Index("ix_screen_recordings_ticket", "ticket_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(32))
    frames: Mapped[int] = mapped_column(Integer)
    # The recording ("DSR1", see deskside.console.screen.relay).
    data: Mapped[bytes] = mapped_column(LargeBinary)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
