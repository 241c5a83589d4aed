"""The console's tables, as SQLAlchemy 2 typed ORM classes.

Every change to these classes comes with an Alembic migration in
``deskside.console.migrations.versions``; a test checks that the models and the
migrated schema agree.

Secrets are never stored: enrollment tokens and API tokens are kept as SHA-256
hashes (they are long random strings, so a plain hash is enough to look them up
and useless to a thief), passwords as argon2 hashes.
"""

from __future__ import annotations

import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from deskside.console.schemas import Role, TicketStatus

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Command",
    "CommandOutput",
    "CustomRunbook",
    "Device",
    "EnrollmentToken",
    "Role",
    "ShellSession",
    "Snapshot",
    "Ticket",
    "TicketEvent",
    "TicketStatus",
    "User",
]


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no time zone; PostgreSQL does. This makes both give the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


class Base(DeclarativeBase):
    """Base of the console's tables, with constraint names Alembic can rely on."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class EnrollmentToken(Base):
    """A token that lets new agents enroll, a limited number of times, until it expires."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    uses_left: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    group_name: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))


class Device(Base):
    """An enrolled agent, known by its static public key."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    hostname: Mapped[str] = mapped_column(String(256), default="")
    os_family: Mapped[str] = mapped_column(String(16), default="")
    os_name: Mapped[str] = mapped_column(String(256), default="")
    os_release: Mapped[str] = mapped_column(String(256), default="")
    arch: Mapped[str] = mapped_column(String(64), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    group_name: Mapped[str | None] = mapped_column(String(128))
    enrolled_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    enrollment_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment_tokens.id", ondelete="SET NULL")
    )
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # The latest heartbeat's metrics, as sent (a small JSON object).
    metrics: Mapped[dict[str, object] | None] = mapped_column(JSON)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class Snapshot(Base):
    """One diagnostics snapshot of a device, kept as the agent encoded it."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_device_taken", "device_id", "taken_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    schema: Mapped[int] = mapped_column(Integer)
    # MessagePack of deskside.protocol.messages.Snapshot.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Attached to a ticket: kept for good, never pruned with the device's history.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    """A technician or administrator account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A scoped token for a ticket system or script using the REST API."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # The technician this token acts for (e.g. minted by the CLI); None: a service.
    username: Mapped[str | None] = mapped_column(String(64))


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


class TicketEvent(Base):
    """One entry of a ticket's timeline: who did what, when."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    # Who: "user:alice", "api:rt-sync", "agent:d1234...", "system".
    actor: Mapped[str] = mapped_column(String(160))
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"))


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


class AuditEntry(Base):
    """One security-relevant event, chained to the one before by SHA-256.

    ``hash = SHA-256(prev_hash || canonical JSON of the entry)``; editing or deleting
    an entry breaks the chain at that point (``deskside-console audit verify``).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


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
    # The recording ("DSR1", see deskside.console.screenrelay).
    data: Mapped[bytes] = mapped_column(LargeBinary)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomRunbook(Base):
    """A runbook an administrator added (the built-in ones ship with the console)."""

    __tablename__ = "runbooks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The runbook, validated, as JSON of deskside.console.runbooks.Runbook.
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(160))
