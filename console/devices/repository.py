"""Enrolled devices: enrollment tokens, enrollment, presence, heartbeats, revocation."""

from __future__ import annotations

import base64
import datetime
import hmac
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import or_, select, update

from deskside.console.audit import chain as audit
from deskside.console.auth.identity import hash_secret
from deskside.console.db import Database, get_row, utcnow
from deskside.console.errors import EnrollmentRefused, InvalidRequest
from deskside.console.events import DomainEvent
from deskside.protocol import messages as m
from deskside.protocol.enrollment import device_id as device_id_for

from .events import DeviceEnrolled, DeviceOffline, DeviceOnline, DeviceRevoked
from .models import Device, EnrollmentToken
from .schemas import DeviceView, EnrollmentTokenCreated

__all__ = ["DeviceRepository", "device_view"]


class DeviceRepository:
    """Enrollment tokens and enrolled devices."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_enrollment_token(
        self,
        *,
        ttl: datetime.timedelta,
        uses: int,
        group: str | None,
        created_by: str,
    ) -> EnrollmentTokenCreated:
        """A new enrollment token, valid ``uses`` times until ``ttl`` from now."""
        if not 1 <= uses <= 100_000:
            raise InvalidRequest("uses must be between 1 and 100000")
        if not datetime.timedelta(minutes=1) <= ttl <= datetime.timedelta(days=365):
            raise InvalidRequest("ttl must be between 1 minute and 365 days")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = EnrollmentToken(
            token_hash=hash_secret(token),
            created_at=now,
            expires_at=now + ttl,
            uses_left=uses,
            uses=0,
            group_name=group,
            created_by=created_by,
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            return EnrollmentTokenCreated(
                id=row.id, token=token, expires_at=row.expires_at, uses=uses, group=group
            )

    async def enroll(self, public_key: bytes, token: str) -> DeviceView:
        """Register ``public_key`` as a device, spending one use of ``token``.

        A key enrolled before is enrolled again (same device), unless revoked; with
        the token it enrolled with, that spends nothing (an agent trying again
        after its answer was lost must not use up the token's last use).
        Raises ``EnrollmentRefused`` with a reason the agent is shown.
        """
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            row = (
                await session.execute(
                    select(EnrollmentToken)
                    .where(EnrollmentToken.token_hash == hash_secret(token))
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None or not hmac.compare_digest(row.token_hash, hash_secret(token)):
                raise EnrollmentRefused("unknown enrollment token")
            if row.expires_at <= now:
                raise EnrollmentRefused("enrollment token expired")
            device = (
                await session.execute(select(Device).where(Device.public_key == public_key))
            ).scalar_one_or_none()
            if device is not None and device.revoked_at is not None:
                raise EnrollmentRefused("this device was revoked")
            if device is not None and device.enrollment_token_id == row.id:
                # The agent is trying again (its answer was lost, say): it enrolled
                # with this token already and spends no second use of it.
                return device_view(device)
            if row.uses_left <= 0:
                raise EnrollmentRefused("enrollment token already used")
            row.uses_left -= 1
            row.uses += 1
            if device is None:
                device = Device(
                    id=device_id_for(public_key),
                    public_key=public_key,
                    group_name=row.group_name,
                    enrolled_at=now,
                    enrollment_token_id=row.id,
                    online=False,
                )
                session.add(device)
                await session.flush()
                events.append(DeviceEnrolled(device_id=device.id, group=device.group_name))
            await audit.append(
                session,
                actor=f"agent:{device.id}",
                action="device.enrolled",
                data={"device": device.id, "token": row.id, "group": row.group_name},
                at=now,
            )
            return device_view(device)

    async def device_for_key(self, public_key: bytes) -> DeviceView | None:
        """The device with this key, if it is enrolled and not revoked."""
        async with self._db.transaction() as session:
            device = (
                await session.execute(select(Device).where(Device.public_key == public_key))
            ).scalar_one_or_none()
            if device is None or device.revoked_at is not None:
                return None
            return device_view(device)

    async def record_hello(self, device_id: str, hello: m.Hello) -> None:
        """Update what the device says it is; mark it online."""
        async with self._db.transaction(events=[DeviceOnline(device_id=device_id)]) as session:
            device = await get_row(session, Device, device_id, "device")
            device.hostname = hello.os.hostname[:256]
            device.os_family = str(hello.os.family)
            device.os_name = hello.os.name[:256]
            device.os_release = hello.os.release[:256]
            device.arch = hello.os.arch[:64]
            device.agent_version = hello.agent_version[:64]
            if hello.display is not None:  # a one-off help request's agent does not say
                device.display = hello.display
            device.online = True
            device.last_seen = utcnow()

    async def mark_offline(
        self, device_ids: Collection[str], *, unseen_since: datetime.datetime | None = None
    ) -> None:
        """Mark many devices disconnected in one transaction (``DeviceOffline`` each).

        ``unseen_since``: only those online and not seen since then (the cluster's
        sweep: a device that said ``Hello`` on another node meanwhile stays online).
        """
        ids = sorted(device_ids)
        if not ids:
            return
        events: list[DomainEvent] = []
        now = utcnow()
        async with self._db.transaction(events=events, bulk=True) as session:
            for start in range(0, len(ids), 500):  # within every database's parameter limit
                chunk = ids[start : start + 500]
                if unseen_since is None:
                    gone_at = {"online": False, "last_seen": now}
                    await session.execute(
                        update(Device).where(Device.id.in_(chunk)).values(gone_at)
                    )
                    events += [DeviceOffline(device_id=d) for d in chunk]
                    continue
                gone = await session.execute(
                    update(Device)
                    .where(
                        Device.id.in_(chunk),
                        Device.online.is_(True),
                        or_(Device.last_seen.is_(None), Device.last_seen < unseen_since),
                    )
                    .values(online=False)
                    .returning(Device.id)
                )
                events += [DeviceOffline(device_id=d) for d in sorted(gone.scalars())]

    async def mark_online(self, device_ids: Collection[str]) -> None:
        """Mark devices connected again without a ``Hello`` (a node that claims its
        devices again after losing the cluster's registry); ``DeviceOnline`` each."""
        ids = sorted(device_ids)
        if not ids:
            return
        events: list[DomainEvent] = [DeviceOnline(device_id=d) for d in ids]
        now = utcnow()
        async with self._db.transaction(events=events, bulk=True) as session:
            for start in range(0, len(ids), 500):
                await session.execute(
                    update(Device)
                    .where(Device.id.in_(ids[start : start + 500]), Device.revoked_at.is_(None))
                    .values(online=True, last_seen=now)
                )

    async def online_devices(self) -> list[str]:
        """The devices the database shows online."""
        async with self._db.reading(bulk=True) as session:
            rows = await session.execute(select(Device.id).where(Device.online.is_(True)))
            return list(rows.scalars())

    async def mark_all_offline(self) -> None:
        """At start-up: nothing is connected yet, whatever an earlier run left."""
        async with self._db.transaction(bulk=True) as session:
            await session.execute(update(Device).values(online=False))

    async def record_heartbeats(
        self, beats: Mapping[str, tuple[datetime.datetime, dict[str, Any] | None]]
    ) -> None:
        """Store many devices' last-seen times and metrics in one statement.

        Presence (``online``) is not touched: connects and disconnects set it, and a
        heartbeat written late must not bring a device that left back online.
        """
        if not beats:
            return
        rows = [
            {"id": device_id, "last_seen": seen, "metrics": metrics}
            for device_id, (seen, metrics) in beats.items()
        ]
        async with self._db.transaction(bulk=True) as session:
            # An ORM bulk UPDATE by primary key: one executemany, not a query per device.
            await session.execute(update(Device), rows)

    async def revoke_device(self, device_id: str, *, actor: str = "cli") -> DeviceView:
        """Revoke a device: its key is refused from now on."""
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            device = await get_row(session, Device, device_id, "device")
            if device.revoked_at is None:
                device.revoked_at = utcnow()
                device.online = False
                events.append(DeviceRevoked(device_id=device_id))
                await audit.append(
                    session,
                    actor=actor,
                    action="device.revoked",
                    data={"device": device_id},
                    at=device.revoked_at,
                )
            return device_view(device)

    async def revoked_since(self, since: datetime.datetime) -> set[str]:
        """The devices revoked at or after ``since``."""
        async with self._db.reading() as session:
            rows = await session.execute(select(Device.id).where(Device.revoked_at >= since))
            return set(rows.scalars())

    async def list_devices(self) -> list[DeviceView]:
        """Every enrolled device, by host name."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(select(Device).order_by(Device.hostname, Device.id))
            ).scalars()
            return [device_view(device) for device in rows]

    async def get_device(self, device_id: str) -> DeviceView:
        """One device; ``NotFound`` if there is none with that id."""
        async with self._db.reading() as session:
            return device_view(await get_row(session, Device, device_id, "device"))


def device_view(device: Device) -> DeviceView:
    """The API's view of a device row."""
    return DeviceView(
        id=device.id,
        hostname=device.hostname,
        os_family=device.os_family,
        os_name=device.os_name,
        os_release=device.os_release,
        arch=device.arch,
        agent_version=device.agent_version,
        group=device.group_name,
        enrolled_at=device.enrolled_at,
        online=device.online,
        last_seen=device.last_seen,
        metrics=device.metrics,
        revoked=device.revoked_at is not None,
        public_key=base64.b64encode(device.public_key).decode(),
        display=device.display,
    )
