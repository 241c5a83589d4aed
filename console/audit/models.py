"""The audit log's table."""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, BigId, UTCDateTime

__all__ = ["AuditEntry"]


class AuditEntry(Base):
    """One security-relevant event, chained to the one before by SHA-256.

    ``hash = SHA-256(prev_hash || canonical JSON of the entry)``; editing or deleting
    an entry breaks the chain at that point (``deskside-console audit verify``).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
