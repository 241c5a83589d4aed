"""The terminal's table: sessions with their transcripts."""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["ShellSession"]


class ShellSession(Base):
    """An interactive terminal opened on a device for a ticket, with its transcript."""

    __tablename__ = "shell_sessions"
    __table_args__ = (Index("ix_shell_sessions_ticket", "ticket_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # open, closed, refused, failed.
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    # How the agent allowed it ("user", "notify", "policy"); empty until it started.
    consent: Mapped[str] = mapped_column(String(32), default="")
    # The session in asciinema's v2 format ("cast"): output and input with times.
    transcript: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    transcript_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
