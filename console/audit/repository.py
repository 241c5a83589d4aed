"""Reading the audit log, and checking its chain."""

from __future__ import annotations

from sqlalchemy import select

from deskside.console.db import Database

from .chain import AuditVerification, verify
from .models import AuditEntry
from .schemas import AuditView

__all__ = ["AuditRepository"]


class AuditRepository:
    """The audit log (entries are appended by each action's own transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def log(self, *, limit: int = 100, before: int | None = None) -> list[AuditView]:
        """The newest audit entries (before id ``before``), newest first."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        async with self._db.reading() as session:
            return [
                AuditView(
                    id=e.id, at=e.at, actor=e.actor, action=e.action, data=e.data, hash=e.hash
                )
                for e in (await session.execute(query)).scalars()
            ]

    async def verify(self) -> AuditVerification:
        """Walk the whole audit chain (a snapshot of it: writers go on meanwhile)."""
        async with self._db.reading(bulk=True) as session:
            result = await session.stream_scalars(select(AuditEntry).order_by(AuditEntry.id))
            entries = [entry async for entry in result]
        return verify(entries)
