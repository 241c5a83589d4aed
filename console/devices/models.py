"""The devices' tables: enrollment tokens, enrolled devices, diagnostics snapshots.

Enrollment tokens are kept as SHA-256 hashes, never in the clear.
"""

from __future__ import annotations

import datetime

import msgspec
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, BigId, UTCDateTime
from deskside.protocol import messages as m

__all__ = ["Device", "EnrollmentToken", "Snapshot"]

_encoder = msgspec.msgpack.Encoder()


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
    # Whether its agent has a display to capture, as its last Hello said (None: unsaid).
    display: Mapped[bool | None] = mapped_column(Boolean)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # The latest heartbeat's metrics, as sent (a small JSON object).
    metrics: Mapped[dict[str, object] | None] = mapped_column(JSON)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class Snapshot(Base):
    """One diagnostics snapshot of a device, kept as the agent encoded it."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_device_taken", "device_id", "taken_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    schema: Mapped[int] = mapped_column(Integer)
    # MessagePack of deskside.protocol.messages.Snapshot.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Attached to a ticket: kept for good, never pruned with the device's history.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)

    @classmethod
    def of(
        cls,
        device_id: str,
        snapshot: m.Snapshot,
        *,
        received_at: datetime.datetime,
        pinned: bool,
    ) -> Snapshot:
        """A row keeping ``snapshot`` as the agent encoded it."""
        return cls(
            device_id=device_id,
            taken_at=datetime.datetime.fromtimestamp(snapshot.taken_at, datetime.UTC),
            received_at=received_at,
            schema=snapshot.schema,
            data=_encoder.encode(snapshot),
            pinned=pinned,
        )
