"""Diagnostics snapshots: kept as the agent encoded them, pruned per device."""

from __future__ import annotations

from typing import Final

import msgspec
from sqlalchemy import delete, select

from deskside.console.db import Database, get_row, utcnow
from deskside.console.events import DomainEvent
from deskside.protocol import messages as m

from .events import SnapshotAdded
from .models import Device, Snapshot
from .schemas import SnapshotInfo, SnapshotView

__all__ = ["SNAPSHOT_HISTORY", "SnapshotRepository", "snapshot_info"]

# Snapshots kept per device, beyond those attached to tickets.
SNAPSHOT_HISTORY: Final = 20

_snapshot_decoder = msgspec.msgpack.Decoder(m.Snapshot)


class SnapshotRepository:
    """Devices' diagnostics snapshots."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_snapshot(self, device_id: str, snapshot: m.Snapshot) -> SnapshotInfo:
        """Keep a snapshot; prune the device's unpinned history to its last ones."""
        now = utcnow()
        row = Snapshot.of(device_id, snapshot, received_at=now, pinned=False)
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            await get_row(session, Device, device_id, "device")
            session.add(row)
            await session.flush()
            events.append(SnapshotAdded(device_id=device_id, snapshot_id=row.id))
            keep = (
                select(Snapshot.id)
                .where(Snapshot.device_id == device_id, Snapshot.pinned.is_(False))
                .order_by(Snapshot.id.desc())
                .limit(SNAPSHOT_HISTORY)
            )
            await session.execute(
                delete(Snapshot).where(
                    Snapshot.device_id == device_id,
                    Snapshot.pinned.is_(False),
                    Snapshot.id.not_in(keep.scalar_subquery()),
                )
            )
            return snapshot_info(row)

    async def list_snapshots(self, device_id: str) -> list[SnapshotInfo]:
        """A device's snapshots, newest first."""
        async with self._db.reading() as session:
            await get_row(session, Device, device_id, "device")
            rows = (
                await session.execute(
                    select(Snapshot)
                    .where(Snapshot.device_id == device_id)
                    .order_by(Snapshot.id.desc())
                )
            ).scalars()
            return [snapshot_info(row) for row in rows]

    async def get_snapshot(self, snapshot_id: int) -> SnapshotView:
        """One snapshot with its content."""
        async with self._db.reading() as session:
            row = await get_row(session, Snapshot, snapshot_id, "snapshot")
            return snapshot_view(row)

    async def latest_snapshot(self, device_id: str) -> SnapshotInfo | None:
        """The device's newest snapshot, if it has one."""
        async with self._db.reading() as session:
            row = (
                await session.execute(
                    select(Snapshot)
                    .where(Snapshot.device_id == device_id)
                    .order_by(Snapshot.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            return None if row is None else snapshot_info(row)


def snapshot_info(row: Snapshot) -> SnapshotInfo:
    """The API's view of a snapshot, without its content."""
    return SnapshotInfo(
        id=row.id,
        device_id=row.device_id,
        taken_at=row.taken_at,
        received_at=row.received_at,
        schema=row.schema,
    )


def snapshot_view(row: Snapshot) -> SnapshotView:
    """The API's view of a snapshot, with its content."""
    snapshot = _snapshot_decoder.decode(row.data)
    return SnapshotView(
        id=row.id,
        device_id=row.device_id,
        taken_at=row.taken_at,
        received_at=row.received_at,
        schema=row.schema,
        snapshot=msgspec.to_builtins(snapshot),
    )
