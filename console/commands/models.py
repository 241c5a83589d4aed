"""The commands' tables: commands, their output, the runbooks administrators added."""

from __future__ import annotations

import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["Command", "CommandOutput", "CustomRunbook"]


class Command(Base):
    """A command run (or refused) on a device for a ticket."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_ticket", "ticket_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    argv: Mapped[list[str]] = mapped_column(JSON)
    shell: Mapped[bool] = mapped_column(Boolean, default=False)
    # The agent's named script run with ``argv`` as its arguments, if any.
    script: Mapped[str | None] = mapped_column(String(64))
    timeout: Mapped[float] = mapped_column(Float)
    requested_by: Mapped[str] = mapped_column(String(160))
    requested_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # pending, running, finished, refused, timed_out, cancelled, failed.
    status: Mapped[str] = mapped_column(String(16))
    consent: Mapped[str] = mapped_column(String(32), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str] = mapped_column(Text, default="")
    output_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Output bytes received and kept (the console keeps at most a cap per command).
    output_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # The next output chunk expected: chunks below it were received already.
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The runbook run this command is a step of (and which step), if any.
    runbook_run: Mapped[str | None] = mapped_column(String(64), index=True)
    runbook_step: Mapped[int | None] = mapped_column(Integer)


class CommandOutput(Base):
    """A chunk of a command's output, as the agent numbered it."""

    __tablename__ = "command_output"

    command_id: Mapped[str] = mapped_column(
        ForeignKey("commands.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(8))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CustomRunbook(Base):
    """A runbook an administrator added (the built-in ones ship with the console)."""

    __tablename__ = "runbooks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The runbook, validated, as JSON of deskside.console.commands.runbooks.Runbook.
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(160))
